#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against real
# servers, real git and a real PostgreSQL, and wire-compatibility tests.
#
#   dev/test.sh                       everything (CI runs this), with
#                                     dev/chart-check.sh and e2e/run.sh
#   dev/test.sh -p cairn-router db    one package, tests whose name has "db"
#
# Arguments go to `cargo nextest run` (or `cargo test` without nextest);
# with arguments, doctests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source dev/setup.sh
source dev/lib/pg.sh

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
# The router's tests keep their metadata in PostgreSQL.
pg_install_if_missing

# One private PostgreSQL for the whole run; each router test creates its own
# database on it (router/tests/it/support/pg.rs reads these variables).
if [ -z "${CAIRN_TEST_PGHOST:-}" ] || [ -z "${CAIRN_TEST_PGPORT:-}" ]; then
    pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/cairn-test-pg.XXXXXX")"
    trap 'pg_stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    pg_start "$pg_dir" 5432
    export CAIRN_TEST_PGHOST="$pg_dir" CAIRN_TEST_PGPORT=5432
fi

# The whole suite also checks the packaging (chart, CRD copy, Dockerfile;
# seconds once its tools are cached) and runs e2e/ against the cluster in
# KUBECONFIG, which skips with a message when there is none. They run before
# the cargo tests so that the test runner's summary stays the last word.
if [ "$#" -eq 0 ]; then
    dev/chart-check.sh
    e2e/run.sh
fi

# Without -p/--package, the whole workspace (cargo would ignore -p next to
# --workspace).
packages=(--workspace)
for arg in "$@"; do
    case "$arg" in
    -p | -p?* | --package | --package=*) packages=() ;;
    esac
done
# Router tests spawn target/debug/{gitaly,gitaly-ssh,gitaly-hooks,praefect}.
# Testing the whole workspace builds them (binaries of every package with
# integration tests); a package selection may not.
if [ "${#packages[@]}" -eq 0 ]; then
    cargo build --workspace --bins
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run "${packages[@]}" --no-fail-fast "$@"
    # nextest does not run doctests.
    if [ "$#" -eq 0 ]; then
        cargo test --workspace --doc --quiet
    fi
else
    cargo test "${packages[@]}" --no-fail-fast "$@"
fi
