#!/usr/bin/env bash
# path.sh: requests/s and latency of the whole request path of an HA app,
# router -> LB gear -> gear, with gearbox's router and load balancer next
# to HAProxy playing both, over the same backend on loopback, in the same
# run.
#
#   scripts/bench/path.sh          # from the repository root
#
# gearbox: scripts/bench/pathserver (a router.Router with its production
# defaults, the app's records in a one-member store of its own) in front
# of scripts/bench/lbserver (the LB gear: lb.Pool on lb.FastServer with
# the haproxy cartridge's defaults, trusting the router) in front of
# scripts/bench/backend. HAProxy: one haproxy process configured as a
# plain router (the ha- host picked by a Host ACL, Host rewritten to the
# app's hostname, X-Forwarded-*, health checks through the LB with the
# app's hostname, no cookie) in front of another configured like the
# haproxy cartridge (as scripts/bench/lb.sh's "haproxy" reference) in front
# of the same backend. Each proxy is a process of its own, as in
# production. wrk sends Host: ha-app-ns.example.com to both chains, over
# kept-alive connections, ROUNDS times, the order rotated each round; the
# report gives medians, and ratios to HAProxy that are medians of
# per-round ratios. It installs haproxy, wrk and curl from Debian's
# packages if they are missing. Everything it starts is stopped on exit.
#
# Environment (defaults in brackets):
#   ROUNDS [5]  DURATION [10s]  THREADS [2]  CONNS [64]  WARMUP [2s]
#   KEEP=1      keep the work directory (configs, logs, raw wrk output)
#
# Targets: "direct" (the backend alone), "haproxy" (router 127.0.0.35:18095
# -> LB 127.0.0.34:18094), "gearbox" (router 127.0.0.33:18093 -> LB gear
# 127.0.0.32:18092); the backend is 127.0.0.31:18091. The addresses differ
# from lb.sh's.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH=path.sh
# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh

wrk_settings

BACKEND=127.0.0.31:18091
GB_LB=127.0.0.32:18092
GB_ROUTER=127.0.0.33:18093
HA_LB=127.0.0.34:18094
HA_ROUTER=127.0.0.35:18095
HOST=ha-app-ns.example.com
APP_HOST=app-ns.example.com
SECRET="bench secret"

need_go

# --- packages ---------------------------------------------------------------

apt_install haproxy wrk curl ca-certificates

for a in $BACKEND $GB_LB $GB_ROUTER $HA_LB $HA_ROUTER; do
	port_free "$a" || die "$a is in use"
done

# --- build ------------------------------------------------------------------

log "building scripts/bench/backend, lbserver and pathserver"
go build -o "$WORK/backend" ./scripts/bench/backend
go build -o "$WORK/lbserver" ./scripts/bench/lbserver
go build -o "$WORK/pathserver" ./scripts/bench/pathserver

# --- HAProxy configs --------------------------------------------------------

# The LB: the haproxy cartridge's configuration as lb.sh's "haproxy"
# reference has it (kept-alive backend connections, forwardfor, global
# maxconn 4096; see docs/benchmarks.md).
cat >"$WORK/haproxy-lb.cfg" <<EOF2
global
    maxconn 4096

defaults
    mode http
    option forwardfor
    option redispatch
    retries 3
    timeout http-request 10s
    timeout queue 1m
    timeout connect 10s
    timeout client 1m
    timeout server 1m
    timeout http-keep-alive 10s
    timeout check 10s
    maxconn 128

listen express
    bind $HA_LB
    balance leastconn
    cookie GEAR insert indirect nocache
    option httpchk GET /
    http-check expect rstatus (2|3)[0-9][0-9]|401
    server gear1 $BACKEND check inter 2000 rise 3 fall 2 cookie gear1
EOF2

# The router: the ha- host goes to the app's LB gears with the app's
# hostname, as gearbox's router does (health checks GET / through the LB
# with that hostname, leastconn, retries, no cookie of its own); other
# hosts get a 404.
cat >"$WORK/haproxy-router.cfg" <<EOF2
global
    maxconn 4096

defaults
    mode http
    option forwardfor
    option redispatch
    retries 3
    timeout http-request 10s
    timeout queue 1m
    timeout connect 10s
    timeout client 1m
    timeout server 1m
    timeout http-keep-alive 10s
    timeout check 10s
    maxconn 1024

frontend router
    bind $HA_ROUTER
    acl app_ns req.hdr(host),field(1,:),lower -m str $HOST
    use_backend app_ns if app_ns
    default_backend unknown

backend app_ns
    balance leastconn
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header Host $APP_HOST
    option httpchk
    http-check send meth GET uri / ver HTTP/1.1 hdr Host $APP_HOST
    http-check expect rstatus (2|3)[0-9][0-9]|401
    server lb1 $HA_LB check inter 2000 rise 3 fall 2

backend unknown
    http-request return status 404 content-type text/html string "<html><body><h1>404 Not Found</h1></body></html>"
EOF2

# --- start ------------------------------------------------------------------

start backend "$WORK/backend" -addr "$BACKEND"
wait_ok backend "http://$BACKEND/"
for c in haproxy-lb haproxy-router; do
	haproxy -c -q -f "$WORK/$c.cfg" || die "haproxy config check of $c failed"
	start "$c" haproxy -db -f "$WORK/$c.cfg"
