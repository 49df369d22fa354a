#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against real
# servers and real git, and wire-compatibility tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source dev/setup.sh
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
    # nextest does not run doctests.
    cargo test --workspace --doc --quiet
else
    cargo test --workspace --no-fail-fast "$@"
fi
