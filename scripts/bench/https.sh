#!/usr/bin/env bash
# https.sh: requests/s of gearbox's router terminating TLS next to HAProxy
# terminating TLS, with the same certificate (ECDSA P-256) and cipher (TLS
# 1.3, TLS_AES_128_GCM_SHA256), both balancing over the same two backends on
# loopback, with kept-alive client connections and with a new connection
# (a full handshake) per request.
#
#   scripts/bench/https.sh         # from the repository root
#
# It installs haproxy, wrk, curl and openssl from Debian's packages if they
# are missing, builds scripts/bench/backend and scripts/bench/httpsserver
# (lb.FastRouter over a TLS listener with store/tlscert's SNI pick, as a
# router serves HTTPS), and runs wrk against each target and variant in
# turn, ROUNDS times, interleaved. It prints each run and the medians with
# the ratio to HAProxy per variant. Everything it starts is stopped on exit.
#
# Environment (defaults in brackets):
#   ROUNDS [5]  DURATION [10s]  THREADS [2]  CONNS [64]  WARMUP [2s]
#   KEEP=1      keep the work directory
#
# Addresses: backends 127.0.0.11:18081 and 127.0.0.12:18082; haproxy
# 127.0.0.30:18443, gearbox 127.0.0.31:18443.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH=https.sh
# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh

wrk_settings

BACKEND1=127.0.0.11:18081
BACKEND2=127.0.0.12:18082
HAPROXY_ADDR=127.0.0.30:18443
GEARBOX_ADDR=127.0.0.31:18443
HOST=www.bench.example

need_go

apt_install haproxy wrk curl openssl ca-certificates
for a in $BACKEND1 $BACKEND2 $HAPROXY_ADDR $GEARBOX_ADDR; do
	port_free "$a" || die "$a is in use"
done

log "building scripts/bench/backend and scripts/bench/httpsserver"
go build -o "$WORK/backend" ./scripts/bench/backend
go build -o "$WORK/httpsserver" ./scripts/bench/httpsserver

# One certificate for both: ECDSA P-256, for $HOST.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
	-keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"

# HAProxy as the reference: TLS 1.3 only with AES-128-GCM (what Go's TLS
# 1.3 picks on a CPU with AES instructions), leastconn over the same
# backends, kept-alive backend connections, X-Forwarded-For, no cookie (a
# router sets none: the app's LB gears do).
cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn 4096
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
    ssl-default-bind-options ssl-min-ver TLSv1.3

defaults
    mode http
    option forwardfor
    option redispatch
    retries 3
    timeout http-request 10s
    timeout connect 10s
    timeout client 1m
    timeout server 1m
    timeout http-keep-alive 10s
    maxconn 4096

listen apps
    bind $HAPROXY_ADDR ssl crt $WORK/haproxy.pem alpn http/1.1
    balance leastconn
    option httpchk GET /
    server b1 $BACKEND1 check inter 2000 rise 3 fall 2
    server b2 $BACKEND2 check inter 2000 rise 3 fall 2
CFG

start backend "$WORK/backend" -addr "$BACKEND1,$BACKEND2"
wait_ok backend "http://$BACKEND1/"
wait_ok backend "http://$BACKEND2/"
haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy config check failed"
start haproxy haproxy -db -f "$WORK/haproxy.cfg"
start gearbox "$WORK/httpsserver" -addr "$GEARBOX_ADDR" -cert "$WORK/cert.pem" -key "$WORK/key.pem" -backends "$BACKEND1,$BACKEND2"

TARGETS=(haproxy gearbox)
# wrk reaches each target by its address, so the handshake's server name
# is the address: both serve their one certificate to it all the same
# (wrk does not verify it; the SNI pick is a map lookup either way).
declare -A URL=([haproxy]="https://$HAPROXY_ADDR/" [gearbox]="https://$GEARBOX_ADDR/")
for t in "${TARGETS[@]}"; do
	for i in $(seq 100); do
		[ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "${URL[$t]}")" = 200 ] && break
		sleep 0.1
	done
	v=$(curl -sk -o /dev/null -w '%{http_version} %{ssl_verify_result}' --tls-max 1.3 -v "${URL[$t]}" 2>&1 | grep -o 'SSL connection using [^ ]* / [^ ]*' | head -1)
	log "$t: $v"
