#!/usr/bin/env bash
# The service numbers of docs/results.md: a local cluster (Redis on its own port, 2 Celery
# workers, gunicorn API) on a scratch PostgreSQL database, `python -m clients bench --json`
# against it, then everything stopped and the database dropped. OUT=FILE keeps the JSON.
#
#   deploy/bench-cluster.sh --examples 1000000 [--retrain]
# runs the end-to-end scale run instead (`python -m clients.scale_run`: N synthetic examples,
# 128 features, 10 classes, 20% noise, over REST in batches of 1,000; time to the first query,
# screening, counter-example latency from the workers' logs, RSS per process) and adds the
# database size. On request only: never part of `make test`.
set -u
cd "$(dirname "$0")/.."
EXAMPLES=""
SCALE_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --examples) EXAMPLES="${2:-}"; shift 2 ;;
        --retrain) SCALE_ARGS+=(--retrain); shift ;;
        *) echo "usage: $0 [--examples N [--retrain]]" >&2; exit 2 ;;
    esac
done
if [[ -n "$EXAMPLES" && ! "$EXAMPLES" =~ ^[1-9][0-9]*$ ]]; then
    echo "--examples takes a positive integer" >&2; exit 2
fi
export CINCER_DATA_DIR=/tmp/cincer-bench-data
export CINCER_BIND=127.0.0.1:8765
export CINCER_REDIS_URL=redis://127.0.0.1:6390/0   # not answering: the script starts its own on 6390
export CINCER_ADMIN_TOKEN="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')"
rm -rf "$CINCER_DATA_DIR"
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS cincer_bench" -c "CREATE DATABASE cincer_bench"
export CINCER_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cincer_bench
deploy/local-cluster.sh start >&2 || exit 1
if [[ -n "$EXAMPLES" ]]; then
    .venv/bin/python -m clients.scale_run --url http://$CINCER_BIND --token $CINCER_ADMIN_TOKEN \
        --examples "$EXAMPLES" --cluster-dir $CINCER_DATA_DIR/cluster "${SCALE_ARGS[@]}" \
        > "$CINCER_DATA_DIR/scale.json"
    rc=$?
    size="$(psql -h 127.0.0.1 -U postgres -d test -tAc "SELECT pg_database_size('cincer_bench')")"
    state="$(du -sb "$CINCER_DATA_DIR/state" 2>/dev/null | cut -f1)"
    .venv/bin/python -c 'import json, sys; d = json.load(open(sys.argv[1])); d["database_bytes"] = int(sys.argv[2] or 0); d["state_bytes"] = int(sys.argv[3] or 0); print(json.dumps(d, indent=1))' \
        "$CINCER_DATA_DIR/scale.json" "$size" "${state:-0}" > "${OUT:-/dev/stdout}" || rc=1
else
    .venv/bin/python -m clients --url http://$CINCER_BIND --token $CINCER_ADMIN_TOKEN --quiet bench --json \
       --cluster-dir $CINCER_DATA_DIR/cluster > "${OUT:-/dev/stdout}"
    rc=$?
fi
deploy/local-cluster.sh stop >&2
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS cincer_bench"
exit $rc
