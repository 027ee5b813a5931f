#!/usr/bin/env bash
# A production-shaped cluster on this machine, loopback only:
#   Redis (started only if none answers at CINCER_REDIS_URL), two Celery workers, Celery
#   beat (the periodic reconciler, exactly one per cluster, as its own process) and the API
#   under gunicorn. The workers and beat run under supervisord (deploy/supervisord.conf.template,
#   filled into $CINCER_DATA_DIR/cluster/supervisord.conf): a worker whose main process dies
#   (SIGKILL, OOM killer) is started again within a second or two. Every component runs in
#   its own process group with its own pid file (a supervised one's is rewritten on each
#   restart); `stop` signals and waits for whole groups, and ends whatever a killed worker
#   or a killed supervisord left behind, so no process outlives it.
#
#   deploy/local-cluster.sh start|stop|status
#
# Environment (all optional):
#   CINCER_DATA_DIR      data directory (default ./cincer-data); pid files, logs, the
#                        supervisord configuration and its socket go to $CINCER_DATA_DIR/cluster/
#   CINCER_DATABASE_URL  database (default SQLite in the data directory)
#   CINCER_REDIS_URL     broker; when unset or not answering, a redis-server is started on
#                        127.0.0.1 (the URL's port, else a free one) and stopped by `stop`
#   CINCER_BIND          API address (default 127.0.0.1:8000)
#   CINCER_ADMIN_TOKEN   admin token; when unset one is generated and kept in
#                        $CINCER_DATA_DIR/cluster/admin-token
#   CINCER_VENV          virtual environment with cincer-service installed (default ./.venv)
#   CINCER_STOP_TIMEOUT  seconds to wait after SIGTERM before SIGKILL (default 30; also
#                        supervisord's stopwaitsecs)
#
# By hand: `$CINCER_VENV/bin/supervisorctl -c $CINCER_DATA_DIR/cluster/supervisord.conf status`
# (or `restart workers:worker1`, `tail -f beat`, ...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CINCER_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
CINCER_DATA_DIR="${CINCER_DATA_DIR:-$ROOT/cincer-data}"
[[ "$CINCER_DATA_DIR" == /* ]] || CINCER_DATA_DIR="$PWD/$CINCER_DATA_DIR"
export CINCER_DATA_DIR
CLUSTER="$CINCER_DATA_DIR/cluster"
export CINCER_BIND="${CINCER_BIND:-127.0.0.1:8000}"
STOP_TIMEOUT="${CINCER_STOP_TIMEOUT:-30}"
COMPONENTS=(api worker1 worker2 beat redis)
SUPERVISED=(worker1 worker2 beat)        # run by supervisord
CONF="$CLUSTER/supervisord.conf"
TEMPLATE="$ROOT/deploy/supervisord.conf.template"
# supervisorctl's unix socket lives in the cluster folder, unless that path is too long for a
# socket address (108 bytes); then in $TMPDIR, named after the folder.
SOCK="$CLUSTER/supervisor.sock"
if ((${#SOCK} > 100)); then
    SOCK="${TMPDIR:-/tmp}/cincer-supervisor-$(printf '%s' "$CLUSTER" | cksum | cut -d' ' -f1).sock"
fi

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

# -- supervisord ---------------------------------------------------------------------------
sv() { "$VENV/bin/supervisorctl" -c "$CONF" "$@"; }

supervisord_up() { alive supervisord; }

# supervisord's name of a supervised component (the workers form the group `workers`).
program() { case "$1" in worker*) echo "workers:$1" ;; *) echo "$1" ;; esac; }

# Every live process that supervisord started, or that descends from one: they carry this
# supervisord's SUPERVISOR_SERVER_URL in their environment, also once orphaned (the pool
# children or subprocesses of a worker whose main process was killed, or everything when
# supervisord itself was killed).
supervised_processes() {
    local f p
    for f in $(grep -lzxF "SUPERVISOR_SERVER_URL=unix://$SOCK" /proc/[0-9]*/environ 2>/dev/null); do
        p="${f#/proc/}"; p="${p%/environ}"
        pid_running "$p" && echo "$p"
    done
    return 0
}

# Those of the pids given that still run (each once).
still_running() {
    local p
    for p in $(printf '%s\n' "$@" | sort -un); do pid_running "$p" && echo "$p"; done
    return 0
}

