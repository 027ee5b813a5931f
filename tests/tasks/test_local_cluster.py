"""``deploy/local-cluster.sh``: Redis, two workers and beat (its own process) under
supervisord, and gunicorn on loopback, started, used and stopped for real. A worker's main
process killed with SIGKILL is running again (a new pid, reported by supervisord) within 10 s;
``stop`` leaves no process behind, also after that kill and after supervisord itself was
killed (its programs orphaned)."""
import configparser
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime

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
PID_FILES = ("api", "redis", "supervisord")     # the rest run under supervisord
SUPERVISED = ("worker1", "worker2", "beat")
RESTART_LIMIT = 10.0          # seconds from SIGKILL of a worker's main process to a new one


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
    """The pid files in the cluster folder: the API, its Redis, supervisord, and (written by
    deploy/with-pidfile.sh on each start under supervisord) the workers and beat."""
    folder = tmp_path / "cluster"
    return {c: int((folder / f"{c}.pid").read_text()) for c in (*PID_FILES, *SUPERVISED)
            if (folder / f"{c}.pid").exists()}


def statuses(env) -> dict:
    """``status``'s view: component -> (state, pid or None), e.g. ``("running", 123)``."""
    done = cluster("status", env, timeout=60)
    found = {}
    for line in done.stdout.splitlines():
        match = re.match(r"(\w+): (\w+)(?: \(pid (\d+))?", line)
        if match and match.group(1) in (*COMPONENTS, "supervisord"):
            pid = match.group(3)
            found.setdefault(match.group(1), (match.group(2), int(pid) if pid else None))
    return found


def supervised_pids(env) -> dict:
    """worker1, worker2, beat -> the pid supervisord reports as RUNNING (None otherwise)."""
    found = statuses(env)
    return {c: found[c][1] if found.get(c, ("",))[0] == "running" else None
            for c in SUPERVISED}


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
                     for c in (*COMPONENTS, "supervisord"))


def supervisorctl(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.path.join(env["CINCER_VENV"], "bin", "supervisorctl"), "-c",
         os.path.join(env["CINCER_DATA_DIR"], "cluster", "supervisord.conf"), *args],
        env=env, capture_output=True, text=True, timeout=30)


def running_pid(env, name: str) -> int | None:
    """The pid of ``name``'s main process when supervisord reports it RUNNING."""
    program = f"workers:{name}" if name.startswith("worker") else name
    match = re.search(r"\bRUNNING +pid (\d+)", supervisorctl(env, "status", program).stdout)
    return int(match.group(1)) if match else None


def spawned_at(tmp_path, name: str, pid: int) -> float | None:
    """When supervisord.log says it spawned ``name`` as ``pid`` (epoch seconds)."""
    log = (tmp_path / "cluster" / "supervisord.log").read_text(errors="replace")
    match = re.search(rf"^(\S+ \S+) INFO spawned: '{name}' with pid {pid}$", log, re.M)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def kill_worker_main(env, tmp_path, name: str = "worker1") -> dict:
    """SIGKILL the main process of worker ``name`` (its pool children die with it or live on
    as orphans); wait until supervisord reports a new main process RUNNING (it is RUNNING
    once it stayed up ``startsecs``, 1 s). Returns the old and new pids, the old pool, the
    seconds from the kill to the new RUNNING pid as seen by polling ``supervisorctl status``
    (an upper bound) and to its spawn in supervisord.log."""
    old = running_pid(env, name)
    assert old and alive(old), f"{name} is not running: {statuses(env)}"
    pool = child_pids(old)
    os.kill(old, signal.SIGKILL)
    killed, killed_epoch = time.monotonic(), time.time()
    try:
        new = wait_until(lambda: (lambda p: p if p and p != old else None)(
            running_pid(env, name)), 30, 0.05, f"a new {name} main process")
    except TimeoutError:
        pytest.fail(f"{name} was not restarted within 30 s:\n{all_logs(tmp_path)}")
    restart = round(time.monotonic() - killed, 2)
    spawned = spawned_at(tmp_path, name, new)
    return {"old": old, "new": new, "pool": pool, "at": killed, "restart_seconds": restart,
            "spawn_seconds": round(spawned - killed_epoch, 2) if spawned else None}


