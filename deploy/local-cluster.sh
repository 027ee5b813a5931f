#!/usr/bin/env bash
# A production-shaped cluster on this machine, loopback only:
#   Redis (started only if none answers at CINCER_REDIS_URL), two Celery workers, Celery
#   beat (the periodic reconciler, exactly one per cluster, as its own process) and the API
#   under gunicorn. Every component runs in its own process group with its own pid file;
#   `stop` signals and waits for whole groups, so no child (a pool process, ...) outlives it.
#
#   deploy/local-cluster.sh start|stop|status
#
# Environment (all optional):
#   CINCER_DATA_DIR      data directory (default ./cincer-data); pid files and logs go to
#                        $CINCER_DATA_DIR/cluster/
#   CINCER_DATABASE_URL  database (default SQLite in the data directory)
#   CINCER_REDIS_URL     broker; when unset or not answering, a redis-server is started on
#                        127.0.0.1 (the URL's port, else a free one) and stopped by `stop`
#   CINCER_BIND          API address (default 127.0.0.1:8000)
#   CINCER_ADMIN_TOKEN   admin token; when unset one is generated and kept in
#                        $CINCER_DATA_DIR/cluster/admin-token
#   CINCER_VENV          virtual environment with cincer-service installed (default ./.venv)
#   CINCER_STOP_TIMEOUT  seconds to wait after SIGTERM before SIGKILL (default 30)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CINCER_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
export CINCER_DATA_DIR="${CINCER_DATA_DIR:-$ROOT/cincer-data}"
CLUSTER="$CINCER_DATA_DIR/cluster"
export CINCER_BIND="${CINCER_BIND:-127.0.0.1:8000}"
STOP_TIMEOUT="${CINCER_STOP_TIMEOUT:-30}"
COMPONENTS=(api worker1 worker2 beat redis)

die() { echo "local-cluster: $*" >&2; exit 1; }

pid_of() { [[ -f "$CLUSTER/$1.pid" ]] && cat "$CLUSTER/$1.pid" || true; }

# A process that exists and is not a zombie (a killed main process stays a zombie until
# init reaps it, and `kill -0` still finds it).
pid_running() { kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]; }

# The running (non-zombie) members of process group $1.
group_members() {
    local p
    for p in $(pgrep -g "$1" 2>/dev/null); do pid_running "$p" && echo "$p"; done
    return 0
}

alive() { local pid; pid="$(pid_of "$1")"; [[ -n "$pid" ]] && pid_running "$pid"; }

# Any process left in the component's process group (its main process, or children that
# outlived it, e.g. after the main process was killed with SIGKILL).
group_alive() { local pid; pid="$(pid_of "$1")"; [[ -n "$pid" && -n "$(group_members "$pid")" ]]; }

