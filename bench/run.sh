#!/usr/bin/env bash
# Benchmark of the node's request path: ServerInfo and RepositoryExists at a
# fixed concurrency, the node's idle and loaded RSS, and raw git doing the
# comparable work (one process per lookup, as a git-spawning server pays) in
# the same run on the same machine.
#
#   bench/run.sh                   16 streams, 10 s per RPC
#   CONCURRENCY=32 DURATION=30s bench/run.sh
source "$(dirname "$0")/lib.sh"
git init --quiet --bare "$work/storage/bench.git"
start_node node
echo "# machine: $(nproc) cores, $(uname -sr), $(git --version)"
echo "# node pid $pid; access log to a file; load generator on the same machine"
for rpc in ServerInfo RepositoryExists; do
    target/release/cairn-load --address "unix:$work/node.socket" --rpc "$rpc" \
        --repository default:bench.git --concurrency "$concurrency" --duration "$duration" --pid "$pid"
done

# Raw git: the same number of parallel streams, each spawning git once per
# lookup (what a server pays when it shells out for a single ref or object).
n=2000
start=$(date +%s.%N)
seq "$n" | xargs -P "$concurrency" -I{} git -C "$work/storage/bench.git" rev-parse --is-bare-repository >/dev/null
end=$(date +%s.%N)
echo "raw git rev-parse --is-bare-repository: $n spawns, $concurrency parallel: $(rate "$n" "$start" "$end") spawns/s"
start=$(date +%s.%N)
seq "$n" | xargs -P "$concurrency" -I{} git --version >/dev/null
end=$(date +%s.%N)
echo "raw git --version: $n spawns, $concurrency parallel: $(rate "$n" "$start" "$end") spawns/s"
