#!/usr/bin/env bash
# Benchmark of the node's request path: ServerInfo and RepositoryExists at a
# fixed concurrency, the node's idle and loaded RSS, and raw git doing the
# comparable work (one process per lookup, as a git-spawning server pays) in
# the same run on the same machine.
#
#   bench/run.sh                   16 streams, 10 s per RPC
#   CONCURRENCY=32 DURATION=30s bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source dev/setup.sh
concurrency="${CONCURRENCY:-16}"
duration="${DURATION:-10s}"

cargo build --release --quiet -p cairn-node -p cairn-bench
work="$(mktemp -d)"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/storage" "$work/run"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git init --quiet --bare "$work/storage/bench.git"
cat > "$work/config.toml" <<TOML
socket_path = "$work/gitaly.socket"
runtime_dir = "$work/run"
[logging]
format = "json"
level = "info"
[[storage]]
name = "default"
path = "$work/storage"
TOML
target/release/gitaly serve "$work/config.toml" > "$work/gitaly.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$work/gitaly.socket" ] && break; sleep 0.1; done

echo "# machine: $(nproc) cores, $(uname -sr), $(git --version)"
echo "# node pid $pid; access log to a file; load generator on the same machine"
for rpc in ServerInfo RepositoryExists; do
    target/release/cairn-load --address "unix:$work/gitaly.socket" --rpc "$rpc" \
        --repository default:bench.git --concurrency "$concurrency" --duration "$duration" --pid "$pid"
done

# Raw git: the same number of parallel streams, each spawning git once per
# lookup (what a server pays when it shells out for a single ref or object).
n=2000
start=$(date +%s.%N)
seq "$n" | xargs -P "$concurrency" -I{} git -C "$work/storage/bench.git" rev-parse --is-bare-repository >/dev/null
end=$(date +%s.%N)
echo "raw git rev-parse --is-bare-repository: $n spawns, $concurrency parallel: $(awk -v n="$n" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }') spawns/s"
start=$(date +%s.%N)
seq "$n" | xargs -P "$concurrency" -I{} git --version >/dev/null
end=$(date +%s.%N)
echo "raw git --version: $n spawns, $concurrency parallel: $(awk -v n="$n" -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", n / (b - a) }') spawns/s"
