#!/usr/bin/env bash
# Starts a local Cairn cluster: a private PostgreSQL, three storage nodes
# (gitaly-1..3) and the router (praefect) in front of them serving the
# virtual storage `default`; creates the repository demo.git through the
# router, pushes a first commit to it, prints how to clone and push, and
# serves until Ctrl-C, which stops everything.
#
#   dev/cluster.sh                  router on 127.0.0.1:2305, nodes on 8076-8078
#   PORT=3305 NODE_PORT=9076 dev/cluster.sh
#   PROFILE=release dev/cluster.sh  optimised binaries (a separate, longer build)
#
# Debug binaries by default: they are the ones dev/test.sh builds too, so
# the two commands share one build, and a first build takes minutes less.
#
# Every run starts afresh: .cluster/ (configs, storages, database, logs) is
# recreated.
set -euo pipefail
cd "$(dirname "$0")/.."
source dev/setup.sh
source dev/lib/pg.sh
pg_install_if_missing

profile="${PROFILE:-debug}"
router_port="${PORT:-2305}"
node_port="${NODE_PORT:-8076}"
router_metrics_port="${METRICS_PORT:-9652}"
pg_port=5432 # Unix socket only; the number just names the socket
router_token="cairn-router-token"
node_token="cairn-node-token"
root="$PWD/.cluster"
nodes=(gitaly-1 gitaly-2 gitaly-3)

if [ -f "$root/cluster.pid" ] && grep -qs cluster.sh "/proc/$(cat "$root/cluster.pid")/cmdline"; then
    echo "dev/cluster.sh is already running (pid $(cat "$root/cluster.pid")); stop it first" >&2
    exit 1
fi
ports=("$router_port" "$router_metrics_port")
for i in "${!nodes[@]}"; do
    ports+=("$((node_port + i))" "$((node_port + 1000 + i))")
done
for port in "${ports[@]}"; do
    if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use (PORT, NODE_PORT and METRICS_PORT choose others)" >&2
        exit 1
    fi
done

if [ "$profile" = release ]; then
    cargo build --release -p cairn-node -p cairn-router -p cairn-bench
else
    cargo build -p cairn-node -p cairn-router -p cairn-bench
fi
bin="${CARGO_TARGET_DIR:-$PWD/target}/$profile"
bin="$(cd "$bin" && pwd)"

# Start afresh. PostgreSQL's directory may live under /tmp (see below).
if [ -L "$root/postgresql" ]; then
    rm -rf "$(readlink "$root/postgresql")"
fi
rm -rf "$root"
mkdir -p "$root"
echo $$ >"$root/cluster.pid"

# PostgreSQL runs as nobody when we are root: its directory must be
# reachable by nobody and short enough for a socket path; else use /tmp.
pg_dir="$root/postgresql"
if [ "${#pg_dir}" -gt 90 ] ||
    { [ "$(id -u)" -eq 0 ] && ! setpriv --reuid=65534 --regid=65534 --clear-groups -- test -x "$root"; }; then
    pg_dir="$(mktemp -d /tmp/cairn-cluster-pg.XXXXXX)"
    ln -s "$pg_dir" "$root/postgresql"
fi

pids=() # router first, then the nodes: the order to stop them in
stopped=""

