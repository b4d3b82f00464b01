#!/usr/bin/env bash
# lb.sh: requests/s and latency of gearbox's load balancer (lb.Pool) next to
# HAProxy, nginx and Caddy, all balancing over the same two backends on
# loopback, and of one backend reached directly.
#
#   scripts/bench/lb.sh            # from the repository root
#
# It installs haproxy, nginx, caddy, wrk and curl from Debian's packages if
# they are missing (Caddy is skipped if the package cannot be had), builds
# scripts/bench/backend and scripts/bench/lbserver, configures every
# balancer like OpenShift's haproxy cartridge as far as each one can
# (leastconn, health checks GET /, GEAR cookie insert, retries, timeouts),
# and runs wrk against each target in turn, ROUNDS times, interleaved so
# that drifts of a noisy machine hit every target alike. It prints each run
# and a table of medians with ratios to HAProxy. Everything it starts is
# stopped on exit.
#
# Environment (defaults in brackets):
#   ROUNDS [5]  DURATION [10s]  THREADS [2]  CONNS [64]  WARMUP [2s]
#   KEEP=1      keep the work directory (configs, logs, raw wrk output)
#
# Targets: "direct" (backend 1 without a balancer), "haproxy" (the
# cartridge's settings with kept-alive backend connections, the reference of
# the ratios), "haproxy-cartridge" (the cartridge's settings as they were,
# a backend connection per request), "nginx", "caddy" and "gearbox".
# Addresses: backends 127.0.0.11:18081 and 127.0.0.12:18082; haproxy
# 127.0.0.20:18080, nginx .21, caddy .22, gearbox .23, haproxy-cartridge
# .24, all on port 18080.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH=lb.sh
# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh

wrk_settings

BACKEND1=127.0.0.11:18081
BACKEND2=127.0.0.12:18082
HAPROXY_ADDR=127.0.0.20:18080
HAPROXY_CART_ADDR=127.0.0.24:18080
NGINX_ADDR=127.0.0.21:18080
CADDY_ADDR=127.0.0.22:18080
GEARBOX_ADDR=127.0.0.23:18080
SECRET="bench secret"

need_go

# --- packages ---------------------------------------------------------------

apt_install haproxy nginx wrk curl ca-certificates
HAVE_CADDY=1
if ! command -v caddy >/dev/null 2>&1; then
	if [ $apt_updated = 0 ]; then
		$SUDO apt-get update -qq
		apt_updated=1
	fi
	if apt-cache show caddy >/dev/null 2>&1; then
		apt_install caddy
	else
		log "caddy is not in this machine's Debian package lists: skipping Caddy"
		HAVE_CADDY=0
	fi
fi

# Debian starts the haproxy and nginx services it installs where systemd
# runs; they listen on other ports than ours and are left alone.

for a in $BACKEND1 $BACKEND2 $HAPROXY_ADDR $HAPROXY_CART_ADDR $NGINX_ADDR $CADDY_ADDR $GEARBOX_ADDR; do
	port_free "$a" || die "$a is in use"
done

# --- build ------------------------------------------------------------------

log "building scripts/bench/backend and scripts/bench/lbserver"
go build -o "$WORK/backend" ./scripts/bench/backend
go build -o "$WORK/lbserver" ./scripts/bench/lbserver

# --- configs ----------------------------------------------------------------

# haproxy_cfg ADDR GLOBAL_MAXCONN DEFAULTS_MAXCONN EXTRA_DEFAULTS: an HAProxy
# configuration in the cartridge's shape, listening on ADDR.
haproxy_cfg() {
	cat <<EOF
global
    maxconn $2

defaults
    mode http
$4
    option redispatch
    retries 3
    timeout http-request 10s
    timeout queue 1m
    timeout connect 10s
    timeout client 1m
    timeout server 1m
    timeout http-keep-alive 10s
    timeout check 10s
    maxconn $3

listen express
    bind $1
    balance leastconn
    cookie GEAR insert indirect nocache
    option httpchk GET /
    http-check expect rstatus (2|3)[0-9][0-9]|401
    server b1 $BACKEND1 check inter 2000 rise 3 fall 2 cookie b1
    server b2 $BACKEND2 check inter 2000 rise 3 fall 2 cookie b2
EOF
}

# haproxy-cartridge is the cartridge's configuration as it was: global
# maxconn 256, defaults maxconn 128, and "option http-server-close", which
# opens a backend connection per request.
haproxy_cfg "$HAPROXY_CART_ADDR" 256 128 "    option http-server-close" >"$WORK/haproxy-cartridge.cfg"

