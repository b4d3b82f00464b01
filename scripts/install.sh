#!/bin/sh
# install.sh: install a built gearbox binary on this host as the systemd
# service gearbox.service. Run it as root on every host of the cluster;
# running it again changes nothing but what it was asked to change.
#
#   sh scripts/install.sh [options] [BINARY]      (BINARY: ./gearbox)
#
# It installs, under $DESTDIR (empty: the root of this host):
#
#   /usr/local/bin/gearbox                 the binary (0755), replaced when it differs
#   /etc/gearbox/                          (0700)
#   /etc/gearbox/gearbox.env               the member's settings (0600); kept if it
#                                          exists, unless --force-env
#   /etc/gearbox/cluster-secret            the cluster secret (0600): from
#                                          --cluster-secret-file or GEARBOX_CLUSTER_SECRET,
#                                          else generated; never replaced
#   /var/lib/gearbox/                      the member's state (0700 when created)
#   /etc/systemd/system/gearbox.service    the unit, replaced when it differs
#
# then, with an empty DESTDIR on a host that runs systemd and without
# --no-start, runs systemctl daemon-reload and systemctl enable --now
# gearbox.
set -eu

prog=install.sh
umask 022

usage() {
	cat <<'EOF'
usage: sh scripts/install.sh [options] [BINARY]

Installs BINARY (default ./gearbox) as the systemd service gearbox.service.

  --role ROLES                 broker, node, router, comma separated, or all
                               (GEARBOX_ROLE; default all)
  --name NAME                  member name, unique in the cluster
                               (GEARBOX_NAME; default this host's name)
  --join HOST[:PORT],...       members to join; none on the first host
                               (GEARBOX_JOIN)
  --domain DOMAIN              cloud domain of app hostnames
                               (GEARBOX_DOMAIN; default example.com)
  --bind IP                    address the member listens on (GEARBOX_BIND)
  --advertise IP               address other members reach it at
                               (GEARBOX_ADVERTISE)
  --cluster-secret-file FILE   the cluster secret, copied from another host
                               (or GEARBOX_CLUSTER_SECRET); default: generate
                               one, on the first host
  --force-env                  rewrite /etc/gearbox/gearbox.env if it exists
  --no-start                   do not enable and start the service

DESTDIR, when set, is the root everything is installed under (and then
systemctl is not run).
EOF
}

say() { printf '%s\n' "$*"; }
die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

# --- options ----------------------------------------------------------------

role=${GEARBOX_ROLE:-all}
name=${GEARBOX_NAME:-}
join=${GEARBOX_JOIN:-}
domain=${GEARBOX_DOMAIN:-example.com}
bind=${GEARBOX_BIND:-}
advertise=${GEARBOX_ADVERTISE:-}
secret_file=
force_env=no
start=yes
binary=

while [ $# -gt 0 ]; do
	case $1 in
	--*=*)
		opt=${1%%=*} val=${1#*=}
		shift
		set -- "$opt" "$val" "$@"
		continue
		;;
	--role | --name | --join | --domain | --bind | --advertise | --cluster-secret-file)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--role) role=$2 ;;
		--name) name=$2 ;;
		--join) join=$2 ;;
		--domain) domain=$2 ;;
		--bind) bind=$2 ;;
		--advertise) advertise=$2 ;;
		--cluster-secret-file) secret_file=$2 ;;
		esac
		shift 2
		;;
	--force-env) force_env=yes && shift ;;
	--no-start) start=no && shift ;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		break
		;;
	-*) die "unknown option $1 (see --help)" ;;
	*)
		[ -z "$binary" ] || die "one binary only: $binary and $1"
		binary=$1
		shift
		;;
	esac
