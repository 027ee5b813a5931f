#!/bin/sh
# with-pidfile.sh FILE COMMAND [ARG...]: write this process's pid to FILE, then become
# COMMAND (exec: same pid). supervisord runs the workers and beat through it, so
# $CINCER_DATA_DIR/cluster/<name>.pid always holds the current main process (rewritten on
# every restart) for whatever reads the pid files (`clients bench --cluster-dir`, an operator).
set -e
pidfile="$1"
shift
echo "$$" >"$pidfile"
exec "$@"
