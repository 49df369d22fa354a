#!/usr/bin/env bash
# Wire-protocol benchmark on the read benchmark's repository (20,000 commits,
# 1,502 refs), all in one run on one machine:
#   1. `git clone --bare` (protocol v2) through gitaly-ssh (sidechannel) and
#      through the gitaly-http front door, against `git clone --bare
#      --no-local` of the bare repository directly (median of RUNS,
#      interleaved);
#   2. with `[pack_objects_cache]` on: the node's CPU for the first clone of
#      a state and for repeated clones of the same state, on the repository
#      and on a copy without its bitmap index;
#   3. 8 concurrent clones, against 8 concurrent `git clone --no-local`;
#   4. a push of 1,000 new commits through gitaly-ssh (hooks included),
#      against a local `git push` into a copy of the same repository.
# Node CPU is user+system time of the node and the git processes it waited
# for (/proc/<pid>/stat fields 14-17).
#
#   bench/wire.sh            RUNS=5
source "$(dirname "$0")/lib.sh"
runs="${RUNS:-5}"
repo="$work/storage/bench.git"
bench_repo "$repo"
bin="$PWD/target/release"
hz=$(getconf CLK_TCK)

echo "# machine: $(nproc) cores, $(uname -sr), $(git --version)"
echo "# repository: $(git -C "$repo" rev-list --count --all) commits, $(git -C "$repo" for-each-ref | wc -l) refs, $(du -sh "$repo/objects" | cut -f1) of objects"

node_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# ssh_git NODE MODE ARGS...: git talking to node NAME through gitaly-ssh.
ssh_git() {
    local name="$1" mode="$2"; shift 2
    GIT_SSH_COMMAND="$bin/gitaly-ssh $mode" GIT_SSH_VARIANT=simple \
        GITALY_ADDRESS="unix:$work/$name.socket" GITALY_USE_SIDECHANNEL=1 \
        GITALY_PAYLOAD='{"repository":{"storageName":"default","relativePath":"'"${REL:-bench.git}"'","glRepository":"project-1"},"gitProtocol":"version=2"'"${PAYLOAD_EXTRA:-}"'}' \
        git "$@"
}

# timed LABEL NODE_PID CMD...: runs CMD into a fresh $work/dst, appending
# "<wall ms> <node cpu ms>" to $work/t-LABEL.
timed() {
    local label="$1" npid="$2"; shift 2
    rm -rf "$work/dst"
    local c0 c1 t0 t1
    c0=$(node_ticks "$npid"); t0=$(date +%s.%N)
    "$@" > /dev/null 2> "$work/err" || { cat "$work/err" >&2; echo "failed: $*" >&2; exit 1; }
    t1=$(date +%s.%N); c1=$(node_ticks "$npid")
    echo "$(ms "$t0" "$t1") $(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN { printf "%.0f", (b - a) * 1000 / hz }')" >> "$work/t-$label"
}
report() {
    local label="$1" what="$2"
    local wall cpu
    wall=$(cut -d' ' -f1 "$work/t-$label" | median)
    cpu=$(cut -d' ' -f2 "$work/t-$label" | median)
    printf '%-58s median wall %8.1f ms   node CPU %6.0f ms   (n=%d)\n' "$what" "$wall" "$cpu" "$(wc -l < "$work/t-$label")"
    echo "$wall" > "$work/m-$label"
}
ratio() { awk -v a="$(cat "$work/m-$1")" -v b="$(cat "$work/m-$2")" 'BEGIN { printf "%.3f", a / b }'; }

# 1. One clone at a time, no pack-objects cache.
start_node plain
plain=$pid
target/release/gitaly-http --listen 127.0.0.1:0 --storage default --address "unix:$work/plain.socket" > "$work/http.out" 2>"$work/http.log" &
bench_pids+=("$!")
for _ in $(seq 50); do grep -q "listening on" "$work/http.out" 2>/dev/null && break; sleep 0.1; done
http_addr=$(sed -n 's/^listening on //p' "$work/http.out")
# Warm the page cache and the node once.
git clone --bare --quiet --no-local "$repo" "$work/warm" && rm -rf "$work/warm"
for _ in $(seq "$runs"); do
    timed local "$plain" git clone --bare --quiet --no-local "$repo" "$work/dst"
    timed ssh "$plain" ssh_git plain upload-pack clone --bare --quiet ssh://gitaly/bench.git "$work/dst"
    timed http "$plain" git clone --bare --quiet "http://$http_addr/bench.git" "$work/dst"
done
git -C "$work/dst" fsck --no-progress --connectivity-only
report local "git clone --bare --no-local (no node)"
report ssh "git clone --bare via gitaly-ssh"
report http "git clone --bare via gitaly-http"
echo "ratio gitaly-ssh / --no-local: $(ratio ssh local)"
echo "ratio gitaly-http / --no-local: $(ratio http local)"
stop_node "$plain"

