"""Workers come back (issue 24, the kill -9 target), measured on ``deploy/local-cluster.sh``:
Redis, two workers and beat under supervisord, the API under gunicorn; PostgreSQL when
``CINCER_TEST_POSTGRES_URL`` answers, else SQLite.

Three times, on an idle cluster: a retrain is asked for, and as soon as a worker's pool child
holds the project's retrain lease (a fresh lease: the longest wait for it to run out), that
worker's *main* process is killed with SIGKILL (the pool child dies with it). Measured each
time:

- ``restart_seconds``: the kill until supervisord reports a new main process RUNNING
  (``supervisorctl status``; target <= 10 s), and ``spawn_seconds``: until supervisord.log
  says it spawned it;
- ``kill_to_new_version_seconds``: the kill until the next model version exists (target
  <= 30 s). Nothing hands the killed retrain over at once: its lease
  (``CINCER_RETRAIN_LEASE_SECONDS``, renewed every third of it) must run out, then a
  worker's reconciler (every ``CINCER_RECONCILE_SECONDS``) sends the retrain again, and it
  runs from the start. So this is about one lease + up to one reconcile interval + one
  retrain (``takeover_seconds`` and ``retrain_task_seconds`` split it), which every run is
  checked against.

The ``defaults`` case runs the service's defaults (15 s lease, reconcile every 5 s); the
``lease-6s`` case a 6 s lease (reconcile every 1 s), for comparison. Each prints its numbers
as JSON, with how many runs met the 30 s target; the 30 s target is asserted for the short
lease only (with the defaults the takeover alone takes 15-20 s). The retrain is of normal
length for a small project (a few seconds: its own ``seconds`` metric is reported) and is
checked to be still running at each kill.

A long test: run by ``make test-long`` (``pytest -m long`` or ``CINCER_TEST_LONG=1``);
``make test`` kills once in ``test_local_cluster.py``.
"""
from __future__ import annotations

import json
import re
import statistics
import time

import pytest
from sqlalchemy import func, select

from cincer_service.service import Settings, build_context
from cincer_service.service.store import Audit, ModelVersion, Project, Query
from tests.faults.cluster import API, BOOTSTRAP, Http, create_project, model_versions, synthetic
from tests.support.services import (
    child_pids,
    database_url,
    pid_alive,
    start_redis,
    wait_until,
)
from tests.tasks.test_local_cluster import (
    all_logs,
    cluster,
    cluster_env,
    kill_worker_main,
    leftovers,
    running_pid,
)

pytestmark = [pytest.mark.integration, pytest.mark.long]

RUNS = 3
RESTART_LIMIT = 10.0          # seconds from the kill to a new main process
RECOVERY_LIMIT = 30.0         # seconds from the kill to the next model version (the target)
SLACK = 5.0                   # seconds for the messages and a pool process to start, on 2 busy cores
D = 400                       # wide inputs ...
WARM_EPOCHS = 20000           # ... and many epochs: a warm retrain on 30 examples takes seconds
WORKERS = ("worker1", "worker2")

CASES = {
    # The service's defaults: nothing set.
    "defaults": {},
    # A shorter lease, for comparison (the reconciler every second, as the other tests).
    "lease-6s": {"CINCER_RETRAIN_LEASE_SECONDS": "6", "CINCER_RECONCILE_SECONDS": "1"},
}


def lease_holder_pid(ctx, pid: int) -> int | None:
    """The pid in the project's retrain lease holder (``host:pid:random``), if held."""
    with ctx.store.session() as s:
        holder = s.get(Project, pid).retrain_lease_holder
    return int(holder.split(":")[-2]) if holder else None


def holding_worker(ctx, env, pid: int):
    """(worker, pool child) when a pool child of a worker holds the retrain lease."""
    child = lease_holder_pid(ctx, pid)
    if child is None:
        return None
    for worker in WORKERS:
        main = running_pid(env, worker)
        if main and child in child_pids(main):
            return worker, child
    return None


def idle(ctx, pid: int) -> bool:
    """No background work left for the project: no audit queued or running (the bootstrap
    audit after the first model), no counter-example computing, no retrain wanted."""
    with ctx.store.session() as s:
        project = s.get(Project, pid)
        audits = s.scalar(select(func.count(Audit.id)).where(
            Audit.project_id == pid, Audit.status.in_(("queued", "running"))))
        computing = s.scalar(select(func.count(Query.id)).where(
            Query.project_id == pid, Query.status == "computing"))
        return (audits == 0 and computing == 0
                and project.wanted_generation <= project.trained_generation)


