#!/usr/bin/env bash
# dns.sh: queries/s and average latency of gearbox's authoritative DNS
# server (dnsmgr.Server) next to NSD, both serving the same zone of 1,000
# apps on loopback, measured by dnsperf with the same query file.
#
#   scripts/bench/dns.sh            # from the repository root
#
# It installs dnsperf and nsd from Debian's packages if they are missing,
# builds scripts/bench/dnsserver, which runs gearbox's DNS server over a
# real store holding APPS scalable HA apps (each name with two A records,
# each ha- name with the two routers'), takes the zone that server serves
# (as master file) and the query file (an A query for every app name and
# every ha- name) it writes, loads that zone in NSD, and runs dnsperf
# against each server in turn, ROUNDS times, in alternating order so that
# drifts of a noisy machine hit both alike. It prints each run and the
# medians, with gearbox's ratios to NSD. Everything it starts is stopped on
# exit.
#
# Environment (defaults in brackets):
#   ROUNDS [5]  DURATION [10] (seconds)  CLIENTS [4]  OUTSTANDING [100]
#   APPS [1000]  WARMUP [2] (seconds)  NSD_SERVERS [nproc]
#   KEEP=1      keep the work directory (configs, logs, raw dnsperf output)
#   PROFILE=1   write a CPU profile of gearbox's server to the work
#               directory (implies KEEP=1)
#
# NSD runs NSD_SERVERS server processes with reuseport (as many as cores:
# its fastest setting here) and minimal-responses, so that both send the
# same answers; gearbox runs with Go's defaults (GOMAXPROCS = cores).
# Addresses: gearbox 127.0.0.51:5300, NSD 127.0.0.52:5300; the store
# members of the gearbox server use 127.0.0.41-46.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BENCH=dns.sh
# shellcheck source=scripts/bench/common.sh
. scripts/bench/common.sh

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}
APPS=${APPS:-1000}
WARMUP=${WARMUP:-2}
NSD_SERVERS=${NSD_SERVERS:-$(nproc)}
KEEP=${KEEP:-0}
PROFILE=${PROFILE:-0}
[ "$PROFILE" = 1 ] && KEEP=1

GEARBOX_IP=127.0.0.51
NSD_IP=127.0.0.52
PORT=5300
ZONE=bench.test

need_go

# --- packages ---------------------------------------------------------------

apt_install dnsperf nsd bind9-dnsutils
# Debian may start an nsd service of its own; it listens on port 53 of
# other addresses and is left alone.

# wait_answer NAME IP: waits up to 30 s for the server started as NAME to
# answer the last app's ha- name on IP:PORT with two records.
wait_answer() {
	local i n
	for i in $(seq 300); do
		if ! kill -0 "${PID[$1]}" 2>/dev/null; then
			break
		fi
		n=$( (dig +short +time=1 +tries=1 @"$2" -p $PORT "ha-app$(printf %04d $((APPS - 1)))-bench.$ZONE" A 2>/dev/null || true) |
			grep -c '^[0-9]' || true)
		[ "$n" = 2 ] && return 0
		sleep 0.1
	done
	log "--- $WORK/$1.log"
	cat "$WORK/$1.log" >&2 || true
	die "$1 does not answer on $2:$PORT"
}

for ip in $GEARBOX_IP $NSD_IP; do
	if dig +time=1 +tries=1 @"$ip" -p $PORT "$ZONE" SOA >/dev/null 2>&1; then
		die "something already answers DNS on $ip:$PORT"
	fi
done

# --- gearbox ----------------------------------------------------------------

log "building scripts/bench/dnsserver"
go build -o "$WORK/dnsserver" ./scripts/bench/dnsserver
PROFILE_ARGS=()
[ "$PROFILE" = 1 ] && PROFILE_ARGS=(-cpuprofile "$WORK/gearbox.pprof")
start gearbox "$WORK/dnsserver" -addr "$GEARBOX_IP:$PORT" -zone "$ZONE" -apps "$APPS" \
	-zonefile "$WORK/$ZONE.zone" -queries "$WORK/queries.txt" "${PROFILE_ARGS[@]}"
wait_answer gearbox $GEARBOX_IP
for i in $(seq 100); do
	grep -q '^ready' "$WORK/gearbox.log" && break
	sleep 0.1
done
grep -q '^ready' "$WORK/gearbox.log" || die "dnsserver did not write the zone and query files"

# --- NSD, on the zone gearbox serves -----------------------------------------

mkdir -p "$WORK/nsd"
cp "$WORK/$ZONE.zone" "$WORK/nsd/"
cat >"$WORK/nsd.conf" <<EOF
server:
    ip-address: $NSD_IP@$PORT
    server-count: $NSD_SERVERS
    reuseport: yes
    minimal-responses: yes
    hide-version: yes
    username: ""
    chroot: ""
    zonesdir: "$WORK/nsd"
    pidfile: "$WORK/nsd/nsd.pid"
    database: ""
    zonelistfile: "$WORK/nsd/zone.list"
    xfrdfile: "$WORK/nsd/xfrd.state"
    xfrdir: "$WORK/nsd"
    logfile: "$WORK/nsd/nsd.log"
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: $ZONE
    zonefile: $ZONE.zone
