# Shared by scripts/test, scripts/demo and scripts/bench: install what is missing, build,
# and run a private redis-server. Source it; do not run it.

DLOCK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DLOCK_BUILD_DIR=${DLOCK_BUILD_DIR:-$DLOCK_ROOT/build}

# Debian packages dlock builds, tests and demonstrates with. libpq-dev: the PostgreSQL ledger's
# client library; postgresql: the private clusters the tests, the demo and the bench start.
DLOCK_PACKAGES=(cmake make g++ pkg-config libcli11-dev libhiredis-dev libsqlitecpp-dev
    libsqlite3-dev nlohmann-json3-dev doctest-dev redis-server redis-tools sqlite3 util-linux
    iproute2 time libpq-dev postgresql)

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