def tasks_in_flight(tmp_path) -> list[str]:
    """Tasks a worker received and has not finished, since it last got ready (a killed
    worker's tasks never finish; the reconciler's own rounds are left out)."""
    busy = []
    for worker in WORKERS:
        text = (tmp_path / "cluster" / f"{worker}.log").read_text(errors="replace")
        text = text[text.rfind(" ready."):]
        received = re.findall(r"Task (tasks\.\w+)\[([^]]+)\] received", text)
        done = set(re.findall(r"Task tasks\.\w+\[([^]]+)\] (?:succeeded|raised|retry|failed)",
                              text))
        busy += [f"{worker}:{name}" for name, tid in received
                 if tid not in done and name != "tasks.reconcile"]
    return busy


def ready_after(tmp_path, worker: str, mark: int) -> bool:
    text = (tmp_path / "cluster" / f"{worker}.log").read_text(errors="replace")[mark:]
    return re.search(rf"{worker}@\S+ ready\.", text) is not None


def kill_during_retrain(tmp_path, env, ctx, admin, pid: int) -> dict:
    """Ask for a retrain, SIGKILL the main process of the worker whose pool child holds its
    lease, and measure the restart and the time to the next model version. It starts on an
    idle cluster (both workers ready, no other job), so what is measured is the takeover and
    the retrain, not a queue."""
    try:
        wait_until(lambda: idle(ctx, pid) and not tasks_in_flight(tmp_path), 120, 0.5,
                   "the cluster idle")
    except TimeoutError:
        pytest.fail(f"the project's background work did not finish:\n{all_logs(tmp_path)}")
    before = max(model_versions(admin, pid))
    admin.post(f"{API}/projects/{pid}/models/retrain", expect=(202,))
    try:
        worker, child = wait_until(lambda: holding_worker(ctx, env, pid), 60, 0.02,
                                   "a worker claiming the retrain")
    except TimeoutError:
        pytest.fail(f"no worker claimed the retrain:\n{all_logs(tmp_path)}")
    mark = (tmp_path / "cluster" / f"{worker}.log").stat().st_size
    killed = kill_worker_main(env, tmp_path, worker)
    assert not pid_alive(killed["old"])
    assert max(model_versions(admin, pid)) == before, \
        "the retrain finished before the kill: make it longer"
    try:
        wait_until(lambda: max(model_versions(admin, pid)) > before,
                   RECOVERY_LIMIT + 60, 0.2, "a new model version")
    except TimeoutError:
        pytest.fail(f"no new model version {RECOVERY_LIMIT + 60:.0f} s after the "
                    f"kill:\n{all_logs(tmp_path)}")
    recovery = round(time.monotonic() - killed["at"], 2)
    models = admin.get(f"{API}/projects/{pid}/models", expect=(200,)).json()
    items = models["items"] if isinstance(models, dict) else models
    newest = max(items, key=lambda m: m["version"])
    result = {
        "killed": worker, "lease_holder": child,
        "restart_seconds": killed["restart_seconds"],
        "spawn_seconds": killed["spawn_seconds"],
        "kill_to_new_version_seconds": recovery,
        "new_version": newest["version"],
        "retrain_seconds": newest["metrics"].get("seconds"),
        "retrain_task_seconds": None}
    try:       # the worker logs the task's end just after it committed the version
        result["retrain_task_seconds"] = wait_until(
            lambda: retrain_task_seconds(tmp_path, newest["version"]), 15, 0.2,
            "the retrain task's end in the worker log")
    except TimeoutError:
        pass
    if result["retrain_task_seconds"] is not None:
        # From the kill until the redone retrain started: the lease running out, then a
        # reconciler round sending it again, then a pool process taking it.
        result["takeover_seconds"] = round(recovery - result["retrain_task_seconds"], 2)
    # The killed retrain's pool child died with its main process (it did not finish the
    # retrain as an orphan): the new version is the retrain redone after the takeover.
    assert not pid_alive(child), f"the lease holder {child} outlived its worker"
    assert newest["version"] == before + 1, items
    # The restarted worker gets ready before the next run.
    try:
        wait_until(lambda: ready_after(tmp_path, worker, mark), 120, 0.5,
                   f"the restarted {worker} ready")
    except TimeoutError:
        pytest.fail(all_logs(tmp_path))
    return result


def worker_logs(tmp_path) -> str:
    return "".join((tmp_path / "cluster" / f"{w}.log").read_text(errors="replace")
                   for w in WORKERS)


def retrain_task_seconds(tmp_path, version: int) -> float | None:
    """How long the Celery task that made model ``version`` ran (the workers' logs): the fit
    plus loading the data, the held-out metrics and, in a fresh pool process, the imports."""
    found = re.findall(rf"Task tasks\.retrain\[[^]]+\] succeeded in ([0-9.]+)s: {version}\b",
                       worker_logs(tmp_path))
    return round(float(found[-1]), 2) if found else None


def spread(values) -> dict:
    return {"min": min(values), "median": round(statistics.median(values), 2),
            "max": max(values), "all": values}


