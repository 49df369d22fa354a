#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against real
# servers and real git, and wire-compatibility tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source dev/setup.sh

# The transport interop test talks to hashicorp/yamux and grpc-go (what
# GitLab's Go clients use); Debian packages them, so no module download.
if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/github.com/hashicorp/yamux ]; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            golang-go golang-github-hashicorp-yamux-dev golang-google-grpc-dev
    else
        echo "note: go and the Debian yamux/grpc-go packages are missing; the Go interop test will skip" >&2
    fi
fi
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
    # nextest does not run doctests.
    cargo test --workspace --doc --quiet
else
    cargo test --workspace --no-fail-fast "$@"
fi
