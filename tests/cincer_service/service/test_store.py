"""The store's migrations when several processes start on one database at once."""
import subprocess
import sys
import time

from sqlalchemy import inspect

from cincer_service.service.store import Store

# Each starter imports, says "ready", then migrates at the instant written in the go file.
STARTER = """
import os, sys, time
from cincer_service.service.store import Store
store = Store(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
time.sleep(max(0.0, float(open(sys.argv[2]).read() or 0) - time.time()))
store.upgrade()
"""


def test_concurrent_starters_migrate_once(tmp_path):
    url, go = f"sqlite:///{tmp_path / 'cincer.db'}", tmp_path / "go"
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, url, str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    for starter in starters:
        assert starter.stdout.readline().strip() == "ready", starter.stderr.read()
    go.write_text(str(time.time() + 0.5))
    failures = [p.stderr.read() for p in starters if p.wait(120) != 0]
    assert not failures, failures[0]
    tables = set(inspect(Store(url).engine).get_table_names())
    assert {"alembic_version", "projects", "examples", "queries", "tokens"} <= tables
