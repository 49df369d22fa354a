#!/usr/bin/env bash
# Router overhead: the same reads and pushes through `praefect` (three
# nodes, PostgreSQL metadata) and straight to one node, in one run.
#
#   FindCommit at a fixed concurrency (req/s, latency) via the router and
#   direct; sequential pushes of one commit via the router (mutator: intent,
#   primary, settle, replication) and direct; the time until the three
#   replicas hold the pushed repository.
#
#   bench/router.sh                       16 streams, 10 s per load run
#   PUSHES=50 bench/router.sh
source "$(dirname "$0")/lib.sh"
source dev/lib/pg.sh
pushes="${PUSHES:-20}"
cargo build --release --quiet -p cairn-router
pg_install_if_missing
# PostgreSQL runs as nobody when we are root, so its directory must be
# reachable: not under the private scratch directory.
pgdir="$(mktemp -d /tmp/cairn-bench-pg.XXXXXX)"
chmod 755 "$pgdir"
trap 'pg_stop "$pgdir" || true; rm -rf "$pgdir"; bench_cleanup' EXIT
pg_start "$pgdir" 55432
"$(pg_bindir)/psql" -q -h "$pgdir" -p 55432 -U postgres -c "CREATE DATABASE praefect" postgres

# Three nodes with one storage each.
for n in 1 2 3; do
    mkdir -p "$work/storage-s$n" "$work/run-s$n"
    cat > "$work/s$n.toml" <<TOML
socket_path = "$work/s$n.socket"
runtime_dir = "$work/run-s$n"
bin_dir = "$PWD/target/release"
[auth]
token = "node-secret"
[logging]
level = "warn"
[[storage]]
name = "s$n"
path = "$work/storage-s$n"
TOML
    target/release/gitaly serve "$work/s$n.toml" > "$work/s$n.log" 2>&1 &
    bench_pids+=("$!")
done
cat > "$work/praefect.toml" <<TOML
socket_path = "$work/praefect.socket"
[logging]
level = "warn"
[database]
host = "$pgdir"
port = 55432
user = "postgres"
dbname = "praefect"
[[virtual_storage]]
name = "default"
TOML
for n in 1 2 3; do
    printf '[[virtual_storage.node]]\nstorage = "s%s"\naddress = "unix:%s/s%s.socket"\ntoken = "node-secret"\n' \
        "$n" "$work" "$n" >> "$work/praefect.toml"
done
for n in 1 2 3; do
    for _ in $(seq 100); do [ -S "$work/s$n.socket" ] && break; sleep 0.1; done
done
target/release/praefect -config "$work/praefect.toml" sql-migrate > /dev/null
target/release/praefect -config "$work/praefect.toml" > "$work/praefect.log" 2>&1 &
router_pid=$!
bench_pids+=("$router_pid")
for _ in $(seq 100); do [ -S "$work/praefect.socket" ] && break; sleep 0.1; done
[ -S "$work/praefect.socket" ] || { cat "$work/praefect.log" >&2; exit 1; }
router="unix:$work/praefect.socket"

echo "# machine: $(nproc) cores, $(uname -sr), $(git --version)"
# The bench repository, pushed through the router.
bench_repo "$work/src.git"
target/release/cairn-load --address "$router" --once --rpc CreateRepository --repository default:bench.git > /dev/null
export GIT_SSH_VARIANT=simple GITALY_ADDRESS="$router"
payload='{"repository":{"storageName":"default","relativePath":"bench.git","glRepository":"project-1"},"glId":"user-1","glUsername":"bench"}'
start=$(date +%s.%N)
GIT_SSH_COMMAND="$PWD/target/release/gitaly-ssh receive-pack" GITALY_PAYLOAD="$payload" \
    git -C "$work/src.git" push --quiet host:bench.git 'refs/heads/*:refs/heads/*' 'refs/tags/*:refs/tags/*'
pushed=$(date +%s.%N)
metadata() { target/release/praefect -config "$work/praefect.toml" metadata -virtual-storage default -relative-path bench.git; }
for _ in $(seq 600); do
    [ "$(metadata | grep -c 'fully up to date')" -eq 3 ] && break
    sleep 0.1
done
converged=$(date +%s.%N)
echo "push of $(git -C "$work/src.git" rev-list --count --all) commits / $(git -C "$work/src.git" for-each-ref | wc -l) refs through the router: $(awk -v a="$start" -v b="$pushed" 'BEGIN{printf "%.2f", b-a}') s; all three replicas up to date $(awk -v a="$pushed" -v b="$converged" 'BEGIN{printf "%.2f", b-a}') s later"
replica_path=$(metadata | awk -F': ' '/^Replica Path/ {print $2}' | tr -d '"')
primary=$(metadata | awk -F': ' '/^Primary/ {print $2}' | tr -d '"')

git -C "$work/src.git" rev-list --max-count=5000 main > "$work/commits"
node_pid() { pgrep -f "gitaly serve $work/$1.toml" | head -1; }
load() {
    target/release/cairn-load --concurrency "$concurrency" --duration "$duration" --rpc FindCommit \
        --inputs "$work/commits" "$@"
}
echo "## FindCommit, $concurrency streams, $duration"
echo "via router (reads spread over 3 replicas):"
load --address "$router" --repository default:bench.git --pid "$router_pid"
echo "direct to node $primary:"
load --address "unix:$work/$primary.socket" --repository "$primary:$replica_path" --token node-secret --pid "$(node_pid "$primary")"

# Pushes of one commit: through the router, and to a copy of the repository
# on one node directly (outside the cluster's records).
cp -r "$work/storage-$primary/$replica_path" "$work/storage-$primary/direct.git"
git clone --quiet --bare "$work/src.git" "$work/client.git"
export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.com
push_series() { # LABEL ADDRESS PAYLOAD TOKEN
    local label="$1" address="$2" payload="$3" token="$4" times=()
    for i in $(seq "$pushes"); do
        local parent tree commit s e
        parent=$(git -C "$work/client.git" rev-parse main)
        tree=$(git -C "$work/client.git" rev-parse "main^{tree}")
        commit=$(git -C "$work/client.git" commit-tree "$tree" -p "$parent" -m "bench $label $i")
        git -C "$work/client.git" update-ref refs/heads/main "$commit"
        s=$(date +%s%N)
        GITALY_ADDRESS="$address" GITALY_PAYLOAD="$payload" GITALY_TOKEN="$token" \
            GIT_SSH_COMMAND="$PWD/target/release/gitaly-ssh receive-pack" \
            git -C "$work/client.git" push --quiet host:x main
        e=$(date +%s%N)
        times+=($(( (e - s) / 1000000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v l="$label" '{a[NR]=$1} END {printf "push of one commit, %s: p50 %d ms, p90 %d ms (%d pushes)\n", l, a[int(NR*0.5)+1], a[int(NR*0.9)+1], NR}'
}
echo "## sequential pushes"
push_series "via router" "$router" "$payload" ""
direct_payload="{\"repository\":{\"storageName\":\"$primary\",\"relativePath\":\"direct.git\",\"glRepository\":\"project-1\"},\"glId\":\"user-1\",\"glUsername\":\"bench\"}"
git -C "$work/client.git" fetch --quiet "$work/storage-$primary/direct.git" main 2>/dev/null || true
push_series "direct to node" "unix:$work/$primary.socket" "$direct_payload" "node-secret"
