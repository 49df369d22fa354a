#!/usr/bin/env bash
# Write-path benchmark: the operations GitLab makes on users' behalf
# (UserCreateBranch, UserCommitFiles with one file, UserMergeToRef) at a
# fixed concurrency against the 20,000-commit benchmark repository, and in
# the same run the same operations done with the git CLI the way a server
# without Gitaly's RPCs would: `git branch`, and a temporary work tree per
# commit or merge (worktree add, write/merge, commit, update-ref, remove).
#
#   bench/ops.sh                         8 streams, 10 s per RPC
#   CONCURRENCY=4 DURATION=20s CLI_OPS=40 bench/ops.sh
source "$(dirname "$0")/lib.sh"
concurrency="${CONCURRENCY:-8}"
cli_ops="${CLI_OPS:-80}"
repo="$work/storage/bench.git"
bench_repo "$repo"

# Merge sources: commits off main~50, each adding its own file, so every
# merge into main is clean (as a merge request's usually is).
base="$(git -C "$repo" rev-parse main~50)"
for i in $(seq 200); do
    blob="$(echo "feature $i" | git -C "$repo" hash-object -w --stdin)"
    export GIT_INDEX_FILE="$work/index"
    git -C "$repo" read-tree "$base"
    git -C "$repo" update-index --add --cacheinfo "100644,$blob,features/feature-$i.txt"
    tree="$(git -C "$repo" write-tree)"
    unset GIT_INDEX_FILE
    GIT_AUTHOR_NAME=Dev GIT_AUTHOR_EMAIL=dev@example.com GIT_COMMITTER_NAME=Dev GIT_COMMITTER_EMAIL=dev@example.com \
        git -C "$repo" commit-tree "$tree" -p "$base" -m "feature $i"
done > "$work/sources"

start_node node
echo "# machine: $(nproc) cores, $(uname -sr), $(git --version)"
echo "# repository: $(git -C "$repo" rev-list --count --all) commits, $(git -C "$repo" for-each-ref | wc -l) refs, $(git -C "$repo" ls-tree -r main | wc -l) files at main"
load() {
    target/release/cairn-load --address "unix:$work/node.socket" --repository default:bench.git \
        --concurrency "$concurrency" --duration "$duration" --pid "$pid" "$@"
}
load --rpc UserCreateBranch --revision main
load --rpc UserCommitFiles --revision main
load --rpc UserMergeToRef --revision refs/heads/main --inputs "$work/sources"

# The git CLI, same machine, same run, same concurrency: one operation per
# line of output, its wall time in nanoseconds.
cli_op() {
    local op="$1" n="$2" start wt
    start="$(date +%s%N)"
    case "$op" in
    branch)
        git -C "$REPO" branch "cli-branch/$n" main
        ;;
    commit | merge)
        wt="$(mktemp -d "$WORK/wt.XXXXXX")"
        git -C "$REPO" worktree add --quiet --detach "$wt" main
        if [ "$op" = commit ]; then
            echo "one file written by the git CLI" > "$wt/cli-$n.txt"
            git -C "$wt" add "cli-$n.txt"
            git -C "$wt" -c user.name=Bench -c user.email=bench@example.com commit --quiet -m "Add one file"
            git -C "$REPO" update-ref "refs/heads/cli-commit/$n" "$(git -C "$wt" rev-parse HEAD)"
        else
            git -C "$wt" -c user.name=Bench -c user.email=bench@example.com \
                merge --quiet --no-ff --no-edit "$(sed -n "$(( (n % 200) + 1 ))p" "$WORK/sources")"
            git -C "$REPO" update-ref "refs/merge-requests/cli-$n/merge" "$(git -C "$wt" rev-parse HEAD)"
        fi
        git -C "$REPO" worktree remove --force "$wt"
        ;;
    esac
    echo $(( $(date +%s%N) - start ))
}
export -f cli_op
export REPO="$repo" WORK="$work"
cli() {
    local op="$1" label="$2" start end
    start=$(date +%s.%N)
    seq "$cli_ops" | xargs -P "$concurrency" -I{} bash -c "cli_op $op {}" | sort -n > "$work/times"
    end=$(date +%s.%N)
    awk -v label="$label" -v c="$concurrency" -v rate="$(rate "$cli_ops" "$start" "$end")" '
        { t[NR] = $1 }
        END {
            p50 = t[int((NR - 1) * 0.50 + 0.5) + 1]; p99 = t[int((NR - 1) * 0.99 + 0.5) + 1]
            printf "git CLI %s: %d ops at %d parallel, %s ops/s p50=%.3fms p99=%.3fms\n", label, NR, c, rate, p50 / 1e6, p99 / 1e6
        }' "$work/times"
}
cli branch "git branch (UserCreateBranch)"
cli commit "temporary work tree + commit (UserCommitFiles)"
cli merge "temporary work tree + merge --no-ff (UserMergeToRef)"