done
start gearbox-lb "$WORK/lbserver" -addr "$GB_LB" -backends "$BACKEND" -secret "$SECRET" -trusted "${GB_ROUTER%:*}"
start gearbox-router "$WORK/pathserver" -addr "$GB_ROUTER" -lb "$GB_LB"
wait_ok haproxy-lb "http://$HA_LB/"
wait_ok gearbox-lb "http://$GB_LB/"
wait_ok haproxy-router "http://$HA_ROUTER/" "$HOST"
wait_ok gearbox-router "http://$GB_ROUTER/" "$HOST"

TARGETS=(direct haproxy gearbox)
declare -A URL=([direct]="http://$BACKEND/" [haproxy]="http://$HA_ROUTER/" [gearbox]="http://$GB_ROUTER/")
declare -A PROCS=([direct]="" [haproxy]="haproxy-router haproxy-lb" [gearbox]="gearbox-router gearbox-lb")

log "versions: $(haproxy -v | head -1 | cut -d' ' -f1-3); $(go version | cut -d' ' -f3); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
for t in haproxy gearbox; do
	log "$t: $(curl -s -D - -o /dev/null -H "Host: $HOST" "${URL[$t]}" | tr -d '\r' | grep -i '^set-cookie:' || echo 'no cookie')"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: unknown.example.com" "${URL[$t]}")
	[ "$code" = 404 ] || die "$t answers $code to an unknown host, want 404"
done
sleep 2

# --- measure ----------------------------------------------------------------

# bench TARGET ROUND: one wrk run; appends "round target rps p50 p99
# proxies_us backend_us" to WORK/runs, the CPU time the chain's two
# proxies and the backend used per request, in microseconds.
bench() {
	local t=$1 r=$2 out="$WORK/wrk-$1-$2.txt" rps p50 p99 n errs
	local px0 px1 be0 be1 pxus beus
	px0=$(cpu_ticks $(for n in ${PROCS[$t]}; do echo "${PID[$n]}"; done))
	be0=$(cpu_ticks "${PID[backend]}")
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Host: $HOST" "${URL[$t]}" >"$out" 2>&1 || {
		cat "$out" >&2
		die "wrk against $t failed"
	}
	px1=$(cpu_ticks $(for n in ${PROCS[$t]}; do echo "${PID[$n]}"; done))
	be1=$(cpu_ticks "${PID[backend]}")
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
	n=$(awk '/requests in/ {print $1}' "$out")
	pxus=$(awk -v d=$((px1 - px0)) -v n="$n" -v k="$TICK_US" 'BEGIN {printf "%.1f", d * k / n}')
	beus=$(awk -v d=$((be1 - be0)) -v n="$n" -v k="$TICK_US" 'BEGIN {printf "%.1f", d * k / n}')
	errs=$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | tr '\n' ';' || true)
	printf '%s %s %s %s %s %s %s\n' "$r" "$t" "$rps" "$p50" "$p99" "$pxus" "$beus" >>"$WORK/runs"
	log "$(printf 'round %s  %-8s %6.0f req/s  p50 %6.2f ms  p99 %6.2f ms  cpu/req: proxies %5.1f us, backend %5.1f us  %s' \
		"$r" "$t" "$rps" "$p50" "$p99" "$pxus" "$beus" "$errs")"
}

log "warm-up: $WARMUP per target"
for t in "${TARGETS[@]}"; do
	wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -H "Host: $HOST" "${URL[$t]}" >/dev/null 2>&1 || die "warm-up of $t failed"
done

log "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds, $(nproc) cores shared by wrk, the proxies and the backend"
: >"$WORK/runs"
for r in $(seq "$ROUNDS"); do
	n=${#TARGETS[@]}
	for i in $(seq 0 $((n - 1))); do
		bench "${TARGETS[$(((i + r - 1) % n))]}" "$r"
	done
done

# --- report -----------------------------------------------------------------

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
	px[$2] = px[$2] " " $6; be[$2] = be[$2] " " $7
	R[$1, $2] = $3; P5[$1, $2] = $4; P9[$1, $2] = $5; rounds[$1] = 1
}
END {
	print "| target | req/s | p50 (ms) | p99 (ms) | req/s vs HAProxy | p50 vs HAProxy | p99 vs HAProxy | proxies CPU/req (µs) | backend CPU/req (µs) |"
	print "|---|---|---|---|---|---|---|---|---|"
	n = split(order, ts, " ")
	for (i = 1; i <= n; i++) {
		t = ts[i]; rr = ""; r5 = ""; r9 = ""
		for (r in rounds) {
			rr = rr " " R[r, t] / R[r, "haproxy"]
			r5 = r5 " " P5[r, t] / P5[r, "haproxy"]
			r9 = r9 " " P9[r, t] / P9[r, "haproxy"]
		}
		mr[t] = median(rr); m5[t] = median(r5); m9[t] = median(r9)
		printf "| %s | %.0f | %.2f | %.2f | %.2fx | %.2fx | %.2fx | %s | %.1f |\n", t, median(rps[t]), median(p50[t]),
			median(p99[t]), mr[t], m5[t], m9[t], (t == "direct" ? "-" : sprintf("%.1f", median(px[t]))), median(be[t])
	}
	printf "\ntarget: gearbox req/s >= 0.90x HAProxy: %.2fx, %s (p50 %.2fx, p99 %.2fx)\n",
		mr["gearbox"], (mr["gearbox"] >= 0.9 ? "met" : "missed"), m5["gearbox"], m9["gearbox"]
}' "$WORK/runs"