EOF
nsd-checkconf "$WORK/nsd.conf" || die "nsd config check failed"
start nsd nsd -d -c "$WORK/nsd.conf"
wait_answer nsd $NSD_IP

# Both must give the same answers to the query file's names.
for q in "app0000-bench.$ZONE" "ha-app0000-bench.$ZONE" "app$(printf %04d $((APPS / 2)))-bench.$ZONE"; do
	g=$(dig +short @$GEARBOX_IP -p $PORT "$q" A | sort)
	n=$(dig +short @$NSD_IP -p $PORT "$q" A | sort)
	[ "$g" = "$n" ] || die "gearbox and NSD answer $q differently: [$g] [$n]"
done

# --- measure ----------------------------------------------------------------

declare -A IP=([gearbox]=$GEARBOX_IP [nsd]=$NSD_IP)

# perf TARGET SECONDS OUT: one dnsperf run.
perf() {
	dnsperf -s "${IP[$1]}" -p $PORT -d "$WORK/queries.txt" -l "$2" -c "$CLIENTS" -q "$OUTSTANDING" -T 1 >"$3" 2>&1 || {
		cat "$3" >&2
		die "dnsperf against $1 failed"
	}
}

# bench TARGET ROUND: appends "round target qps avg_latency_ms lost cpu_us"
# to WORK/runs, cpu_us being the server's CPU time per query.
bench() {
	local t=$1 r=$2 out="$WORK/dnsperf-$1-$2.txt" qps lat lost c0 c1 n cpu
	c0=$(cpu_ticks "${PID[$t]}")
	perf "$t" "$DURATION" "$out"
	c1=$(cpu_ticks "${PID[$t]}")
	qps=$(awk '/Queries per second:/ {print $4}' "$out")
	lat=$(awk '/Average Latency/ {printf "%.3f", $4 * 1000}' "$out")
	lost=$(awk '/Queries lost:/ {print $3}' "$out")
	n=$(awk '/Queries completed:/ {print $3}' "$out")
	cpu=$(awk -v d=$((c1 - c0)) -v n="$n" -v k="$TICK_US" 'BEGIN {printf "%.2f", d * k / n}')
	printf '%s %s %s %s %s %s\n' "$r" "$t" "$qps" "$lat" "$lost" "$cpu" >>"$WORK/runs"
	log "$(printf 'round %s  %-8s %9.0f queries/s  avg latency %6.3f ms  lost %s  server cpu/query %5.2f us' \
		"$r" "$t" "$qps" "$lat" "$lost" "$cpu")"
}

log "versions: $(nsd -v 2>&1 | head -1); dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2; exit}'); $(go version | cut -d' ' -f3)"
log "zone: $(grep -c . "$WORK/$ZONE.zone") records; queries: $(wc -l <"$WORK/queries.txt") names (A), sent in a loop"
log "warm-up: ${WARMUP}s per server"
for t in gearbox nsd; do
	perf "$t" "$WARMUP" "$WORK/warmup-$t.txt"
done

log "dnsperf -c $CLIENTS -q $OUTSTANDING -T 1 -l $DURATION, $ROUNDS rounds, $(nproc) cores shared by dnsperf and the server"
: >"$WORK/runs"
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then
		bench nsd "$r"
		bench gearbox "$r"
	else
		bench gearbox "$r"
		bench nsd "$r"
	fi
done

# --- report -----------------------------------------------------------------

# median COLUMN TARGET: median of a column of WORK/runs for TARGET.
median() {
	awk -v c="$1" -v t="$2" '$2 == t {print $c}' "$WORK/runs" | sort -g |
		awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# ratio_median COLUMN: median over rounds of gearbox's value / NSD's.
ratio_median() {
	awk -v c="$1" '{v[$1 " " $2] = $c; r[$1] = 1} END {for (k in r) if (v[k " nsd"] > 0) print v[k " gearbox"] / v[k " nsd"]}' "$WORK/runs" |
		sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

echo
echo "medians of $ROUNDS rounds of ${DURATION}s, $APPS apps ($(wc -l <"$WORK/queries.txt") names), dnsperf -c $CLIENTS -q $OUTSTANDING:"
printf '%-8s %12s %16s %16s\n' server "queries/s" "avg latency ms" "cpu/query us"
for t in nsd gearbox; do
	printf '%-8s %12.0f %16.3f %16.2f\n' "$t" "$(median 3 $t)" "$(median 4 $t)" "$(median 6 $t)"
done
qr=$(ratio_median 3)
lr=$(ratio_median 4)
printf 'gearbox/NSD (median of per-round ratios): queries/s %.2fx (target >= 0.8x), avg latency %.2fx (target <= 1.5x)\n' "$qr" "$lr"
