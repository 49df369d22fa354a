#!/usr/bin/env bash
# Starts a Cairn storage node on a sample storage with a demo repository,
# prints how to reach it, and serves until Ctrl-C.
#
#   dev/demo.sh            listen on 127.0.0.1:8075 (and a Unix socket)
#   PORT=9999 dev/demo.sh  another port
set -euo pipefail
cd "$(dirname "$0")/.."
source dev/setup.sh

port="${PORT:-8075}"
metrics_port="${METRICS_PORT:-9236}"
root="$PWD/.demo"
storage="$root/storage"
mkdir -p "$storage" "$root/run"

cargo build --release --quiet -p cairn-node -p cairn-bench

repo="$storage/demo.git"
if [ ! -d "$repo" ]; then
    # A small history made with plain git, outside any user config.
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
    export GIT_AUTHOR_NAME="Cairn Demo" GIT_AUTHOR_EMAIL=demo@cairn.invalid
    export GIT_COMMITTER_NAME="Cairn Demo" GIT_COMMITTER_EMAIL=demo@cairn.invalid
    git init --quiet -b main "$work"
    printf '# Demo\n\nServed by Cairn.\n' > "$work/README.md"
    git -C "$work" add README.md
    git -C "$work" commit --quiet -m "Add README"
    printf 'fn main() {}\n' > "$work/main.rs"
    git -C "$work" add main.rs
    git -C "$work" commit --quiet -m "Add main.rs"
    git -C "$work" tag -a v1.0 -m "First release"
    git clone --quiet --bare "$work" "$repo"
fi

cat > "$root/config.toml" <<TOML
listen_addr = "127.0.0.1:$port"
socket_path = "$root/gitaly.socket"
prometheus_listen_addr = "127.0.0.1:$metrics_port"
runtime_dir = "$root/run"

[logging]
format = "text"
level = "info"

[[storage]]
name = "default"
path = "$storage"
TOML

cat <<TEXT

Cairn node starting (Gitaly protocol 18.x)
  gRPC:       tcp://127.0.0.1:$port   unix:$root/gitaly.socket   (no token)
  metrics:    http://127.0.0.1:$metrics_port/metrics
  storage:    default -> $storage
  repository: default / demo.git (branch main, tag v1.0)

Try, from another terminal:
  target/release/cairn-load --address tcp://127.0.0.1:$port --rpc RepositoryExists --repository default:demo.git --duration 3s
  grpcurl -plaintext -d '{"repository":{"storage_name":"default","relative_path":"demo.git"}}' \\
      127.0.0.1:$port gitaly.RepositoryService/RepositoryExists      (reflection is on)
  target/release/gitaly check $root/config.toml

Ctrl-C stops the node.
TEXT
exec target/release/gitaly serve "$root/config.toml"
