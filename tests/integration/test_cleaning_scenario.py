"""The issue's scenario end to end, with real processes, in both topologies:

* production: a private ``redis-server``, a ``cincer-service worker --beat`` Celery worker
  subprocess, the API under gunicorn (``deploy/gunicorn.conf.py``) on a free loopback port,
  PostgreSQL when ``CINCER_TEST_POSTGRES_URL`` answers, else a SQLite file;
* embedded default: ``cincer-service serve --no-demo`` (SQLite, in-process worker).

Everything goes through ``clients`` over HTTP; see ``scenario.py`` for what is checked. On a
failure the tails of the server and worker logs are printed.
"""
from __future__ import annotations

import os
import secrets
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.services import (
    free_port,
    log_tail,
    postgres_database,
    process,
    start_redis,
    wait_http,
)

from .scenario import run_scenario

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 120        # TensorFlow imports are slow on two shared cores


def service_env(data_dir: Path, admin_token: str, **cincer) -> dict:
    """The environment of a server process: no inherited CINCER_* settings, quiet TF, CPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINCER_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1",
               CINCER_ADMIN_TOKEN=admin_token, CINCER_DATA_DIR=str(data_dir),
               CINCER_RECONCILE_SECONDS="2")
    env.update({k: str(v) for k, v in cincer.items()})
    return env


@contextmanager
def logs_on_failure(*paths: Path):
    """Print the tail of each log when the block fails (pytest shows it with the failure)."""
    try:
        yield
    except BaseException:
        for path in paths:
            print(f"\n----- tail of {path.name} -----\n{log_tail(str(path), 80)}")
        raise


def test_scenario_production_topology(tmp_path):
    admin_token = "e2e-admin-" + secrets.token_hex(12)
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    with start_redis() as redis_url, postgres_database() as postgres_url:
        database_url = postgres_url or f"sqlite:///{tmp_path / 'cincer.db'}"
        env = service_env(tmp_path / "data", admin_token, CINCER_REDIS_URL=redis_url,
                          CINCER_DATABASE_URL=database_url)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        worker_cmd = [str(BIN / "cincer-service"), "worker", "--beat", "--concurrency", "1",
                      "--loglevel", "info"]
        api_cmd = [str(BIN / "gunicorn"), "-c", str(REPO / "deploy" / "gunicorn.conf.py"),
                   "--bind", f"127.0.0.1:{port}", "--workers", "2"]
        with logs_on_failure(api_log, worker_log), \
                process(worker_cmd, env, str(worker_log), cwd=str(tmp_path)) as worker, \
                process(api_cmd, env, str(api_log), cwd=str(REPO)) as api:
            wait_http(f"{url}/healthz", STARTUP_TIMEOUT, api, str(api_log))
            result = run_scenario(url, admin_token, str(tmp_path))
            assert worker.poll() is None, "the Celery worker died during the scenario"
            assert api.poll() is None, "gunicorn died during the scenario"
        print({"database": "postgresql" if postgres_url else "sqlite", **result})


def test_scenario_embedded_default(tmp_path):
    admin_token = "e2e-admin-" + secrets.token_hex(12)
    log = tmp_path / "serve.log"
    env = service_env(tmp_path / "data", admin_token)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "cincer-service"), "serve", "--no-demo", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(tmp_path / "data")]
    with logs_on_failure(log), process(cmd, env, str(log), cwd=str(tmp_path)) as server:
        wait_http(f"{url}/healthz", STARTUP_TIMEOUT, server, str(log))
        result = run_scenario(url, admin_token, str(tmp_path))
        assert server.poll() is None, "the server died during the scenario"
    assert (tmp_path / "data" / "cincer.db").exists()
    print({"database": "sqlite", **result})