stop_all() {
    [ -z "$stopped" ] || return 0
    stopped=1
    trap '' INT TERM
    echo "stopping the cluster" >&2
    local pid
    for pid in "${pids[@]}"; do
        stop_process "$pid" TERM 10 process
    done
    pg_stop "$pg_dir"
    rm -f "$root/cluster.pid"
    echo "stopped; configs, data and logs remain in $root" >&2
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints the last lines of a log and exits.
fail() {
    echo "$1" >&2
    if [ -n "${2:-}" ]; then
        echo "--- last lines of $2:" >&2
        tail -n 20 "$2" >&2
    fi
    exit 1
}

# Waits until something accepts connections on 127.0.0.1:PORT while PID lives.
wait_for_port() {
    local port="$1" pid="$2" log="$3" tries=0
    until (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        pid_alive "$pid" || fail "$(basename "$log" .log) exited" "$log"
        [ "$tries" -lt 600 ] || fail "$(basename "$log" .log) is not listening on $port after 60s" "$log"
        tries=$((tries + 1))
        sleep 0.1
    done
}

echo "starting PostgreSQL in $pg_dir" >&2
pg_start "$pg_dir" "$pg_port"
"$(pg_bindir)/createdb" -h "$pg_dir" -p "$pg_port" -U postgres praefect

node_entries=""
for i in "${!nodes[@]}"; do
    name="${nodes[$i]}"
    dir="$root/$name"
    mkdir -p "$dir/storage" "$dir/run"
    cat >"$dir/config.toml" <<TOML
listen_addr = "127.0.0.1:$((node_port + i))"
socket_path = "$dir/gitaly.socket"
prometheus_listen_addr = "127.0.0.1:$((node_port + 1000 + i))"
runtime_dir = "$dir/run"
bin_dir = "$bin"

[auth]
token = "$node_token"

[logging]
format = "text"
level = "info"

[[storage]]
name = "$name"
path = "$dir/storage"
TOML
    node_entries+="
[[virtual_storage.node]]
storage = \"$name\"
address = \"tcp://127.0.0.1:$((node_port + i))\"
token = \"$node_token\"
"
done

cat >"$root/praefect.toml" <<TOML
listen_addr = "127.0.0.1:$router_port"
socket_path = "$root/praefect.socket"
prometheus_listen_addr = "127.0.0.1:$router_metrics_port"

[auth]
token = "$router_token"

[logging]
format = "text"
level = "info"

[database]
host = "$pg_dir"
port = $pg_port
user = "postgres"
dbname = "praefect"
sslmode = "disable"

[[virtual_storage]]
name = "default"
$node_entries
TOML

echo "applying database migrations" >&2
"$bin/praefect" -config "$root/praefect.toml" sql-migrate >"$root/sql-migrate.log" 2>&1 ||
    fail "praefect sql-migrate failed" "$root/sql-migrate.log"

for i in "${!nodes[@]}"; do
    name="${nodes[$i]}"
    "$bin/gitaly" serve "$root/$name/config.toml" </dev/null >"$root/$name.log" 2>&1 &
    pids+=($!)
done
for i in "${!nodes[@]}"; do
    wait_for_port "$((node_port + i))" "${pids[$i]}" "$root/${nodes[$i]}.log"
done
echo "nodes ${nodes[*]} are up" >&2

"$bin/praefect" -config "$root/praefect.toml" </dev/null >"$root/praefect.log" 2>&1 &
router_pid=$!
pids=("$router_pid" "${pids[@]}")
wait_for_port "$router_port" "$router_pid" "$root/praefect.log"

# The router places a new repository on healthy nodes only, so retry while
# its first health checks come in.
tries=0
until "$bin/cairn-load" --address "tcp://127.0.0.1:$router_port" --token "$router_token" --once \
    --rpc CreateRepository --repository default:demo.git >"$root/create-repository.log" 2>&1; do
    pid_alive "$router_pid" || fail "praefect exited" "$root/praefect.log"
    [ "$tries" -lt 60 ] || fail "could not create demo.git through the router" "$root/create-repository.log"
    tries=$((tries + 1))
    sleep 0.5
done
echo "created default/demo.git through the router" >&2

# A first commit, made with plain git outside any user config and pushed
# through the router. The node runs the receive hooks, which (as with
# gitlab-shell) need the GitLab repository and user in the payload.
work="$root/initial"
(
    export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
    export GIT_AUTHOR_NAME="Cairn Demo" GIT_AUTHOR_EMAIL=demo@cairn.invalid
    export GIT_COMMITTER_NAME="Cairn Demo" GIT_COMMITTER_EMAIL=demo@cairn.invalid
    git init --quiet -b main "$work"
    printf '# Demo\n\nServed by a Cairn cluster.\n' >"$work/README.md"
    git -C "$work" add README.md
    git -C "$work" commit --quiet -m "Add README"
    export GIT_SSH_VARIANT=simple GITALY_ADDRESS="tcp://127.0.0.1:$router_port" GITALY_TOKEN="$router_token"
    export GITALY_PAYLOAD='{"repository":{"storageName":"default","relativePath":"demo.git","glRepository":"project-1"},"glId":"user-1"}'
    GIT_SSH_COMMAND="$bin/gitaly-ssh receive-pack" git -C "$work" push --quiet ssh://praefect/demo.git main
) >"$root/initial-push.log" 2>&1 || fail "pushing the first commit through the router failed" "$root/initial-push.log"
rm -rf "$work"
echo "pushed the first commit of demo.git (branch main) through the router" >&2

cat <<TEXT

Cairn cluster running ($profile binaries in $bin)
  router:     praefect  tcp://127.0.0.1:$router_port  unix:$root/praefect.socket  token $router_token
              metrics http://127.0.0.1:$router_metrics_port/metrics   config $root/praefect.toml
  nodes:      $(for i in "${!nodes[@]}"; do printf '%s tcp://127.0.0.1:%s  ' "${nodes[$i]}" "$((node_port + i))"; done)(token $node_token)
  database:   psql -h $pg_dir -p $pg_port -U postgres praefect
  logs:       $root/*.log
  repository: default / demo.git (branch main)

Clone, commit and push through the router, from another terminal:
  export PATH="$bin:\$PATH" GIT_SSH_VARIANT=simple GITALY_ADDRESS=tcp://127.0.0.1:$router_port GITALY_TOKEN=$router_token
  GITALY_PAYLOAD='{"repository":{"storageName":"default","relativePath":"demo.git"}}' \\
    GIT_SSH_COMMAND="gitaly-ssh upload-pack" git clone ssh://praefect/demo.git demo
  cd demo && echo hello >hello.txt && git add hello.txt
  git -c user.name=Demo -c user.email=demo@example.com commit -m "Add hello.txt"
  GITALY_PAYLOAD='{"repository":{"storageName":"default","relativePath":"demo.git","glRepository":"project-1"},"glId":"user-1"}' \\
    GIT_SSH_COMMAND="gitaly-ssh receive-pack" git push ssh://praefect/demo.git main

Each node keeps its replica under $root/gitaly-N/storage.
Ctrl-C stops the router, the nodes and PostgreSQL.
TEXT

# Serve until interrupted or until the router exits by itself.
set +e
wait "$router_pid"
status=$?
set -e
fail "praefect exited with status $status" "$root/praefect.log"