# 2. and 3. With the pack-objects cache.
start_node cached "[pack_objects_cache]
enabled = true
dir = \"$work/pack-cache\"
max_age = \"5m\"
min_occurrences = 0"
cached=$pid
# The same repository without its bitmap index, as before the first
# maintenance run: there git pays for counting and packing on a miss.
cp -a "$repo" "$work/storage/nobitmap.git"
rm -f "$work/storage/nobitmap.git"/objects/pack/*.bitmap
for rel in bench nobitmap; do
    REL="$rel.git" timed "first-$rel" "$cached" ssh_git cached upload-pack clone --bare --quiet ssh://gitaly/x.git "$work/dst"
    for _ in $(seq "$runs"); do
        REL="$rel.git" timed "repeat-$rel" "$cached" ssh_git cached upload-pack clone --bare --quiet ssh://gitaly/x.git "$work/dst"
    done
    git -C "$work/dst" fsck --no-progress --connectivity-only
    report "first-$rel" "$rel.git: first clone, pack-objects cache on"
    report "repeat-$rel" "$rel.git: repeated clone of the same state, cache on"
    first_cpu=$(cut -d' ' -f2 "$work/t-first-$rel")
    repeat_cpu=$(cut -d' ' -f2 "$work/t-repeat-$rel" | median)
    echo "$rel.git: repeated / first clone node CPU: $(awk -v a="$repeat_cpu" -v b="$first_cpu" 'BEGIN { printf "%.1f%%", 100 * a / b }')"
done

concurrent() {
    local t0 t1 i
    t0=$(date +%s.%N)
    for i in $(seq 8); do
        "$@" "$work/c$i" > /dev/null 2>&1 &
    done
    # Runs in a command substitution, whose only children are the clones.
    wait
    t1=$(date +%s.%N)
    for i in $(seq 8); do
        git -C "$work/c$i" rev-parse --quiet --verify refs/heads/main > /dev/null || { echo "clone $i failed" >&2; exit 1; }
    done
    rm -rf "$work"/c[0-9]
    ms "$t0" "$t1"
}
c0=$(node_ticks "$cached")
wall_ssh=$(concurrent ssh_git cached upload-pack clone --bare --quiet ssh://gitaly/bench.git)
c1=$(node_ticks "$cached")
wall_local=$(concurrent git clone --bare --quiet --no-local "$repo")
echo "8 concurrent clones via gitaly-ssh (cache on): $wall_ssh ms wall, node CPU $(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN { printf "%.0f", (b - a) * 1000 / hz }') ms"
echo "8 concurrent git clone --no-local:             $wall_local ms wall"
echo "ratio: $(awk -v a="$wall_ssh" -v b="$wall_local" 'BEGIN { printf "%.3f", a / b }')"

# 4. Push of 1,000 new commits, each touching one file.
git clone --bare --quiet --no-local "$repo" "$work/pusher.git"
tip=$(git -C "$work/pusher.git" rev-parse main)
data() { printf 'data %d\n%s\n' "${#1}" "$1"; }
{
    for i in $(seq 1000); do
        echo "commit refs/heads/main"
        echo "committer Bench <bench@example.com> $((1700000000 + i)) +0000"
        data "push $i"
        [ "$i" = 1 ] && echo "from $tip"
        echo "M 100644 inline pushed/file-$((i % 50)).txt"
        data "push $i"
    done
    echo "done"
} | git -C "$work/pusher.git" fast-import --quiet --done
new=$(git -C "$work/pusher.git" rev-parse main)
echo "# push: $(git -C "$work/pusher.git" rev-list --count "$tip..$new") new commits"
for i in $(seq "$runs"); do
    cp -a "$repo" "$work/storage/push-$i.git"
    cp -a "$repo" "$work/local-$i.git"
    REL="push-$i.git" PAYLOAD_EXTRA=',"glId":"user-1"' timed push-ssh "$cached" ssh_git cached receive-pack -C "$work/pusher.git" push --quiet ssh://gitaly/push.git main
    [ "$(git -C "$work/storage/push-$i.git" rev-parse main)" = "$new" ] || { echo "push $i did not land" >&2; exit 1; }
    timed push-local "$cached" git -C "$work/pusher.git" push --quiet "$work/local-$i.git" main
    [ "$(git -C "$work/local-$i.git" rev-parse main)" = "$new" ] || { echo "local push $i did not land" >&2; exit 1; }
    rm -rf "$work/storage/push-$i.git" "$work/local-$i.git"
done
report push-local "git push of 1,000 commits, local"
report push-ssh "git push of 1,000 commits via gitaly-ssh"
echo "ratio gitaly-ssh / local: $(ratio push-ssh push-local)"
