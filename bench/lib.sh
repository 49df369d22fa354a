# Shared set-up for the benchmark scripts (sourced, not run): release
# binaries, a scratch directory removed on exit, the deterministic bench
# repository and node start-up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source dev/setup.sh
concurrency="${CONCURRENCY:-16}"
duration="${DURATION:-10s}"

cargo build --release --quiet -p cairn-node -p cairn-bench
work="$(mktemp -d)"
bench_pids=()
bench_cleanup() {
    for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap bench_cleanup EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
mkdir -p "$work/storage" "$work/run"

# bench_repo PATH: 20,000 commits and 1,502 refs, kept as a maintained
# repository would be: one pack with bitmaps, packed refs and a commit-graph
# with Bloom filters.
bench_repo() {
    local repo="$1"
    git init --quiet --bare "$repo"
    target/release/cairn-bench-repo | git -C "$repo" fast-import --quiet --done
    git -C "$repo" repack -adq --write-bitmap-index
    git -C "$repo" pack-refs --all
    git -C "$repo" commit-graph write --reachable --changed-paths --no-progress
    git -C "$repo" symbolic-ref HEAD refs/heads/main
}

# start_node NAME [EXTRA_TOML]: a node serving $work/storage on
# $work/NAME.socket; sets $pid to its process id.
start_node() {
    local name="$1" extra="${2:-}"
    mkdir -p "$work/run-$name"
    cat > "$work/$name.toml" <<TOML
socket_path = "$work/$name.socket"
runtime_dir = "$work/run-$name"
bin_dir = "$PWD/target/release"
[logging]
format = "json"
level = "info"
[[storage]]
name = "default"
path = "$work/storage"
$extra
TOML
    target/release/gitaly serve "$work/$name.toml" > "$work/$name.log" 2>&1 &
    pid=$!
    bench_pids+=("$pid")
    for _ in $(seq 100); do [ -S "$work/$name.socket" ] && break; sleep 0.1; done
    [ -S "$work/$name.socket" ] || { cat "$work/$name.log" >&2; echo "node $name did not start" >&2; exit 1; }
}

# stop_node PID
stop_node() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# rate N START END: N per second between two `date +%s.%N` stamps.
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

# cpu_ticks PID: user+system clock ticks a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
