# common.sh: what the benchmark scripts share. Source it after setting
# BENCH (the script's name, for messages) and KEEP (1: keep the work
# directory).

log() { printf '%s\n' "$*" >&2; }
die() { log "$BENCH: $*"; exit 1; }

# need_go puts Go's default install on PATH if go is not there already,
# and stops if there is none.
need_go() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null 2>&1 || die "go not found"
}

# --- packages ---------------------------------------------------------------

SUDO=
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
fi

# apt_install installs the Debian packages named that are not installed yet.
# It updates the package lists once, and only if something is missing.
apt_updated=0
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ $apt_updated = 0 ]; then
		$SUDO apt-get update -qq
		apt_updated=1
	fi
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- work directory, processes, cleanup --------------------------------------

# The work directory; what start runs is stopped when the script ends.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "$KEEP" = 1 ]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in the background, its output to WORK/NAME.log.
declare -A PID
start() {
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	PID[$name]=$!
}

# port_free ADDR: true if nothing accepts connections on ADDR.
port_free() {
	! (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# wait_ok NAME URL [HOST]: waits up to 10 s for URL to answer 200 (with
# Host HOST if given) while the process started as NAME, if any, runs.
wait_ok() {
	local i h=()
	[ -n "${3:-}" ] && h=(-H "Host: $3")
	for i in $(seq 100); do
		if [ -n "${PID[$1]:-}" ] && ! kill -0 "${PID[$1]}" 2>/dev/null; then
			break
		fi
		if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "${h[@]}" "$2" 2>/dev/null)" = 200 ]; then
			return 0
		fi
		sleep 0.1
	done
	log "--- $WORK/$1.log"
	cat "$WORK/$1.log" >&2 || true
	die "$1 does not answer 200 at $2"
}

# --- measure ----------------------------------------------------------------

# to_ms VALUE: converts wrk's "123.45us", "1.23ms" or "1.02s" to ms.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000
		else if (v ~ /ms$/) n += 0
		else if (v ~ /m$/) n *= 60000
		else if (v ~ /s$/) n *= 1000
		printf "%.3f", n
	}'
}

# descendants PID: PID and every process below it.
descendants() {
	local c
	echo "$1"
	for c in $(pgrep -P "$1" || true); do
		descendants "$c"
	done
}

# cpu_ticks PID...: CPU time (user + system, in clock ticks) used so far by
# each PID, its threads and its descendants (nginx's workers, NSD's server
# processes).
cpu_ticks() {
	local p sum=0 t
	for p in $(for q in "$@"; do descendants "$q"; done); do
		t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
		sum=$((sum + t))
	done
	echo "$sum"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# wrk_settings sets the load of the benchmarks that wrk drives, each
# setting overridable from the environment: ROUNDS, DURATION, THREADS,
# CONNS, WARMUP, KEEP.
wrk_settings() {
	ROUNDS=${ROUNDS:-5}
	DURATION=${DURATION:-10s}
	THREADS=${THREADS:-2}
	CONNS=${CONNS:-64}
	WARMUP=${WARMUP:-2s}
	KEEP=${KEEP:-0}
}