def test_cluster_starts_its_own_redis_runs_jobs_restarts_a_killed_worker_and_stops_cleanly(
        tmp_path):
    redis_server_binary()                       # installs it as root, else says what to do
    redis_url = f"redis://127.0.0.1:{free_port()}/0"   # nothing answers there yet
    env = cluster_env(tmp_path, CINCER_REDIS_URL=redis_url)
    running, supervised, killed = {}, {}, {}
    started = cluster("start", env)
    try:
        assert started.returncode == 0, started.stderr + all_logs(tmp_path)
        url = f"http://{env['CINCER_BIND']}"
        assert url in started.stdout
        assert redis_answers(redis_url), "the cluster's redis-server is not on the URL's port"
        running = pids(tmp_path)
        assert set(running) == {*PID_FILES, *SUPERVISED} and all(map(alive, running.values()))
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        status = cluster("status", env)
        assert status.returncode == 0 and status.stdout.count(": running") == 6, status.stdout
        supervised = supervised_pids(env)
        assert all(supervised.values()) and all(map(alive, supervised.values())), supervised
        # The pid files of the supervised programs name the processes supervisord runs.
        assert supervised == {c: running[c] for c in SUPERVISED}, (supervised, running)
        # Beat is its own process, exactly one, and no worker runs one inside it.
        assert beats(tmp_path) == [supervised["beat"]]
        assert (tmp_path / "cluster" / "admin-token").stat().st_mode & 0o077 == 0

        # The generated supervisord configuration: every program restarts, waits
        # CINCER_STOP_TIMEOUT after SIGTERM, then SIGKILLs its whole group; a worker's SIGTERM
        # goes to its main process only (Celery's warm shutdown: the running job finishes).
        # Its socket and logs are in the cluster folder.
        conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
        conf.read(tmp_path / "cluster" / "supervisord.conf")
        assert conf["unix_http_server"]["file"] == str(tmp_path / "cluster" / "supervisor.sock")
        for name in SUPERVISED:
            program = conf[f"program:{name}"]
            assert (program["autorestart"], program["startsecs"], program["killasgroup"],
                    program["stopwaitsecs"], program["stopasgroup"]) == \
                ("true", "1", "true", "20", "true" if name == "beat" else "false"), dict(program)
            assert program["stdout_logfile"] == str(tmp_path / "cluster" / f"{name}.log")

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

        # A worker's main process killed with SIGKILL: supervisord starts a new one (a new
        # pid) within RESTART_LIMIT; the new one gets ready; beat, its own process, is
        # unaffected; its pool children die with it (Celery's PR_SET_PDEATHSIG) or live on as
        # orphans, which `stop` ends.
        log_mark = (tmp_path / "cluster" / "worker1.log").stat().st_size
        killed = kill_worker_main(env, tmp_path, "worker1")
        print(f"worker1 main process {killed['old']} SIGKILLed: new main process "
              f"{killed['new']} spawned after {killed['spawn_seconds']} s, RUNNING (seen by "
              f"supervisorctl) after {killed['restart_seconds']} s")
        assert killed["pool"], "worker1 had no pool process"
        assert killed["restart_seconds"] <= RESTART_LIMIT, killed
        assert not alive(killed["old"]) and alive(killed["new"])
        assert pids(tmp_path)["worker1"] == killed["new"], "worker1.pid not rewritten"
        assert running_pid(env, "worker2") == supervised["worker2"]
        assert alive(supervised["beat"]) and beats(tmp_path) == [supervised["beat"]]
        try:
            wait_until(lambda: re.search(r"worker1@\S+ ready\.", (tmp_path / "cluster" / "worker1.log")
                                         .read_text(errors="replace")[log_mark:]), 120, 0.5,
                       "the restarted worker1 ready")
        except TimeoutError:
            pytest.fail(all_logs(tmp_path))
        orphans = [p for p in killed["pool"] if alive(p)]
        print(f"pool processes of the killed worker1 still alive: {orphans}")
        assert "supervisord: running" in cluster("status", env).stdout
    finally:
        stopped = cluster("stop", env)
    assert stopped.returncode == 0, stopped.stderr
    assert all(not alive(p) for p in [*running.values(), *supervised.values(),
                                       *killed.get("pool", []), killed.get("new") or 0])
    assert not pids(tmp_path)
    assert not (tmp_path / "cluster" / "supervisor.sock").exists()
    assert not beats(tmp_path), "a beat process outlived `stop`"
    assert not leftovers(tmp_path), f"processes outlived `stop`: {leftovers(tmp_path)}"
    assert not redis_answers(redis_url), "stop must stop the redis-server it started"
    assert cluster("status", env).returncode != 0


@pytest.mark.long          # 23 s: make test-long; make test keeps the worker-kill case
def test_cluster_uses_a_redis_that_answers_and_stop_ends_the_programs_of_a_killed_supervisord(
        tmp_path):
    with start_redis() as redis_url:
        env = cluster_env(tmp_path, CINCER_REDIS_URL=redis_url)
        started = cluster("start", env)
        supervised = {}
        try:
            assert started.returncode == 0, started.stderr + all_logs(tmp_path)
            assert "using the Redis at" in started.stdout
            assert "redis" not in pids(tmp_path)
            again = cluster("start", env)
            assert again.returncode != 0 and "already running" in again.stderr
            supervised = supervised_pids(env)
            assert all(supervised.values()), statuses(env)

            # supervisord itself killed: its programs live on (each in its own process group)
            # and nothing restarts them; `status` lists them as left over, `start` refuses,
            # and `stop` ends them all the same.
            supervisord = pids(tmp_path)["supervisord"]
            os.kill(supervisord, signal.SIGKILL)
            wait_until(lambda: not alive(supervisord), 10, 0.05, "supervisord gone")
            assert all(map(alive, supervised.values()))
            status = cluster("status", env)
            assert "supervisord: stopped" in status.stdout and "left over" in status.stdout, \
                status.stdout
            assert all(str(p) in status.stdout for p in supervised.values()), status.stdout
            again = cluster("start", env)
            assert again.returncode != 0 and "stop` first" in again.stderr, again.stderr
        finally:
            stopped = cluster("stop", env)
        assert stopped.returncode == 0, stopped.stderr
        assert not [p for p in supervised.values() if alive(p)], \
            (stopped.stdout, [open(f"/proc/{p}/stat").read() for p in supervised.values()
                              if alive(p)])
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
