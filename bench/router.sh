#!/usr/bin/env bash
# Router overhead: the same reads and pushes through `praefect` (three
# nodes, PostgreSQL metadata) and straight to one node, in one run.
#
#   FindCommit at a fixed concurrency (req/s, latency) via the router and
#   direct; sequential pushes of one commit via the router (mutator: intent,
#   primary, settle, replication) and direct; the time until the three
#   replicas hold the pushed repository.
#
#   Pushes are measured three ways in the same run: through the router to
#   a repository with three replicas (transactional: all three nodes vote),
#   through the router to one with a single replica, and to a node directly;
#   sequential (latency) and from several clients at once (throughput).
#
#   bench/router.sh                       16 streams, 10 s per load run
#   PUSHES=50 CLIENTS=4 bench/router.sh
#   READS=0 bench/router.sh               pushes only
source "$(dirname "$0")/lib.sh"
source dev/lib/pg.sh
pushes="${PUSHES:-20}"
clients="${CLIENTS:-4}"
reads="${READS:-1}"
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
prom="127.0.0.1:${PROM_PORT:-59090}"
cat > "$work/praefect.toml" <<TOML
socket_path = "$work/praefect.socket"
prometheus_listen_addr = "$prom"
[logging]
level = "${ROUTER_LOG_LEVEL:-warn}"
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
metadata() { target/release/praefect -config "$work/praefect.toml" metadata -virtual-storage default -relative-path "${1:-bench.git}"; }
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
if [ "$reads" = 1 ]; then
    echo "## FindCommit, $concurrency streams, $duration"
    echo "via router (reads spread over 3 replicas):"
    load --address "$router" --repository default:bench.git --pid "$router_pid"
    echo "direct to node $primary:"
    load --address "unix:$work/$primary.socket" --repository "$primary:$replica_path" --token node-secret --pid "$(node_pid "$primary")"
fi

# Pushes of one commit go to three repositories with the same content (the
# bench repository's main branch): one with three replicas and one with a
# single replica through the router, and a copy on one node straight.
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
# push_parallel LABEL ADDRESS PAYLOAD TOKEN: $clients clients, each pushing
# $pushes commits to its own branch of the same repository at once.
push_parallel() {
    local label="$1" address="$2" payload="$3" token="$4" s e
    for c in $(seq "$clients"); do
        rm -rf "$work/client-$c.git"
        git clone --quiet --bare --shared "$work/client.git" "$work/client-$c.git"
    done
    s=$(date +%s%N)
    local running=()
    for c in $(seq "$clients"); do
        (
            for i in $(seq "$pushes"); do
                parent=$(git -C "$work/client-$c.git" rev-parse main)
                tree=$(git -C "$work/client-$c.git" rev-parse "main^{tree}")
                commit=$(git -C "$work/client-$c.git" commit-tree "$tree" -p "$parent" -m "bench $label client $c push $i")
                git -C "$work/client-$c.git" update-ref refs/heads/main "$commit"
                GITALY_ADDRESS="$address" GITALY_PAYLOAD="$payload" GITALY_TOKEN="$token" \
                    GIT_SSH_COMMAND="$PWD/target/release/gitaly-ssh receive-pack" \
                    git -C "$work/client-$c.git" push --quiet host:x "main:refs/heads/client-$c"
            done
        ) &
        running+=("$!")
    done
    wait "${running[@]}"
    e=$(date +%s%N)
    awk -v l="$label" -v n=$((clients * pushes)) -v c="$clients" -v ns=$((e - s)) \
        'BEGIN {printf "%d clients pushing at once, %s: %d pushes in %.1f s = %.1f pushes/s\n", c, l, n, ns/1e9, n/(ns/1e9)}'
}
# payload_for STORAGE RELATIVE_PATH
payload_for() {
    printf '{"repository":{"storageName":"%s","relativePath":"%s","glRepository":"project-1"},"glId":"user-1","glUsername":"bench"}' "$1" "$2"
}

for name in triple single; do
    target/release/cairn-load --address "$router" --once --rpc CreateRepository --repository "default:$name.git" > /dev/null
done
target/release/praefect -config "$work/praefect.toml" set-replication-factor -virtual-storage default \
    -relative-path single.git -replication-factor 1 > /dev/null
triple_payload=$(payload_for default triple.git)
single_payload=$(payload_for default single.git)
for name in triple single; do
    GITALY_PAYLOAD="$(payload_for default "$name.git")" GIT_SSH_COMMAND="$PWD/target/release/gitaly-ssh receive-pack" \
        git -C "$work/src.git" push --quiet "host:$name.git" main
done
for _ in $(seq 600); do
    [ "$(metadata triple.git | grep -c 'fully up to date')" -eq 3 ] && break
    sleep 0.1
done
triple_primary=$(metadata triple.git | awk -F': ' '/^Primary/ {print $2}' | tr -d '"')
triple_replica=$(metadata triple.git | awk -F': ' '/^Replica Path/ {print $2}' | tr -d '"')
cp -r "$work/storage-$triple_primary/$triple_replica" "$work/storage-$triple_primary/direct.git"
direct_payload=$(payload_for "$triple_primary" direct.git)
direct_address="unix:$work/$triple_primary.socket"

echo "## sequential pushes (one client)"
push_series "via router, 3 replicas voting" "$router" "$triple_payload" ""
push_series "via router, 1 replica" "$router" "$single_payload" ""
push_series "direct to node" "$direct_address" "$direct_payload" "node-secret"
echo "## concurrent pushes"
push_parallel "via router, 3 replicas voting" "$router" "$triple_payload" ""
push_parallel "via router, 1 replica" "$router" "$single_payload" ""
push_parallel "direct to node" "$direct_address" "$direct_payload" "node-secret"
state=$(metadata triple.git)
echo "after the pushes: $(grep -c 'fully up to date' <<<"$state") of 3 replicas of triple.git up to date;" \
    "transactions counted: $(curl -s "http://$prom/metrics" 2>/dev/null | awk '/^gitaly_praefect_transactions_total/ {print $2}')"
