#!/usr/bin/env bash
# run.sh: the embedded NATS benchmark (scripts/bench/nats, see its
# main.go): builds the gearbox binary, a standalone nats-server of the
# version in go.mod (from the module cache, not a distribution's package)
# and the benchmark into a temporary directory, and runs the benchmark.
#
#   scripts/bench/nats/run.sh              # from anywhere in the repository
#   scripts/bench/nats/run.sh -rounds 3    # flags go to the benchmark
#
# It uses 127.0.0.61-69 and .71-.77 (ports 4222, 6222, and the gearbox
# members' 80, 7480, 7946, 7947); everything it starts is stopped on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

BIN=$(mktemp -d "${TMPDIR:-/tmp}/natsbench-bin.XXXXXX")
trap 'rm -rf "$BIN"' EXIT

echo "building gearbox, nats-server $(go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2) and the benchmark" >&2
export CGO_ENABLED=0
go build -o "$BIN/gearbox" .
go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2
go build -o "$BIN/natsbench" ./scripts/bench/nats
"$BIN/natsbench" -gearbox "$BIN/gearbox" -nats-server "$BIN/nats-server" "$@"
