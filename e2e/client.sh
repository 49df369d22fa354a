#!/bin/sh
# The GitLab-like client of the e2e test. It runs in a Job from the node image
# (git, gitaly-ssh and cairn-load are there) and talks to the cluster only
# through the router Service, with the address and token from the cluster's
# GitLab connection Secret, as GitLab would.
#
#   client.sh create   create the repository, push a first commit, clone it back
#   client.sh push     clone, commit and push (retrying until RETRY_SECONDS
#                      pass: a failover may be under way), clone it back
#
# Environment: GITALY_ADDRESS, GITALY_TOKEN (from the Secret), VIRTUAL_STORAGE,
# REPOSITORY, RETRY_SECONDS (default 180).
set -eu

mode="${1:?usage: client.sh create|push}"
: "${GITALY_ADDRESS:?}" "${GITALY_TOKEN:?}" "${VIRTUAL_STORAGE:?}" "${REPOSITORY:?}"
start="$(date +%s)"
deadline=$((start + ${RETRY_SECONDS:-180}))

dir="$(mktemp -d)"
# git without any user or system config, with a fixed identity.
export HOME="$dir" GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="Cairn e2e" GIT_AUTHOR_EMAIL=e2e@cairn.invalid
export GIT_COMMITTER_NAME="Cairn e2e" GIT_COMMITTER_EMAIL=e2e@cairn.invalid
export GIT_SSH_VARIANT=simple GITALY_USE_SIDECHANNEL=1
if [ -f /etc/cairn-gitlab/ca.crt ]; then
    # tls:// addresses: trust the cluster's CA.
    export SSL_CERT_FILE=/etc/cairn-gitlab/ca.crt
fi
read_payload="{\"repository\":{\"storageName\":\"$VIRTUAL_STORAGE\",\"relativePath\":\"$REPOSITORY\"}}"
# Pushes run the receive hooks, which need GitLab's repository and user ids.
write_payload="{\"repository\":{\"storageName\":\"$VIRTUAL_STORAGE\",\"relativePath\":\"$REPOSITORY\",\"glRepository\":\"project-1\"},\"glId\":\"user-1\"}"
url="ssh://router/$REPOSITORY"

log() { echo "[$(($(date +%s) - start))s] $*"; }

# retry WHAT COMMAND...: runs COMMAND until it succeeds or the deadline passes.
retry() {
    what="$1"
    shift
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "gave up: $what"
            return 1
        fi
        log "retrying: $what"
        sleep 2
    done
}

# A retry after a call whose answer was lost finds the repository there.
create_repository() {
    if out="$(cairn-load --address "$GITALY_ADDRESS" --token "$GITALY_TOKEN" --once \
        --rpc CreateRepository --repository "$VIRTUAL_STORAGE:$REPOSITORY" 2>&1)"; then
        return 0
    fi
    echo "$out"
    case "$out" in
    *AlreadyExists*) return 0 ;;
    *) return 1 ;;
    esac
}

clone() {
    rm -rf "$1"
    GITALY_PAYLOAD="$read_payload" GIT_SSH_COMMAND="gitaly-ssh upload-pack" git clone --quiet "$url" "$1"
}

push() {
    GITALY_PAYLOAD="$write_payload" GIT_SSH_COMMAND="gitaly-ssh receive-pack" \
        git -C "$1" push --quiet "$url" HEAD:refs/heads/main
}

# check_clone COMMIT: a fresh clone through the router has COMMIT on main.
check_clone() {
    retry "clone $REPOSITORY" clone "$dir/check"
    got="$(git -C "$dir/check" rev-parse HEAD)"
    if [ "$got" != "$1" ]; then
        log "FAIL: a fresh clone has main at $got, expected $1"
        exit 1
    fi
    log "a fresh clone through the router has main at $got"
}

case "$mode" in
create)
    retry "CreateRepository $VIRTUAL_STORAGE:$REPOSITORY" create_repository
    log "created $VIRTUAL_STORAGE:$REPOSITORY through the router"
    git init --quiet -b main "$dir/work"
    echo "Served by Cairn on Kubernetes." >"$dir/work/README.md"
    git -C "$dir/work" add README.md
    git -C "$dir/work" commit --quiet -m "Add README"
    retry "push the first commit" push "$dir/work"
    log "pushed the first commit through the router"
    check_clone "$(git -C "$dir/work" rev-parse HEAD)"
    ;;
push)
    retry "clone $REPOSITORY" clone "$dir/work"
    date >"$dir/work/pushed-at"
    git -C "$dir/work" add pushed-at
    git -C "$dir/work" commit --quiet -m "Push after deleting the primary"
    retry "push" push "$dir/work"
    log "pushed through the router"
    check_clone "$(git -C "$dir/work" rev-parse HEAD)"
    ;;
*)
    echo "usage: client.sh create|push" >&2
    exit 2
    ;;
esac