done
if [ $# -gt 0 ]; then
	if [ -n "$binary" ] || [ $# -gt 1 ]; then
		die "one binary only"
	fi
	binary=$1
fi
binary=${binary:-./gearbox}
[ -n "$name" ] || name=$(uname -n)

# The values go into an environment file: keep them to characters that
# need no quoting there.
check_value() { # what value
	case $2 in
	*[!]A-Za-z0-9._:,[-]*) die "$1 '$2' holds characters other than letters, digits and . _ : , [ ] -" ;;
	esac
}
[ -n "$role" ] || die "--role is empty"
check_value --role "$role"
[ -n "$name" ] || die "--name is empty"
check_value --name "$name"
check_value --join "$join"
[ -n "$domain" ] || die "--domain is empty"
check_value --domain "$domain"
check_value --bind "$bind"
check_value --advertise "$advertise"
old_ifs=$IFS
IFS=,
for r in $role; do
	case $r in
	all | broker | node | router) ;;
	*) die "--role: unknown role '$r' (broker, node, router or all)" ;;
	esac
done
IFS=$old_ifs

[ -f "$binary" ] || die "$binary: no such file (build it: CGO_ENABLED=0 go build -o gearbox .)"
[ -x "$binary" ] || die "$binary is not executable"

DESTDIR=${DESTDIR:-}
case $DESTDIR in
'' | /*) ;;
*) die "DESTDIR must be an absolute path: $DESTDIR" ;;
esac
DESTDIR=${DESTDIR%/}
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
	die "run it as root (or set DESTDIR to install under another root)"
fi

# Paths on the target host (written under $DESTDIR).
bin_path=/usr/local/bin/gearbox
etc_dir=/etc/gearbox
env_path=$etc_dir/gearbox.env
secret_path=$etc_dir/cluster-secret
data_dir=/var/lib/gearbox
unit_path=/etc/systemd/system/gearbox.service

# The secret given, if any: read from a file or the environment (never
# argv), and written with umask 077. An installed secret is never
# replaced: every member needs the same one.
given=
if [ -n "$secret_file" ]; then
	if [ ! -f "$secret_file" ] || [ ! -r "$secret_file" ]; then
		die "--cluster-secret-file $secret_file: cannot read it"
	fi
	given=$(cat "$secret_file")
	[ -n "$given" ] || die "--cluster-secret-file $secret_file is empty"
elif [ -n "${GEARBOX_CLUSTER_SECRET:-}" ]; then
	given=$GEARBOX_CLUSTER_SECRET
fi
unset GEARBOX_CLUSTER_SECRET
if [ -n "$given" ] && [ -f "$DESTDIR$secret_path" ] && [ "$given" != "$(cat "$DESTDIR$secret_path")" ]; then
	die "$DESTDIR$secret_path exists and holds another secret: remove it first to replace it (every member needs the same one)"
fi

changed=
# tmp is the file being written, removed if the script stops half-way.
tmp=
trap 'if [ -n "$tmp" ]; then rm -f "$tmp"; fi' EXIT
note() { # what was done
	say "  $*"
}

# put_file installs the temporary file $1 at $2 with mode $3, unless $2
# already holds the same; it says which, and notes a change in $changed.
put_file() {
	if [ -e "$2" ] && [ ! -f "$2" ]; then
		die "$2 exists and is not a file"
	fi
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		rm -f "$1"
		chmod "$3" "$2"
		note "unchanged $2"
		return 0
	fi
	chmod "$3" "$1"
	mv -f "$1" "$2" # a rename: a running binary is replaced, not written over
	note "installed $2"
	changed="$changed $2"
}

say "installing gearbox${DESTDIR:+ under $DESTDIR}:"

# --- the binary ---------------------------------------------------------------

mkdir -p "$DESTDIR/usr/local/bin"
tmp=$DESTDIR$bin_path.new.$$
cp "$binary" "$tmp"
put_file "$tmp" "$DESTDIR$bin_path" 0755

# --- /etc/gearbox ---------------------------------------------------------------

mkdir -p "$DESTDIR$etc_dir"
chmod 0700 "$DESTDIR$etc_dir"

# env_line prints NAME=value, or a commented example when value is empty
# (an empty GEARBOX_ variable would set the flag to nothing).
env_line() { # NAME value example
	if [ -n "$2" ]; then
		say "$1=$2"
	else
		say "#$1=$3"
	fi
}

if [ -f "$DESTDIR$env_path" ] && [ "$force_env" = no ]; then
	note "kept $DESTDIR$env_path (it exists; --force-env rewrites it)"
else
	tmp=$DESTDIR$env_path.new.$$
	{
		say "# Settings of gearbox serve on this host, read by gearbox.service"
		say "# (EnvironmentFile=). Every flag of 'gearbox serve --help' may be set"
		say "# here as GEARBOX_<FLAG>, such as GEARBOX_ZONE=z1. No secrets here: the"
		say "# cluster secret is in $secret_path. After a change:"
		say "# systemctl restart gearbox."
		env_line GEARBOX_ROLE "$role" all
		env_line GEARBOX_NAME "$name" gb1
		env_line GEARBOX_DOMAIN "$domain" example.com
		env_line GEARBOX_JOIN "$join" 10.0.0.1
		env_line GEARBOX_BIND "$bind" 10.0.0.2
		env_line GEARBOX_ADVERTISE "$advertise" 10.0.0.2
		say "# The unit may write $data_dir only: another GEARBOX_DATA_DIR needs"
		say "# ReadWritePaths= for it (systemctl edit gearbox)."
	} >"$tmp"
	put_file "$tmp" "$DESTDIR$env_path" 0600
fi

if [ -f "$DESTDIR$secret_path" ]; then
	chmod 0600 "$DESTDIR$secret_path"
	note "kept $DESTDIR$secret_path"
else
	if [ -z "$given" ]; then
		# 32 bytes from the kernel's random source, as 64 hex digits.
		given=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
		case $given in
		*[!0-9a-f]*) die "could not read /dev/urandom" ;;
		esac
		[ ${#given} -eq 64 ] || die "could not read /dev/urandom"
		how=generated
	else
		how=installed
	fi
	tmp=$DESTDIR$secret_path.new.$$
	(
		umask 077
		printf '%s\n' "$given" >"$tmp"
	)
	chmod 0600 "$tmp"
	mv -f "$tmp" "$DESTDIR$secret_path"
	note "$how $DESTDIR$secret_path"
	changed="$changed $secret_path"
fi
given=

# --- /var/lib/gearbox -------------------------------------------------------------

# Created 0700; an existing one keeps its mode: a node that isolates gears
# makes it searchable by them (0711) at its start.
if [ -d "$DESTDIR$data_dir" ]; then
	note "kept $DESTDIR$data_dir"
else
	mkdir -p "$DESTDIR${data_dir%/*}"
	mkdir -m 0700 "$DESTDIR$data_dir"
	note "created $DESTDIR$data_dir"
fi

# --- the unit ---------------------------------------------------------------------

mkdir -p "$DESTDIR${unit_path%/*}"
tmp=$DESTDIR$unit_path.new.$$
cat >"$tmp" <<'EOF'
# gearbox.service: one gearbox member (scripts/install.sh writes it; put
# local changes in a drop-in: systemctl edit gearbox).
[Unit]
Description=gearbox member (gearbox serve)
# --bind names an address of this host: wait for the network to have it.
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
# The member's flags, as GEARBOX_* variables.
EnvironmentFile=/etc/gearbox/gearbox.env
# Secrets come from files (readable by root only), never from argv.
ExecStart=/usr/local/bin/gearbox serve --cluster-secret-file /etc/gearbox/cluster-secret
Restart=always
RestartSec=2s

# Stopping. The member takes SIGTERM as "leave the cluster gracefully":
# it announces its leave, closes its front listener (requests in flight
# finish), then stops its gears itself, SIGTERM then SIGKILL after 10 s.
# KillMode=mixed sends that SIGTERM to the member alone, and SIGKILL to
# whatever is left in the unit's cgroup (gear cgroups included) once the
# member has exited, or after TimeoutStopSec. The default
# (control-group) would send SIGTERM to every gear at the same moment,
# before the member could stop routing to them. KillMode=process would
# not keep gears running over a restart either: the member does not adopt
# them. Gear processes die with it (parent-death signal) and a starting
# node kills what an earlier run left (pid files, gear cgroups). It would
# only leave strays in the cgroup. The trade-off: restarting the member
# (or its host) restarts its gears. HA apps keep serving from their gears
# on the other nodes meanwhile.
KillMode=mixed
# Room for the leave (--leave-timeout, 10 s), the front's grace (10 s)
# and the gears' stop (10 s).
TimeoutStopSec=90s

# Gears: the node makes a cgroup per gear under its own (memory and pids
# limits) and needs the cgroup subtree delegated.
Delegate=yes
# Gears' processes and threads count against the unit: their limits are
# per gear (cgroups, RLIMIT_NPROC), not systemd's default cap on the unit.
TasksMax=infinity
# Gears' and the load balancers' sockets.
LimitNOFILE=1048576

# Hardening, kept to what lets the node isolate gears as root: it starts
# each gear as a uid of its own (setuid, setgid), writes its cgroups under
# /sys/fs/cgroup, and writes /var/lib/gearbox. Not set, and why:
#   ProtectControlGroups: would make /sys/fs/cgroup read-only (no gear cgroups).
#   PrivateUsers, DynamicUser, User: the node must be root to switch to gear uids.
#   CapabilityBoundingSet: the node needs setuid/setgid, chown, fowner,
#     dac_override, kill, net_bind_service (ports 53 and 80) and more; a
#     list that misses one breaks isolation silently.
#   MemoryDenyWriteExecute, SystemCallFilter: gears run any app (JITs of
#     Node.js, Java) and inherit them.
# Gears inherit what is set here.
#
# No setuid programs for the member or gears: the node sets no_new_privs on
# every gear anyway, and becomes a gear's uid with setuid(2) as root, which
# no_new_privs allows.
NoNewPrivileges=yes
# The whole file system read-only but the member's state; /dev, /proc and
# /sys (the cgroups) are left to the options below.
ProtectSystem=strict
ReadWritePaths=/var/lib/gearbox
# Gears have their HOME under /var/lib/gearbox, not /home.
ProtectHome=yes
# /tmp and /var/tmp of the member's own, shared by its gears.
PrivateTmp=yes
# Only pseudo devices (null, zero, random, tty, shm).
PrivateDevices=yes
# Gears see only their own processes in /proc (hidepid); the node (root)
# sees them all.
ProtectProc=invisible
# Kernel settings, modules, log and clock are not the member's to change.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectHostname=yes
# No new set-uid files; no realtime scheduling; no new namespaces but
# mount namespaces (each gear gets one, for its private /proc); no
# personality changes; native system calls only.
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=mnt
LockPersonality=yes
SystemCallArchitectures=native
# IP, Unix sockets, and netlink (to list the host's addresses).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK

[Install]
WantedBy=multi-user.target
EOF
put_file "$tmp" "$DESTDIR$unit_path" 0644

# --- start --------------------------------------------------------------------

running_systemd=no
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	running_systemd=yes
fi
if [ -n "$DESTDIR" ]; then
	say "not started: installed under DESTDIR $DESTDIR"
elif [ "$start" = no ]; then
	say "not started (--no-start): systemctl daemon-reload && systemctl enable --now gearbox"
elif [ "$running_systemd" = no ]; then
	say "not started: this host does not run systemd; run: $bin_path serve --cluster-secret-file $secret_path (with the settings of $env_path)"
else
	systemctl daemon-reload
	note "systemctl daemon-reload"
	was_active=no
	systemctl is-active --quiet gearbox && was_active=yes
	systemctl enable --now gearbox
	note "systemctl enable --now gearbox"
	case $was_active$changed in
	yes*"$bin_path"* | yes*"$unit_path"* | yes*"$env_path"*)
		say "gearbox was running: systemctl restart gearbox runs the new binary, unit or settings (its gears restart too)"
		;;
	esac
fi

# --- next steps -----------------------------------------------------------------

cat <<EOF

Next:
  - Every member needs the same cluster secret: copy $secret_path
    (mode 0600) to each other host and give it there to
    --cluster-secret-file (or GEARBOX_CLUSTER_SECRET).
  - On the other hosts, --join this member's address (GEARBOX_JOIN in
    $env_path), such as: sh scripts/install.sh --name gb2 --join ${advertise:-${bind:-THIS-HOST}} --cluster-secret-file cluster-secret ./gearbox
  - Log: journalctl -u gearbox; members: gearbox members --addr ${bind:-127.0.0.1} --cluster-secret-file $secret_path
EOF