done
log "versions: $(haproxy -v | head -1 | cut -d' ' -f1-3); $(go version | cut -d' ' -f3); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(openssl version)"

# bench TARGET VARIANT ROUND: one wrk run; appends "round target variant
# rps p99 lb_us" to WORK/runs.
bench() {
	local t=$1 v=$2 r=$3 out="$WORK/wrk-$1-$2-$3.txt" rps p99 n lb0 lb1 lbus hdr=()
	[ "$v" = newconn ] && hdr=(-H "Connection: close")
	lb0=$(cpu_ticks "${PID[$t]}")
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${hdr[@]}" "${URL[$t]}" >"$out" 2>&1 || {
		cat "$out" >&2
		die "wrk against $t ($v) failed"
	}
	lb1=$(cpu_ticks "${PID[$t]}")
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
	n=$(awk '/requests in/ {print $1}' "$out")
	lbus=$(awk -v d=$((lb1 - lb0)) -v n="$n" -v k="$TICK_US" 'BEGIN {printf "%.1f", d * k / n}')
	printf '%s %s %s %s %s %s\n' "$r" "$t" "$v" "$rps" "$p99" "$lbus" >>"$WORK/runs"
	log "$(printf 'round %s  %-8s %-9s %7.0f req/s  p99 %7.2f ms  cpu/req %6.1f us  %s' "$r" "$t" "$v" "$rps" "$p99" "$lbus" \
		"$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | tr '\n' ';' || true)")"
}

log "warm-up: $WARMUP per target"
for t in "${TARGETS[@]}"; do
	wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${URL[$t]}" >/dev/null 2>&1 || die "warm-up of $t failed"
done

log "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds, $(nproc) cores shared by wrk, balancer and backends"
: >"$WORK/runs"
for r in $(seq "$ROUNDS"); do
	for v in keepalive newconn; do
		if [ $((r % 2)) = 1 ]; then order=(haproxy gearbox); else order=(gearbox haproxy); fi
		for t in "${order[@]}"; do
			bench "$t" "$v" "$r"
		done
	done
done

echo
echo "Medians of $ROUNDS rounds (wrk -t$THREADS -c$CONNS -d$DURATION); ratios are medians of per-round ratios to HAProxy"
echo
awk '
function median(s,    a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	rps[$2, $3] = rps[$2, $3] " " $4; p99[$2, $3] = p99[$2, $3] " " $5; cpu[$2, $3] = cpu[$2, $3] " " $6
	R[$1, $2, $3] = $4; rounds[$1] = 1
}
END {
	print "| variant | target | req/s | p99 (ms) | CPU/req (µs) | req/s vs HAProxy |"
	print "|---|---|---|---|---|---|"
	split("keepalive newconn", vs, " ")
	for (k = 1; k <= 2; k++) {
		v = vs[k]
		rr = ""
		for (r in rounds) rr = rr " " R[r, "gearbox", v] / R[r, "haproxy", v]
		m[v] = median(rr)
		printf "| %s | haproxy | %.0f | %.2f | %.1f | 1x |\n", v, median(rps["haproxy", v]), median(p99["haproxy", v]), median(cpu["haproxy", v])
		printf "| %s | gearbox | %.0f | %.2f | %.1f | %.2fx |\n", v, median(rps["gearbox", v]), median(p99["gearbox", v]), median(cpu["gearbox", v]), m[v]
	}
	printf "\ntarget: gearbox req/s >= 0.90x HAProxy: keep-alive %.2fx (%s), new connections %.2fx (%s)\n",
		m["keepalive"], (m["keepalive"] >= 0.9 ? "met" : "missed"), m["newconn"], (m["newconn"] >= 0.9 ? "met" : "missed")
}' "$WORK/runs"
