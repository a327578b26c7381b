# Shared by scripts/test, scripts/demo and scripts/bench: install what is missing, build,
# and run a private redis-server. Source it; do not run it.

DLOCK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DLOCK_BUILD_DIR=${DLOCK_BUILD_DIR:-$DLOCK_ROOT/build}

# Debian packages dlock builds, tests and demonstrates with. Packaging and its checks: dpkg-dev
# (dpkg-shlibdeps computes the .deb's Depends), man-db (renders and checks the man page), bash,
# zsh and fish (each completion script is loaded and asked in its own shell). libpq-dev: the
# PostgreSQL ledger's client library; postgresql: the private clusters the tests, the demo and
# the bench start. Interop: PHP with phpredis and Laravel's own cache and Redis components, and
# redis-py, whose locks the interop tests, the demo's shared-lock act and the bench take next to
# dlock's. libssl-dev: rediss:// (hiredis 0.14 has no TLS, dlock speaks it with OpenSSL);
# openssl: the tests and the bench make their CA and certificates with its command line.
# redis-sentinel: the three sentinels of the failover tests and of the bench's Sentinel row.
# gnuplot-nox: scripts/bench --plot draws its charts (bench_test draws them too).
DLOCK_PACKAGES=(cmake make g++ pkg-config libcli11-dev libhiredis-dev libsqlitecpp-dev
    libsqlite3-dev nlohmann-json3-dev doctest-dev redis-server redis-tools sqlite3 util-linux
    iproute2 time dpkg-dev man-db bash zsh fish libpq-dev postgresql php-cli php-redis
    php-illuminate-cache php-illuminate-redis python3-redis libssl-dev openssl redis-sentinel
    gnuplot-nox)

log() { printf '%s\n' "$*" >&2; }

ensure_packages() {
    local missing=() pkg
    for pkg in "${DLOCK_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { log "need root (or sudo) to install: ${missing[*]}"; return 1; }
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# build [extra cmake args...]. Release by default: debug info costs the templates of CLI11,
# nlohmann::json and doctest about 40% more compile time on a 2-core machine.
build() {
    cmake -S "$DLOCK_ROOT" -B "$DLOCK_BUILD_DIR" -DCMAKE_BUILD_TYPE="${DLOCK_BUILD_TYPE:-Release}" \
        "$@" >/dev/null
    cmake --build "$DLOCK_BUILD_DIR" -j"$(nproc)" -- --no-print-directory >/dev/null
}

# start_redis DIR [redis-server args...]: a private redis-server on DIR/redis.sock, no
# persistence, no TCP unless the extra arguments ask for it. Sets REDIS_PID and REDIS_URL.
start_redis() {
    local dir=$1
    shift
    redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save "" \
        --appendonly no --dir "$dir" --daemonize no --logfile "$dir/redis.log" "$@" &
    REDIS_PID=$!
    REDIS_URL="unix://$dir/redis.sock"
    local i
    for i in $(seq 1 500); do
        # PONG, or NOAUTH when a password is set: either way the server is up.
        redis-cli -s "$dir/redis.sock" ping 2>&1 | grep -qE 'PONG|NOAUTH' && return 0
        sleep 0.01
    done
    log "redis-server did not start; see $dir/redis.log"
    return 1
}

stop_redis() {
    [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    REDIS_PID=
}

# start_postgres ADDRESS PASSWORD: a private PostgreSQL cluster in a new temp dir (PG_DIR): its
# unix socket there (the local user trusted), TCP on ADDRESS (none if empty) with a password for
# user 'dlock'.
# As root, the cluster runs as the 'postgres' user: initdb refuses root. Sets PG_PID, PG_DIR,
# PG_PORT and PG_BIN; pg_database NAME creates a database.
start_postgres() {
    local address=$1 password=$2 as=() i
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    PG_DIR=$(mktemp -d)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$PG_DIR"
        as=(setpriv --reuid postgres --regid postgres --clear-groups)
    fi
    printf '%s\n' "$password" >"$PG_DIR/pwfile"
    [ ${#as[@]} -gt 0 ] && chown postgres: "$PG_DIR/pwfile"
    "${as[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U dlock --pwfile "$PG_DIR/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync \
        >"$PG_DIR/initdb.log" 2>&1 || { log "initdb failed; see $PG_DIR/initdb.log"; return 1; }
    rm -f "$PG_DIR/pwfile"
    # It listens on ADDRESS only; whoever reaches that needs the password.
    echo "host all all all scram-sha-256" >>"$PG_DIR/data/pg_hba.conf"
    for i in $(seq 1 50); do # a port nothing listens on
        PG_PORT=$((20000 + RANDOM % 20000))
        ss -ltn 2>/dev/null | grep -q ":$PG_PORT " || break
    done
    "${as[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -k "$PG_DIR" -p "$PG_PORT" \
        -c listen_addresses="$address" -c max_connections=200 >"$PG_DIR/postgres.log" 2>&1 &
    PG_PID=$!
    for i in $(seq 1 1000); do
        "$PG_BIN/pg_isready" -q -h "$PG_DIR" -p "$PG_PORT" && return 0
        sleep 0.01
    done
    log "postgres did not start; see $PG_DIR/postgres.log"
    return 1
}

pg_database() {
    "$PG_BIN/psql" -qX -h "$PG_DIR" -p "$PG_PORT" -U dlock -d postgres -c "CREATE DATABASE $1" >/dev/null
}

stop_postgres() {
    if [ -n "${PG_PID:-}" ]; then
        kill -INT "$PG_PID" 2>/dev/null && wait "$PG_PID" 2>/dev/null
        PG_PID=
    fi
    [ -n "${PG_DIR:-}" ] && rm -rf "$PG_DIR"
    PG_DIR=
}