# haproxy, the reference of the ratios, keeps backend connections alive
# (HAProxy's default), as nginx, Caddy and gearbox do here, and adds
# X-Forwarded-For as they do. Its global maxconn is raised from 256 to 4096:
# HAProxy closes idle backend connections instead of keeping them once a
# quarter of its sockets are in use (tune.pool-high-fd-ratio 25), and with
# maxconn 256 the 64 wrk connections and their 64 backend connections are
# past that, so about every other request would open a new connection.
haproxy_cfg "$HAPROXY_ADDR" 4096 128 "    option forwardfor" >"$WORK/haproxy.cfg"

# nginx OSS has no cookie insertion (the "sticky" directive is nginx Plus
# only) and no active health checks: a backend is taken out passively, for
# fail_timeout after max_fails failed attempts.
NGINX_USER=
if [ "$(id -u)" = 0 ]; then
	NGINX_USER="user nobody nogroup;"
fi
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
$NGINX_USER
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_timeout 60s;
    keepalive_requests 1000000;

    upstream gears {
        least_conn;
        server $BACKEND1 max_fails=2 fail_timeout=10s;
        server $BACKEND2 max_fails=2 fail_timeout=10s;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen $NGINX_ADDR;
        location / {
            proxy_pass http://gears;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_connect_timeout 10s;
            proxy_send_timeout 1m;
            proxy_read_timeout 1m;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 4;
        }
    }
}
EOF

# Caddy: least_conn with active checks. Its cookie policy would replace
# least_conn (it hashes the cookie and picks at random without one), so
# there is no cookie insertion here either.
cat >"$WORK/Caddyfile" <<EOF
{
	admin off
	auto_https off
}

http://$CADDY_ADDR {
	bind ${CADDY_ADDR%:*}
	reverse_proxy $BACKEND1 $BACKEND2 {
		lb_policy least_conn
		lb_try_duration 10s
		health_uri /
		health_interval 2s
		health_timeout 2s
		health_status 2xx
		fail_duration 10s
		max_fails 2
		transport http {
			dial_timeout 10s
			response_header_timeout 1m
			keepalive_idle_conns_per_host 64
		}
	}
}
EOF

# --- start ------------------------------------------------------------------

start backend "$WORK/backend" -addr "$BACKEND1,$BACKEND2"
wait_ok backend "http://$BACKEND1/"
wait_ok backend "http://$BACKEND2/"

for c in haproxy haproxy-cartridge; do
	haproxy -c -q -f "$WORK/$c.cfg" || die "haproxy config check of $c failed"
	start "$c" haproxy -db -f "$WORK/$c.cfg"
done
nginx -t -q -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" || die "nginx config check failed"
start nginx nginx -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" -g 'daemon off;'
if [ $HAVE_CADDY = 1 ]; then
	start caddy env HOME="$WORK" XDG_DATA_HOME="$WORK/caddy" XDG_CONFIG_HOME="$WORK/caddy" \
		caddy run --adapter caddyfile --config "$WORK/Caddyfile"
fi
start gearbox "$WORK/lbserver" -addr "$GEARBOX_ADDR" -backends "$BACKEND1,$BACKEND2" -secret "$SECRET"

TARGETS=(direct haproxy haproxy-cartridge nginx)
[ $HAVE_CADDY = 1 ] && TARGETS+=(caddy)
TARGETS+=(gearbox)
declare -A URL=(
	[direct]="http://$BACKEND1/"
	[haproxy]="http://$HAPROXY_ADDR/"
	[haproxy-cartridge]="http://$HAPROXY_CART_ADDR/"
	[nginx]="http://$NGINX_ADDR/"
	[caddy]="http://$CADDY_ADDR/"
	[gearbox]="http://$GEARBOX_ADDR/"
)
for t in "${TARGETS[@]}"; do
	wait_ok "$t" "${URL[$t]}"
done

log "versions: $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1 | cut -d' ' -f3)$(
	[ $HAVE_CADDY = 1 ] && printf '; caddy %s' "$(caddy version | cut -d' ' -f1)"); $(go version | cut -d' ' -f3); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
log "affinity cookie set by each balancer on a request without one:"
for t in "${TARGETS[@]}"; do
	[ "$t" = direct ] && continue
	c=$(curl -s -D - -o /dev/null "${URL[$t]}" | tr -d '\r' | grep -i '^set-cookie:' | cut -d' ' -f2- || true)
	log "  $(printf '%-17s' "$t") ${c:-(none)}"
done

# Let every balancer finish its first health checks (rise 3 x 2 s matters
# only to a backend that starts down, which none does here).
sleep 2

# --- measure ----------------------------------------------------------------