redis_answers() {
    "$PY" - "$1" <<'EOF' 2>/dev/null
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
EOF
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Start a command in its own session (process group = its pid), output to a log.
launch() {
    local name="$1"; shift
    setsid "$@" >>"$CLUSTER/$name.log" 2>&1 </dev/null &
    echo $! >"$CLUSTER/$name.pid"
}

answers() { curl -fs -o /dev/null --max-time 2 "$1" 2>/dev/null; }

# A failed start stops whatever it had started.
fail_start() {
    echo "local-cluster: $1" >&2
    [[ -n "${2:-}" && -f "$2" ]] && tail -n 30 "$2" >&2
    stop >/dev/null 2>&1 || true
    exit 1
}

wait_healthz() {
    local url="$1" deadline=$((SECONDS + 90))
    while ((SECONDS < deadline)); do
        answers "$url" && return 0
        for c in api worker1 worker2 beat; do
            alive "$c" || fail_start "$c exited during start-up (log: $CLUSTER/$c.log)" "$CLUSTER/$c.log"
        done
        sleep 0.5
    done
    fail_start "$url did not answer within 90 s (log: $CLUSTER/api.log)" "$CLUSTER/api.log"
}

start() {
    [[ -x "$PY" ]] || die "no virtual environment at $VENV (run \`make test\` or set CINCER_VENV)"
    mkdir -p "$CLUSTER"
    for c in "${COMPONENTS[@]}"; do
        group_alive "$c" && die "already running ($c, process group $(pid_of "$c")); \`$0 stop\` first"
    done
    rm -f "$CLUSTER"/*.pid "$CLUSTER/redis.url"

    if [[ -n "${CINCER_REDIS_URL:-}" ]] && redis_answers "$CINCER_REDIS_URL"; then
        echo "using the Redis at $CINCER_REDIS_URL"
    else
        command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server) and no Redis answers at ${CINCER_REDIS_URL:-CINCER_REDIS_URL}"
        local port
        port="$("$PY" -c 'import os, urllib.parse as u; print(u.urlsplit(os.environ.get("CINCER_REDIS_URL", "")).port or "")')"
        port="${port:-$(free_port)}"
        launch redis redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$CLUSTER"
        export CINCER_REDIS_URL="redis://127.0.0.1:$port/0"
        local deadline=$((SECONDS + 20))
        until redis_answers "$CINCER_REDIS_URL"; do
            ((SECONDS < deadline)) && alive redis || fail_start "redis-server did not start" "$CLUSTER/redis.log"
            sleep 0.1
        done
        echo "started redis-server on $CINCER_REDIS_URL"
    fi
    echo "$CINCER_REDIS_URL" >"$CLUSTER/redis.url"

    if [[ -z "${CINCER_ADMIN_TOKEN:-}" ]]; then
        if [[ ! -s "$CLUSTER/admin-token" ]]; then
            (umask 077; "$PY" -c 'import secrets; print("cnc_" + secrets.token_urlsafe(32))' >"$CLUSTER/admin-token")
        fi
        CINCER_ADMIN_TOKEN="$(cat "$CLUSTER/admin-token")"
    fi
    export CINCER_ADMIN_TOKEN

    # Migrate once before anything starts, so the processes do not race to create the schema.
    "$PY" -c 'from cincer_service.service import Settings, build_context; build_context(Settings.from_env())' \
        || fail_start "could not migrate the database"

    launch worker1 "$VENV/bin/cincer-service" worker --hostname "worker1@%h"
    launch worker2 "$VENV/bin/cincer-service" worker --hostname "worker2@%h"
    launch beat "$VENV/bin/cincer-service" beat --schedule "$CLUSTER/celerybeat-schedule"
    launch api "$VENV/bin/gunicorn" -c "$ROOT/deploy/gunicorn.conf.py"

    local url="http://$CINCER_BIND"
    wait_healthz "$url/healthz"
    echo "cincer-service cluster is up: $url  (API docs: $url/api/v1/docs)"
    echo "admin token: ${CLUSTER}/admin-token (or \$CINCER_ADMIN_TOKEN); logs: $CLUSTER/*.log"
}

# Stop the named components together: SIGTERM to each main process only (Celery then
# finishes its running job -- a warm shutdown -- and gunicorn its in-flight requests), wait up
# to STOP_TIMEOUT for each whole process group to exit, then SIGKILL what is left. A group
# whose main process is gone (killed with SIGKILL: its pool children or an embedded beat live
# on as orphans) gets SIGTERM as a whole, so nothing outlives `stop`.
stop_group() {
    local name pid waiting=()
    for name in "$@"; do
        pid="$(pid_of "$name")"
        if [[ -n "$pid" ]] && pid_running "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            waiting+=("$name:$pid")
        elif [[ -n "$pid" && -n "$(group_members "$pid")" ]]; then
            echo "$name (pid $pid) is gone but left processes in its group: SIGTERM to them"
            kill -TERM -- "-$pid" 2>/dev/null || true
            waiting+=("$name:$pid")
        else
            rm -f "$CLUSTER/$name.pid"
        fi
    done
    local deadline=$((SECONDS + STOP_TIMEOUT)) entry left
    while :; do
        left=()
        for entry in "${waiting[@]}"; do
            [[ -n "$(group_members "${entry#*:}")" ]] && left+=("$entry")
        done
        ((${#left[@]} == 0 || SECONDS >= deadline)) && break
        sleep 0.2
    done
    for entry in "${left[@]}"; do
        echo "${entry%%:*} (pid ${entry#*:}) did not stop in ${STOP_TIMEOUT} s: SIGKILL"
        kill -KILL -- "-${entry#*:}" 2>/dev/null || true
    done
    for entry in "${waiting[@]}"; do
        rm -f "$CLUSTER/${entry%%:*}.pid"
        echo "stopped ${entry%%:*} (pid ${entry#*:})"
    done
}

stop() {
    [[ -d "$CLUSTER" ]] || { echo "nothing to stop"; return 0; }
    stop_group api                    # no new jobs from requests ...
    stop_group beat                   # ... nor from the periodic reconciler ...
    stop_group worker1 worker2        # ... running jobs finish ...
    stop_group redis                  # ... then the broker (only if this script started it)
    rm -f "$CLUSTER/redis.url"
}

status() {
    local running=0
    for c in "${COMPONENTS[@]}"; do
        if alive "$c"; then
            echo "$c: running (pid $(pid_of "$c"))"; running=$((running + 1))
        elif group_alive "$c"; then
            echo "$c: main process gone, processes left in group $(pid_of "$c") (\`$0 stop\` ends them)"
            running=$((running + 1))
        elif [[ "$c" == redis && -s "$CLUSTER/redis.url" ]]; then
            echo "redis: external ($(cat "$CLUSTER/redis.url"))"
        else
            echo "$c: stopped"
        fi
    done
    if answers "http://$CINCER_BIND/healthz"; then
        echo "api: http://$CINCER_BIND/healthz answers"
    fi
    ((running > 0))
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