# supervisord.conf from the template: ${name} fields replaced, `%` doubled (supervisord
# expands %(...)s in its values), paths quoted where they go into a command line.
write_config() {
    "$PY" - "$TEMPLATE" "$CONF" "$CLUSTER" "$SOCK" "$STOP_TIMEOUT" \
        "$VENV/bin/cincer-service" "$CLUSTER/celerybeat-schedule" "$ROOT/deploy/with-pidfile.sh" <<'EOF'
import re, shlex, sys
template, out, cluster, sock, stop_timeout, cincer_service, schedule, with_pidfile = sys.argv[1:]
values = {"cluster": cluster, "cluster_q": shlex.quote(cluster), "socket": sock,
          "stop_timeout": str(int(float(stop_timeout))),
          "cincer_service_q": shlex.quote(cincer_service), "schedule_q": shlex.quote(schedule),
          "with_pidfile_q": shlex.quote(with_pidfile)}
def fill(match):
    if match.group(1) not in values:
        sys.exit(f"{template}: unknown field ${{{match.group(1)}}}")
    return values[match.group(1)].replace("%", "%%")
with open(template) as handle:
    text = re.sub(r"\$\{([a-z_]+)\}", fill, handle.read())
with open(out, "w") as handle:
    handle.write(text)
EOF
}

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

log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# A supervised program that exited (or that supervisord gave up on) since byte $1 of
# supervisord.log: printed, with status 0.
exited_since() {
    tail -c +"$(($1 + 1))" "$CLUSTER/supervisord.log" 2>/dev/null \
        | grep -oE "(exited|gave up): [a-z0-9]+" | head -n 1 | grep . || return 1
}

wait_healthz() {
    local url="$1" mark="$2" deadline=$((SECONDS + 90)) gone
    while ((SECONDS < deadline)); do
        answers "$url" && return 0
        alive api || fail_start "api exited during start-up (log: $CLUSTER/api.log)" "$CLUSTER/api.log"
        supervisord_up || fail_start "supervisord exited during start-up" "$CLUSTER/supervisord.log"
        if gone="$(exited_since "$mark")"; then
            gone="${gone##* }"
            fail_start "$gone exited during start-up (log: $CLUSTER/$gone.log)" "$CLUSTER/$gone.log"
        fi
        sleep 0.5
    done
    fail_start "$url did not answer within 90 s (log: $CLUSTER/api.log)" "$CLUSTER/api.log"
}

start() {
    [[ -x "$PY" ]] || die "no virtual environment at $VENV (run \`make test\` or set CINCER_VENV)"
    [[ -x "$VENV/bin/supervisord" ]] || die "no supervisord in $VENV (pip install 'supervisor>=4.2')"
    mkdir -p "$CLUSTER"
    for c in api redis supervisord; do
        group_alive "$c" && die "already running ($c, process group $(pid_of "$c")); \`$0 stop\` first"
    done
    [[ -z "$(supervised_processes)" ]] \
        || die "processes of an earlier cluster still run ($(supervised_processes | tr '\n' ' ')); \`$0 stop\` first"
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

    # The workers and beat under supervisord (it inherits this environment and passes it on).
    write_config || fail_start "could not write $CONF from $TEMPLATE"
    local mark deadline=$((SECONDS + 30))
    mark="$(log_size "$CLUSTER/supervisord.log")"
    rm -f "$SOCK"
    launch supervisord "$VENV/bin/supervisord" -n -c "$CONF"
    until sv pid >/dev/null 2>&1; do
        ((SECONDS < deadline)) && supervisord_up \
            || fail_start "supervisord did not start" "$CLUSTER/supervisord.log"
        sleep 0.2
    done
    echo "started supervisord (pid $(pid_of supervisord)): ${SUPERVISED[*]}"
    launch api "$VENV/bin/gunicorn" -c "$ROOT/deploy/gunicorn.conf.py"

    local url="http://$CINCER_BIND"
    wait_healthz "$url/healthz" "$mark"
    echo "cincer-service cluster is up: $url  (API docs: $url/api/v1/docs)"
    echo "admin token: ${CLUSTER}/admin-token (or \$CINCER_ADMIN_TOKEN); logs: $CLUSTER/*.log"
}

# Stop the named components together: SIGTERM to each main process only (gunicorn then
# finishes its in-flight requests), wait up to STOP_TIMEOUT for each whole process group to
# exit, then SIGKILL what is left. A group whose main process is gone (killed with SIGKILL)
# gets SIGTERM as a whole, so nothing outlives `stop`.
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