@pytest.mark.parametrize("case", list(CASES))
def test_killed_worker_main_process_restarts_and_its_retrain_completes(tmp_path, case):
    data = synthetic(BOOTSTRAP, d=D)
    with start_redis() as redis_url, database_url(tmp_path) as (db_url, db_kind):
        env = cluster_env(tmp_path, CINCER_REDIS_URL=redis_url, CINCER_DATABASE_URL=db_url)
        env.pop("CINCER_RECONCILE_SECONDS")          # the service's default unless the case sets it
        env.update(CASES[case])
        settings = Settings.from_env(env)
        measured = {"case": case, "database": db_kind,
                    "retrain_lease_seconds": settings.retrain_lease_seconds,
                    "reconcile_seconds": settings.reconcile_seconds, "runs": []}
        ctx = build_context(Settings(data_dir=str(tmp_path / "checks"), database_url=db_url))
        started = cluster("start", env, timeout=180)
        try:
            assert started.returncode == 0, started.stderr + all_logs(tmp_path)
            for worker in WORKERS:
                wait_until(lambda w=worker: ready_after(tmp_path, w, 0), 120, 0.5,
                           f"{worker} ready")
            token = (tmp_path / "cluster" / "admin-token").read_text().strip()
            admin = Http(f"http://{env['CINCER_BIND']}", token)
            pid = create_project(admin, name="restart", input_shape=[D],
                                 model={"kind": "lr", "max_epochs": 100,
                                        "warm_epochs": WARM_EPOCHS})
            admin.post(f"{API}/projects/{pid}/examples",
                       {"items": [data.item(i, False) for i in range(BOOTSTRAP)]}, expect=(202,))
            wait_until(lambda: model_versions(admin, pid), 120, 0.5, "the first model")

            for _ in range(RUNS):
                measured["runs"].append(kill_during_retrain(tmp_path, env, ctx, admin, pid))

            # `stop` while a retrain runs: SIGTERM to the worker's main process only (Celery's
            # warm shutdown), so the running retrain finishes before the worker exits.
            last = max(model_versions(admin, pid))
            admin.post(f"{API}/projects/{pid}/models/retrain", expect=(202,))
            wait_until(lambda: holding_worker(ctx, env, pid), 60, 0.02, "a retrain running")
        finally:
            stopped = cluster("stop", env, timeout=180)
        try:
            assert stopped.returncode == 0, stopped.stderr
            assert not leftovers(tmp_path), f"processes outlived `stop`: {leftovers(tmp_path)}"
            with ctx.store.session() as s:
                versions = s.scalars(select(ModelVersion.version)
                                     .where(ModelVersion.project_id == pid)).all()
            assert max(versions) == last + 1, \
                f"the retrain running at `stop` did not finish: {stopped.stdout}\n" \
                f"{all_logs(tmp_path)}"
            assert "WorkerLostError" not in worker_logs(tmp_path)
        finally:
            ctx.store.engine.dispose()

    runs = measured["runs"]
    measured["restart_seconds"] = spread([r["restart_seconds"] for r in runs])
    measured["kill_to_new_version_seconds"] = spread([r["kill_to_new_version_seconds"]
                                                      for r in runs])
    for key in ("retrain_seconds", "retrain_task_seconds", "takeover_seconds"):
        values = [r[key] for r in runs if r.get(key) is not None]
        measured[key] = spread(values) if values else None
    # The takeover cannot be quicker than the lease running out (up to a full lease after a
    # kill right after a claim or a renewal) plus one reconcile round.
    bound = measured["retrain_lease_seconds"] + measured["reconcile_seconds"] + SLACK
    for r in runs:
        r["within_30s"] = r["kill_to_new_version_seconds"] <= RECOVERY_LIMIT
        r["bound_seconds"] = round(bound + (r.get("retrain_task_seconds") or 0), 2)
    measured["within_30s"] = f"{sum(r['within_30s'] for r in runs)}/{len(runs)}"
    print(f"\n[supervised restart, {case}] {json.dumps(measured)}")
    assert len(runs) == RUNS
    assert measured["restart_seconds"]["max"] <= RESTART_LIMIT, measured
    # Every retrain is redone as soon as the mechanism allows: lease + a reconcile round +
    # the retrain itself (+ SLACK for the pick-up on 2 busy cores).
    assert all(r["retrain_task_seconds"] is not None
               and r["kill_to_new_version_seconds"] <= r["bound_seconds"] for r in runs), measured
    if CASES[case].get("CINCER_RETRAIN_LEASE_SECONDS") is not None:
        # The target, 30 s from the kill to the new version, holds with the short
        # lease. With the defaults (15 s lease, reconcile every 5 s) it is only met when the
        # retrain task is short: 15-20 s of takeover plus the retrain (printed, not asserted).
        assert measured["kill_to_new_version_seconds"]["max"] <= RECOVERY_LIMIT, measured

