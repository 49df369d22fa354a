#!/usr/bin/env bash
# Installs what building and testing Cairn needs on a fresh Debian/Ubuntu
# machine: git, a C toolchain (for crates that build C), ssh-keygen, and Rust
# when cargo is missing. protoc is vendored by a crate, so no protobuf package is needed.
# Sourced by the other dev scripts; safe to run repeatedly.
set -euo pipefail

need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
command -v tar >/dev/null 2>&1 || need+=(tar)
# ssh-keygen: git signs commits with it (`[git] signing_key`), and tests make keys.
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
if [ "${#need[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "installing system packages: ${need[*]}" >&2
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
    else
        echo "missing: ${need[*]} (and no apt-get to install them)" >&2
        exit 1
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "installing Rust with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi
