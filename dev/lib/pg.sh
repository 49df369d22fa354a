#!/usr/bin/env bash
# A private PostgreSQL for development and tests, as shell functions (source
# this file). Same behaviour as router/tests/it/support/pg.rs: its own data
# directory, a Unix socket only (no TCP), trust authentication for user
# `postgres`, durability off, and run as `nobody` when we are root because
# PostgreSQL refuses to run as root.
#
#   pg_install_if_missing        apt-get install postgresql when initdb is absent
#   pg_start DIR PORT            initdb (once) and start; socket in DIR
#   pg_stop DIR                  fast shutdown, waits for the server to exit
#   pg_bindir                    prints the directory holding initdb and postgres

# Prints the directory with initdb and postgres: the highest version under
# /usr/lib/postgresql (Debian's layout), else wherever PATH finds initdb.
pg_bindir() {
    if [ -n "${CAIRN_PG_BINDIR:-}" ]; then
        echo "$CAIRN_PG_BINDIR"
        return 0
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
        return 0
    fi
    dir="$(command -v initdb 2>/dev/null)" || return 1
    dirname "$(readlink -f "$dir")"
}

pg_install_if_missing() {
    pg_bindir >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "PostgreSQL (initdb, postgres) is missing and there is no apt-get to install it;" \
            "install PostgreSQL 13 or newer, or set CAIRN_PG_BINDIR to its bin directory" >&2
        return 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing PostgreSQL" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql
    pg_bindir >/dev/null || {
        echo "installed postgresql but found no initdb" >&2
        return 1
    }
}

# The prefix that runs a PostgreSQL program as nobody when we are root.
_pg_as() {
    _pg_prefix=()
    if [ "$(id -u)" -eq 0 ]; then
        _pg_prefix=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
    fi
}

# pg_start DIR PORT: creates DIR/data on first use, starts postgres in the
# background with its socket DIR/.s.PGSQL.PORT and its log in DIR/log, and
# returns once it accepts connections. libpq's host is DIR.
pg_start() {
    local dir="$1" port="$2" bindir
    bindir="$(pg_bindir)" || {
        echo "PostgreSQL is not installed (pg_install_if_missing installs it)" >&2
        return 1
    }
    _pg_as
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    # sun_path holds 107 bytes.
    if [ "${#dir}" -gt 90 ]; then
        echo "pg_start: $dir is too long for a Unix socket path" >&2
        return 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        chown 65534:65534 "$dir"
        if ! "${_pg_prefix[@]}" test -w "$dir"; then
            echo "pg_start: user nobody cannot reach $dir (a parent directory is private);" \
                "use a directory under /tmp" >&2
            return 1
        fi
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        if ! "${_pg_prefix[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
            --no-sync --no-instructions >/dev/null 2>"$dir/initdb.log"; then
            echo "initdb failed:" >&2
            cat "$dir/initdb.log" >&2
            return 1
        fi
    fi
    # A simple command, so that $! is the postmaster itself (setpriv execs).
    "${_pg_prefix[@]}" "$bindir/postgres" -D "$dir/data" -k "$dir" -p "$port" \
        -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=400 -c shared_buffers=32MB \
        </dev/null >/dev/null 2>>"$dir/log" &
    local pid=$!
    echo "$pid" >"$dir/postgres.pid"
    local tries=0
    until [ -S "$dir/.s.PGSQL.$port" ] && { [ ! -x "$bindir/pg_isready" ] ||
        "$bindir/pg_isready" -q -h "$dir" -p "$port" -U postgres -d postgres; }; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$tries" -ge 300 ]; then
            echo "postgres did not start; its log ($dir/log):" >&2
            tail -n 20 "$dir/log" >&2
            return 1
        fi
        tries=$((tries + 1))
        sleep 0.1
    done
}

# pid_alive PID: true while the process exists and is not a zombie (also
# used by dev/cluster.sh for its own processes).
pid_alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [ "${stat%% *}" != Z ]
}

# stop_process PID SIGNAL SECONDS NAME: sends SIGNAL, waits up to SECONDS
# for the process to go, then kills it; reaps it when it is our child.
stop_process() {
    local pid="$1" signal="$2" seconds="$3" name="$4" tries=0
    kill "-$signal" "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do
        if [ "$tries" -eq $((seconds * 10)) ]; then
            echo "$name (pid $pid) did not stop in ${seconds}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        tries=$((tries + 1))
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
}

# pg_stop DIR: fast shutdown (SIGINT) of the server started by pg_start DIR;
# waits up to 30 s, then kills it.
pg_stop() {
    local dir="$1" pid
    pid="$(cat "$dir/postgres.pid" 2>/dev/null)" || return 0
    [ -n "$pid" ] || return 0
    stop_process "$pid" INT 30 postgres
    rm -f "$dir/postgres.pid"
}