# Beat, then both workers together (SIGTERM: Celery's warm shutdown, the running job
# finishes; supervisord SIGKILLs the group after STOP_TIMEOUT), then supervisord itself.
stop_supervised() {
    if supervisord_up && sv pid >/dev/null 2>&1; then
        sv stop beat || true
        sv stop 'workers:*' || true
        sv shutdown >/dev/null || true
        local pid deadline=$((SECONDS + 10))
        pid="$(pid_of supervisord)"
        while pid_running "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    fi
    stop_group supervisord
    # What supervisord does not know about: the orphans of a worker main process that was
    # killed (they stay in the dead process's group, not in its successor's), or all of its
    # programs when supervisord itself was killed. SIGTERM, wait, SIGKILL.
    local left deadline=$((SECONDS + STOP_TIMEOUT)) p pgid
    left="$(supervised_processes)"
    if [[ -n "$left" ]]; then
        echo "ending processes left by killed workers or a killed supervisord:" $left
        # SIGTERM to each process whose group leader is gone, and to live group leaders
        # (a worker main process then shuts its own pool down); not to the members of a
        # live leader's group.
        for p in $left; do
            pgid="$(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ')"
            [[ -n "$pgid" && "$pgid" != "$p" ]] && pid_running "$pgid" && continue
            kill -TERM "$p" 2>/dev/null || true
        done
        # Waited for by pid too: an exiting process no longer shows its environment.
        while left="$(still_running $left $(supervised_processes))" && [[ -n "$left" ]] \
                && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if [[ -n "$left" ]]; then
            echo "still running after ${STOP_TIMEOUT} s: SIGKILL" $left
            kill -KILL $left 2>/dev/null || true
            deadline=$((SECONDS + 10))
            while [[ -n "$(still_running $left)" ]] && ((SECONDS < deadline)); do sleep 0.2; done
        fi
    fi
    rm -f "$SOCK"
    local c
    for c in "${SUPERVISED[@]}"; do rm -f "$CLUSTER/$c.pid"; done
}

stop() {
    [[ -d "$CLUSTER" ]] || { echo "nothing to stop"; return 0; }
    stop_group api                    # no new jobs from requests ...
    stop_supervised                   # ... nor from beat; running jobs finish ...
    stop_group redis                  # ... then the broker (only if this script started it)
    rm -f "$CLUSTER/redis.url"
}

status() {
    local running=0 c line state
    local table=""
    supervisord_up && table="$(sv status 2>/dev/null || true)"
    for c in "${COMPONENTS[@]}"; do
        if [[ " ${SUPERVISED[*]} " == *" $c "* ]]; then
            # supervisorctl: "workers:worker1   RUNNING   pid 123, uptime 0:01:02"
            line="$(awk -v p="$(program "$c")" '$1 == p' <<<"$table")"
            state="$(awk '{print $2}' <<<"$line")"
            if [[ "$state" == RUNNING ]]; then
                echo "$c: running (pid $(sed -E 's/.* pid ([0-9]+).*/\1/' <<<"$line"), supervised)"
                running=$((running + 1))
            elif [[ -n "$state" ]]; then
                line="$(sed -E 's/^[^ ]+ +[A-Z]+ *//' <<<"$line")"
                echo "$c: ${state,,} (supervised${line:+: $line})"
                [[ "$state" == STARTING || "$state" == BACKOFF ]] && running=$((running + 1))
            else
                echo "$c: stopped"
            fi
        elif alive "$c"; then
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
    if supervisord_up; then
        echo "supervisord: running (pid $(pid_of supervisord), socket $SOCK)"
        running=$((running + 1))
    else
        echo "supervisord: stopped"
    fi
    # Processes of supervised programs that supervisord no longer knows (orphans).
    local known=" " orphans=() p
    for p in $(awk '$2 == "RUNNING" || $2 == "STOPPING" {print $4}' <<<"$table" | tr -d ,); do
        known+="$p $(pgrep -g "$p" 2>/dev/null | tr '\n' ' ')"
    done
    for p in $(supervised_processes); do [[ "$known" == *" $p "* ]] || orphans+=("$p"); done
    if ((${#orphans[@]})); then
        echo "left over: processes that supervisord no longer runs (of a killed worker or a killed supervisord): ${orphans[*]} (\`$0 stop\` ends them)"
        running=$((running + 1))
    fi
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
