"""``deploy/local-cluster.sh``: Redis, two workers, beat (its own process) and gunicorn on
loopback, started, used and stopped for real -- also after a worker's main process was killed
with SIGKILL, leaving its pool child orphaned: ``stop`` leaves no process behind."""
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from flask import Flask

from cincer_service.datasets import load_dataset
from cincer_service.service import Settings, build_context, examples, projects, reports
from cincer_service.spec import ProjectSpec
from tasks.celery_app import celery_init_app
from tests.support.services import (
    child_pids,
    free_port,
    log_tail,
    pid_alive,
    processes_with_env,
    redis_answers,
    redis_server_binary,
    start_redis,
    wait_until,
)

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "deploy", "local-cluster.sh")
COMPONENTS = ("api", "worker1", "worker2", "beat", "redis")


def cluster(command, env, timeout=120):
    return subprocess.run(["bash", SCRIPT, command], env=env, cwd=env["CINCER_DATA_DIR"],
                          capture_output=True, text=True, timeout=timeout)


def cluster_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINCER_")}
    env.update(CINCER_DATA_DIR=str(tmp_path), CINCER_BIND=f"127.0.0.1:{free_port()}",
               CINCER_VENV=os.path.dirname(os.path.dirname(sys.executable)),
               CINCER_STOP_TIMEOUT="20", CINCER_RECONCILE_SECONDS="1",
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def pids(tmp_path):
    folder = tmp_path / "cluster"
    return {c: int((folder / f"{c}.pid").read_text()) for c in COMPONENTS
            if (folder / f"{c}.pid").exists()}


def alive(pid):
    return pid_alive(pid)


def beats(tmp_path):
    """Celery beat processes of this cluster (``pgrep -f`` on its schedule, which lies in the
    data directory), whether run alone or inside a worker."""
    done = subprocess.run(["pgrep", "-f", f"{tmp_path}/cluster/celerybeat-schedule"],
                          capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def leftovers(tmp_path):
    """Every process still running with this cluster's data directory in its environment."""
    return processes_with_env("CINCER_DATA_DIR", str(tmp_path))


def all_logs(tmp_path):
    return "\n".join(f"--- {c}\n{log_tail(str(tmp_path / 'cluster' / f'{c}.log'), 25)}"
                     for c in COMPONENTS)


def test_cluster_starts_its_own_redis_runs_jobs_and_stops_cleanly(tmp_path):
    redis_server_binary()                       # installs it as root, else says what to do
    redis_url = f"redis://127.0.0.1:{free_port()}/0"   # nothing answers there yet
    env = cluster_env(tmp_path, CINCER_REDIS_URL=redis_url)
    running = {}
    started = cluster("start", env)
    try:
        assert started.returncode == 0, started.stderr + all_logs(tmp_path)
        url = f"http://{env['CINCER_BIND']}"
        assert url in started.stdout
        assert redis_answers(redis_url), "the cluster's redis-server is not on the URL's port"
        running = pids(tmp_path)
        assert set(running) == set(COMPONENTS) and all(map(alive, running.values()))
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        status = cluster("status", env)
        assert status.returncode == 0 and status.stdout.count("running") == 5
        # Beat is its own process, exactly one, and no worker runs one inside it.
        assert beats(tmp_path) == [running["beat"]]
        assert (tmp_path / "cluster" / "admin-token").stat().st_mode & 0o077 == 0

        # The workers do real work: a bootstrap batch becomes model version 1.
        app = Flask("cluster-test")
        app.extensions["cincer"] = service = build_context(
            Settings.from_env(env, redis_url=redis_url))
        celery_init_app(app)
        data = load_dataset("iris", seed=0)
        pid = projects.create_project(service, ProjectSpec.build(**{
            "name": "iris", "classes": list(data.class_names), "input_shape": [4],
            "model": {"kind": "lr", "max_epochs": 50}, "bootstrap_size": 20}))["id"]
        examples.ingest(service, pid, [{"x": data.X_train[i].tolist(), "label": int(data.y_train[i])}
                             for i in range(30)])
        try:
            wait_until(lambda: reports.stats(service, pid)["model_version"] == 1
                       and reports.stats(service, pid)["examples"].get("pending", 0) == 0, 60, 0.2,
                       "model version 1 from the cluster's workers")
        except TimeoutError:
            pytest.fail(all_logs(tmp_path))
        assert "beat: Starting" not in (tmp_path / "cluster" / "worker1.log").read_text()
        assert "reconcile" in (tmp_path / "cluster" / "beat.log").read_text()
        service.store.engine.dispose()

        # A worker's main process killed with SIGKILL: a busy pool child would outlive it
        # (orphaned, same process group; an idle one notices and exits). Beat, its own
        # process, is unaffected (with `worker --beat` it died or lived on as an orphan that
        # `stop` did not end), and `stop` ends whatever is left of every group.
        pool = child_pids(running["worker1"])
        assert pool, "worker1 has no pool process"
        os.kill(running["worker1"], signal.SIGKILL)
        wait_until(lambda: not alive(running["worker1"]), 10, 0.05, "worker1 gone")
        time.sleep(1.0)
        assert alive(running["beat"]) and beats(tmp_path) == [running["beat"]]
        orphans = [p for p in pool if alive(p)]
        print(f"pool processes of the killed worker still alive after 1 s: {orphans}")
        status = cluster("status", env)
        assert "worker1: stopped" in status.stdout or "worker1: main process gone" in status.stdout
    finally:
        stopped = cluster("stop", env)
    assert stopped.returncode == 0, stopped.stderr
    assert all(not alive(p) for p in running.values())
    assert not pids(tmp_path)
    assert not beats(tmp_path), "a beat process outlived `stop`"
    assert not leftovers(tmp_path), f"processes outlived `stop`: {leftovers(tmp_path)}"
    assert not redis_answers(redis_url), "stop must stop the redis-server it started"
    assert cluster("status", env).returncode != 0


def test_cluster_uses_a_redis_that_answers_and_leaves_it_running(tmp_path):
    with start_redis() as redis_url:
        env = cluster_env(tmp_path, CINCER_REDIS_URL=redis_url)
        started = cluster("start", env)
        try:
            assert started.returncode == 0, started.stderr + all_logs(tmp_path)
            assert "using the Redis at" in started.stdout
            assert "redis" not in pids(tmp_path)
            again = cluster("start", env)
            assert again.returncode != 0 and "already running" in again.stderr
        finally:
            stopped = cluster("stop", env)
        assert stopped.returncode == 0, stopped.stderr
        assert not pids(tmp_path)
        assert not leftovers(tmp_path), f"processes outlived `stop`: {leftovers(tmp_path)}"
        assert redis_answers(redis_url)


def test_beat_command_line(tmp_path, monkeypatch, capsys):
    """``cincer-service beat``: Celery beat alone, its schedule in the data directory."""
    from cincer_service.cli import build_parser, main
    from tasks.commands import beat_argv
    args = build_parser().parse_args(["beat", "--loglevel", "warning"])
    assert beat_argv(args, str(tmp_path)) == [
        "beat", "--loglevel=WARNING", f"--schedule={tmp_path / 'celerybeat-schedule'}"]
    args = build_parser().parse_args(["beat", "--schedule", "/x/s", "--pidfile", "/x/p"])
    assert beat_argv(args, str(tmp_path))[2:] == ["--schedule=/x/s", "--pidfile=/x/p"]
    monkeypatch.delenv("CINCER_REDIS_URL", raising=False)
    assert main(["beat"]) == 2
    assert "CINCER_REDIS_URL" in capsys.readouterr().err
