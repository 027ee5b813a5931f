#!/usr/bin/env bash
# The service numbers of docs/results.md: a local cluster (Redis on its own port, 2 Celery
# workers, gunicorn API) on a scratch PostgreSQL database, `python -m clients bench --json`
# against it, then everything stopped and the database dropped. OUT=FILE keeps the JSON.
set -u
cd "$(dirname "$0")/.."
export CINCER_DATA_DIR=/tmp/cincer-bench-data
export CINCER_BIND=127.0.0.1:8765
export CINCER_REDIS_URL=redis://127.0.0.1:6390/0   # not answering: the script starts its own on 6390
export CINCER_ADMIN_TOKEN="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')"
rm -rf "$CINCER_DATA_DIR"
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS cincer_bench" -c "CREATE DATABASE cincer_bench"
export CINCER_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/cincer_bench
deploy/local-cluster.sh start >&2 || exit 1
.venv/bin/python -m clients --url http://$CINCER_BIND --token $CINCER_ADMIN_TOKEN --quiet bench --json \
   --cluster-dir $CINCER_DATA_DIR/cluster > "${OUT:-/dev/stdout}"
rc=$?
deploy/local-cluster.sh stop >&2
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS cincer_bench"
exit $rc
