#!/usr/bin/env bash
# Read-path benchmark: FindCommit, TreeEntry, GetBlob, GetTreeEntries,
# FindAllBranches, ListCommits (first page) and LastCommitForPath at a fixed
# concurrency against a deterministic repository of 20,000 commits and 1,502
# refs, with the node's CPU time per request; and in the same run the raw git
# baselines: `git cat-file --batch` (objects/s) and one `git log -1` process
# per lookup (lookups/s).
#
#   bench/read.sh                        16 streams, 10 s per RPC
#   CONCURRENCY=32 DURATION=20s bench/read.sh
source "$(dirname "$0")/lib.sh"
repo="$work/storage/bench.git"
bench_repo "$repo"

git -C "$repo" rev-list --max-count=5000 main > "$work/commits"
git -C "$repo" ls-tree -r main | awk '{print $3}' > "$work/blobs"
git -C "$repo" ls-tree -r --name-only main > "$work/paths"
git -C "$repo" ls-tree -d --name-only main > "$work/dirs"

start_node node

echo "# machine: $(nproc) cores, $(uname -sr), $(git --version)"
echo "# repository: $(git -C "$repo" rev-list --count --all) commits, $(git -C "$repo" for-each-ref | wc -l) refs, $(wc -l < "$work/paths") files at main"
load() {
    target/release/cairn-load --address "unix:$work/node.socket" --repository default:bench.git \
        --concurrency "$concurrency" --duration "$duration" --pid "$pid" "$@"
}
load --rpc FindCommit --inputs "$work/commits"
load --rpc TreeEntry --inputs "$work/paths"
load --rpc GetBlob --inputs "$work/blobs"
load --rpc GetTreeEntries --inputs "$work/dirs"
load --rpc FindAllBranches
load --rpc ListCommits
load --rpc LastCommitForPath --inputs "$work/paths"

# Raw git, same machine, same run.
for _ in $(seq 20); do cat "$work/commits"; done > "$work/batch-input"
n=$(wc -l < "$work/batch-input")
start=$(date +%s.%N)
git -C "$repo" cat-file --batch < "$work/batch-input" > /dev/null
end=$(date +%s.%N)
echo "raw git cat-file --batch: $n commit objects in one process: $(rate "$n" "$start" "$end") objects/s"
head -n 2000 "$work/commits" > "$work/log-input"
start=$(date +%s.%N)
xargs -P "$concurrency" -I{} git -C "$repo" log -1 --format=%H {} < "$work/log-input" > /dev/null
end=$(date +%s.%N)
echo "raw git log -1, one process per lookup, $concurrency parallel: $(rate 2000 "$start" "$end") lookups/s"

# The git command answering the same question as an RPC, one process per
# request as a server without in-process reads would run it.
per_request() {
    local label="$1" inputs="$2"; shift 2
    local n; n=$(wc -l < "$inputs")
    local start end
    start=$(date +%s.%N)
    xargs -P "$concurrency" -I{} "$@" < "$inputs" > /dev/null
    end=$(date +%s.%N)
    echo "raw git, one process per request, $concurrency parallel: $label: $(rate "$n" "$start" "$end") req/s"
}
seq 200 > "$work/200"
per_request "for-each-ref refs/heads with commit fields (FindAllBranches)" "$work/200" \
    sh -c 'git -C "$0" for-each-ref refs/heads --format="%(objectname) %(refname) %(tree) %(parent) %(subject) %(authorname) %(authoremail) %(authordate:raw) %(committername) %(committeremail) %(committerdate:raw)"' "$repo"
head -n 2000 "$work/log-input" | sed 's/.*/main/' > "$work/main-input"
per_request "log -20 main (ListCommits first page)" "$work/main-input" git -C "$repo" log -20 --format=%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%s {}
shuf -n 2000 --random-source=<(yes) "$work/paths" > "$work/path-input"
per_request "log -1 main -- <path> (LastCommitForPath)" "$work/path-input" git -C "$repo" log -1 --format=%H main -- {}
