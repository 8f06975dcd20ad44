# Start and stop the real servers the tests and benchmarks need, on loopback ports.
# Sourced by scripts/test and bench/run; not meant to be run on its own.
#
#   start_servers   installs redis-server and chromium if missing, starts Redis (standalone
#                   and a 3-master cluster) and PostgreSQL, and exports their URLs
#   stop_servers    stops them and removes their data (called from an EXIT trap)

SERVERS_DIR="${SERVERS_DIR:-$(mktemp -d /tmp/corequeue-servers.XXXXXX)}"
REDIS_PORT="${REDIS_PORT:-16379}"
REDIS_CLUSTER_PORTS="${REDIS_CLUSTER_PORTS:-17101 17102 17103}"
POSTGRES_PORT="${POSTGRES_PORT:-15432}"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

ensure_redis_installed() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return
    fi
    log "installing redis-server (apt-get)"
    apt_update_once
    apt-get install -y -qq redis-server >/dev/null
}

# The TLS tests make throwaway certificates with the openssl command.
ensure_openssl_installed() {
    if command -v openssl >/dev/null; then
        return
    fi
    log "installing openssl (apt-get)"
    apt_update_once
    apt-get install -y -qq openssl >/dev/null
}

# The browser tests drive Debian's Chromium (Playwright with executable_path, never a browser
# download). Installed from the distribution's packages when missing.
ensure_chromium_installed() {
    if command -v chromium >/dev/null; then
        return
    fi
    log "installing chromium (apt-get)"
    apt_update_once
    apt-get install -y -qq chromium >/dev/null
}

APT_UPDATED="${APT_UPDATED:-}"

# apt-get update at most once per run, before the first install that needs it.
apt_update_once() {
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$APT_UPDATED" ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
}

find_pg_bin() {
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return
    fi
    local candidate
    candidate=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$candidate" ]; then
        echo "$candidate"
        return
    fi
    echo "PostgreSQL (initdb, pg_ctl) not found" >&2
    return 1
}

wait_for_redis() {
    local port=$1
    for _ in $(seq 1 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "redis on port $port did not start" >&2
    return 1
}

start_redis() {
    local dir="$SERVERS_DIR/redis"
    mkdir -p "$dir"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" \
        --appendonly yes --appendfsync everysec
    wait_for_redis "$REDIS_PORT"
    export COREQUEUE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    export COREQUEUE_TEST_REDIS_DIR="$dir"
    export COREQUEUE_TEST_REDIS_PORT="$REDIS_PORT"
}

start_redis_cluster() {
    local nodes=() port
    for port in $REDIS_CLUSTER_PORTS; do
        local dir="$SERVERS_DIR/cluster-$port"
        mkdir -p "$dir"
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
            --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" \
            --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
            --cluster-node-timeout 5000 --appendonly no
        wait_for_redis "$port"
        nodes+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
    for _ in $(seq 1 100); do
        redis-cli -p "${REDIS_CLUSTER_PORTS%% *}" cluster info | grep -q 'cluster_state:ok' && break
        sleep 0.1
    done
    export COREQUEUE_TEST_REDIS_CLUSTER_URL="redis://${nodes[0]}/0"
}

start_postgres() {
    local bin dir="$SERVERS_DIR/postgres"
    bin=$(find_pg_bin)
    mkdir -p "$dir"
    chown postgres "$dir" 2>/dev/null || true
    chmod 777 "$SERVERS_DIR"
    as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
        -o "-p $POSTGRES_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" \
        start >/dev/null
    export COREQUEUE_TEST_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$POSTGRES_PORT/postgres"
    export COREQUEUE_TEST_POSTGRES_DATA="$dir/data"
    export COREQUEUE_TEST_POSTGRES_BIN="$bin"
    export COREQUEUE_TEST_POSTGRES_PORT="$POSTGRES_PORT"
    export COREQUEUE_TEST_POSTGRES_SOCKET_DIR="$dir"
}

# PostgreSQL refuses to run as root: run its tools as the postgres user.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}

start_servers() {
    ensure_redis_installed
    ensure_openssl_installed
    ensure_chromium_installed
    log "starting redis-server on 127.0.0.1:$REDIS_PORT"
    start_redis
    log "starting a 3-master Redis Cluster on 127.0.0.1 ports $REDIS_CLUSTER_PORTS"
    start_redis_cluster
    log "starting PostgreSQL on 127.0.0.1:$POSTGRES_PORT"
    start_postgres
}

stop_servers() {
    local pidfile
    for pidfile in "$SERVERS_DIR"/*/redis.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    done
    if [ -d "$SERVERS_DIR/postgres/data" ]; then
        as_postgres "$(find_pg_bin)/pg_ctl" -D "$SERVERS_DIR/postgres/data" -m immediate stop \
            >/dev/null 2>&1 || true
    fi
    sleep 0.2
    rm -rf "$SERVERS_DIR"
}