# bench TARGET ROUND: one wrk run; appends "round target rps p50 p99
# lb_us be_us" to WORK/runs, where lb_us and be_us are the CPU time the
# balancer and the backends used per request, in microseconds.
bench() {
	local t=$1 r=$2 out="$WORK/wrk-$1-$2.txt" rps p50 p99 n errs
	local lb0=0 lb1=0 be0 be1 lbus=0 beus
	[ "$t" != direct ] && lb0=$(cpu_ticks "${PID[$t]}")
	be0=$(cpu_ticks "${PID[backend]}")
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${URL[$t]}" >"$out" 2>&1 || {
		cat "$out" >&2
		die "wrk against $t failed"
	}
	[ "$t" != direct ] && lb1=$(cpu_ticks "${PID[$t]}")
	be1=$(cpu_ticks "${PID[backend]}")
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
	n=$(awk '/requests in/ {print $1}' "$out")
	lbus=$(awk -v d=$((lb1 - lb0)) -v n="$n" -v k="$TICK_US" 'BEGIN {printf "%.1f", d * k / n}')
	beus=$(awk -v d=$((be1 - be0)) -v n="$n" -v k="$TICK_US" 'BEGIN {printf "%.1f", d * k / n}')
	errs=$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | tr '\n' ';' || true)
	printf '%s %s %s %s %s %s %s\n' "$r" "$t" "$rps" "$p50" "$p99" "$lbus" "$beus" >>"$WORK/runs"
	log "$(printf 'round %s  %-17s %6.0f req/s  p50 %6.2f ms  p99 %6.2f ms  cpu/req: balancer %5.1f us, backends %5.1f us  %s' \
		"$r" "$t" "$rps" "$p50" "$p99" "$lbus" "$beus" "$errs")"
}

log "warm-up: $WARMUP per target"
for t in "${TARGETS[@]}"; do
	wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${URL[$t]}" >/dev/null 2>&1 || die "warm-up of $t failed"
done

log "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds, $(nproc) cores shared by wrk, balancer and backends"
: >"$WORK/runs"
for r in $(seq "$ROUNDS"); do
	# Rotate the order each round so that no target always runs first.
	n=${#TARGETS[@]}
	for i in $(seq 0 $((n - 1))); do
		bench "${TARGETS[$(((i + r - 1) % n))]}" "$r"
	done
done

# --- report -----------------------------------------------------------------

# The ratios to HAProxy are medians of per-round ratios: the targets of a
# round ran within a minute of each other, so the load other programs put
# on the machine weighs on both sides of each ratio alike.
echo
echo "Medians of $ROUNDS rounds (wrk -t$THREADS -c$CONNS -d$DURATION --latency); ratios to HAProxy are medians of per-round ratios"
echo
awk -v order="${TARGETS[*]}" '
function median(s,    a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	rps[$2] = rps[$2] " " $3; p50[$2] = p50[$2] " " $4; p99[$2] = p99[$2] " " $5
	lb[$2] = lb[$2] " " $6; be[$2] = be[$2] " " $7
	R[$1, $2] = $3; P[$1, $2] = $5; rounds[$1] = 1
}
END {
	print "| target | req/s | p50 (ms) | p99 (ms) | req/s vs HAProxy | p99 vs HAProxy | balancer CPU/req (µs) | backend CPU/req (µs) |"
	print "|---|---|---|---|---|---|---|---|"
	n = split(order, ts, " ")
	for (i = 1; i <= n; i++) {
		t = ts[i]; rr = ""; pr = ""
		for (r in rounds) {
			rr = rr " " R[r, t] / R[r, "haproxy"]
			pr = pr " " P[r, t] / P[r, "haproxy"]
		}
		mr[t] = median(rr); mp[t] = median(pr)
		if (t == "gearbox")
			for (r in rounds) {
				rc = rc " " R[r, t] / R[r, "haproxy-cartridge"]
				pc = pc " " P[r, t] / P[r, "haproxy-cartridge"]
			}
		printf "| %s | %.0f | %.2f | %.2f | %.2fx | %.2fx | %s | %.1f |\n", t, median(rps[t]), median(p50[t]),
			median(p99[t]), mr[t], mp[t], (t == "direct" ? "-" : sprintf("%.1f", median(lb[t]))), median(be[t])
	}
	printf "\ngearbox vs haproxy-cartridge: req/s %.2fx, p99 %.2fx\n",
		median(rc), median(pc)
	printf "target: gearbox req/s >= 0.90x HAProxy (%.2fx: %s), p99 <= 1.20x HAProxy (%.2fx: %s)\n",
		mr["gearbox"], (mr["gearbox"] >= 0.9 ? "met" : "missed"), mp["gearbox"], (mp["gearbox"] <= 1.2 ? "met" : "missed")
}' "$WORK/runs"
