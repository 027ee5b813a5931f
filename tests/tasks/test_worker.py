"""Celery side of the service against a real Redis and a real worker subprocess.

The test process drives the service modules with a ``CeleryDispatcher``; a ``cincer-service
worker`` subprocess (same SQLite file, same Redis) does the model work. A worker killed with
SIGKILL in the middle of a retrain loses nothing: the next worker's reconciler redoes it.
"""
import base64
import json
import os
import signal
import sys
import time

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select

from cincer_service.service import (
    Settings,
    access,
    audits,
    build_context,
    examples,
    jobs,
    projects,
    queries,
    reports,
    runner,
    training,
    workers,
)
from cincer_service.service.store import Audit, Project, Query
from cincer_service.spec import ProjectSpec, bootstrap_audit_size
from tasks.celery_app import CeleryDispatcher, celery_init_app, clear_queued
from tests.support.services import (
    HEAVY_DATABASES,
    kill_group,
    log_tail,
    process,
    start_redis,
    wait_until,
)

pytestmark = pytest.mark.integration

CLI = os.path.join(os.path.dirname(sys.executable), "cincer-service")
N_BOOTSTRAP = 30
N_STREAM = 60


@pytest.fixture(scope="module")
def redis_server():
    with start_redis() as url:
        yield url


@pytest.fixture
def redis_url(redis_server):
    """The test Redis, emptied (queue and queued-job markers) for each test."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


@pytest.fixture(scope="module")
def breast(noisy_data):
    """breast at 30% random noise: ``(data, noisy)``."""
    found = noisy_data("breast", 0.3)
    return found.data, found.noisy




def celery_service(tmp_path, redis_url, database_url=None):
    """A service context (temporary SQLite file unless ``database_url``) with Celery
    installed as the API installs it."""
    settings = Settings(data_dir=str(tmp_path), redis_url=redis_url, database_url=database_url)
    app = Flask("cincer-test")
    app.extensions["cincer"] = build_context(settings)
    celery_init_app(app)
    return app


def queued_messages(url: str, queue: str) -> list[dict]:
    """The Celery messages waiting in Redis' ``queue``, in the order a worker takes them:
    by priority (kombu keeps a list per level: ``queue`` for the first, ``queue\x06\x16<n>``
    for the others), oldest first within one."""
    client = redis.Redis.from_url(url)
    levels = sorted(set(jobs.PRIORITIES.values()))
    raw = [m for level in levels for m in reversed(client.lrange(
        queue if level == levels[0] else f"{queue}\x06\x16{level}", 0, -1))]
    client.close()
    return [json.loads(m) for m in raw]             # LPUSH'd: newest at the head


def test_celery_app_configuration(tmp_path, redis_url):
    app = celery_service(tmp_path, redis_url)
    celery_app = app.extensions["celery"]
    conf = celery_app.conf
    assert conf.broker_url == conf.result_backend == redis_url
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.beat_schedule["reconcile"]["task"] == "tasks.reconcile"
    assert conf.beat_schedule["reconcile"]["schedule"] == Settings().reconcile_seconds
    assert isinstance(app.extensions["cincer"].dispatcher, CeleryDispatcher)
    import tasks.jobs  # noqa: F401  (registers the shared tasks on the current app)
    assert {job.task_name for job in jobs.JOBS.values()} <= set(celery_app.tasks)
    assert conf.task_routes["tasks.counterexample"] == {"queue": "compute"}
    assert conf.task_routes["tasks.audit"] == {"queue": "background"}
    assert celery_app.tasks["tasks.audit"].acks_late


def test_dispatcher_sends_each_waiting_job_once(tmp_path, redis_url):
    app = celery_service(tmp_path, redis_url)
    dispatcher = app.extensions["cincer"].dispatcher
    started = time.perf_counter()
    for _ in range(3):
        dispatcher.submit(jobs.SCREEN(7))
        dispatcher.submit(jobs.COUNTEREXAMPLE(11))
        dispatcher.submit(jobs.AUDIT(4))
    dispatcher.submit(jobs.RECONCILE())
    dispatcher.submit(jobs.RECONCILE())
    assert time.perf_counter() - started < 2.0          # never waits for a worker
    assert dispatcher.flush(10)

    def sent(queue):
        return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0])
                for m in queued_messages(redis_url, queue)]
    # Sent in this order; taken by priority: the counter-example before the screen.
    assert sent("compute") == [("tasks.counterexample", [11]), ("tasks.screen", [7])]
    assert sent("background") == [("tasks.reconcile", []), ("tasks.reconcile", []),
                                  ("tasks.audit", [4])]
    # Once a worker starts the job, a new submission is queued again.
    clear_queued(app.extensions["celery"], jobs.SCREEN(7))
    dispatcher.submit(jobs.SCREEN(7))
    assert dispatcher.flush(10)
    assert sent("compute")[-1] == ("tasks.screen", [7]) and len(sent("compute")) == 3
    with pytest.raises(ValueError):
        dispatcher.submit(jobs.Job("nonsense", jobs.ProjectArg, jobs.COMPUTE)(1))


def test_worker_command_needs_redis_url(monkeypatch, capsys):
    from cincer_service.cli import main
    monkeypatch.delenv("CINCER_REDIS_URL", raising=False)
    assert main(["worker", "--pool", "solo"]) == 2
    err = capsys.readouterr().err
    assert "CINCER_REDIS_URL" in err and "redis://" in err


def test_worker_command_line(tmp_path):
    from cincer_service.cli import build_parser
    from tasks.commands import worker_argv
    args = build_parser().parse_args(["worker", "--beat", "--concurrency", "2", "--pool",
                                      "threads", "--loglevel", "warning"])
    argv = worker_argv(args, str(tmp_path))
    assert argv[0] == "worker" and "--beat" in argv and "--pool=threads" in argv
    assert "--concurrency=2" in argv and "--loglevel=WARNING" in argv
    assert f"--schedule={tmp_path / 'celerybeat-schedule'}" in argv
    assert "--beat" not in worker_argv(build_parser().parse_args(["worker"]), str(tmp_path))


def worker_env(tmp_path, redis_url, database_url) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINCER_")}
    env.update(CINCER_DATA_DIR=str(tmp_path), CINCER_REDIS_URL=redis_url,
               CINCER_DATABASE_URL=database_url,
               CINCER_RECONCILE_SECONDS="1",
               # a retrain held by a dead worker is redone after this long
               CINCER_RETRAIN_LEASE_SECONDS="4",
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    return env


def project_row(service, pid):
    with service.store.session() as s:
        p = s.get(Project, pid)
        return {"generation": p.generation, "wanted": p.wanted_generation,
                "trained": p.trained_generation, "lease": p.retrain_lease_until}


def settled(service, pid, min_version):
    """Stats once every job is done and the model is at least ``min_version``, else None."""
    stats = reports.stats(service, pid)
    with service.store.session() as s:
        auditing = s.scalar(select(func.count(Audit.id)).where(
            Audit.project_id == pid, Audit.status.in_(("queued", "running"))))
    if ((stats["model_version"] or 0) >= min_version and not stats["retrain_wanted"]
            and not auditing
            and stats["examples"].get("pending", 0) == 0
            and stats["queries"].get("computing", 0) == 0):
        return stats
    return None


@pytest.mark.parametrize("database_url", HEAVY_DATABASES, indirect=True)
def test_worker_trains_screens_and_survives_sigkill(tmp_path, redis_url, database_url, breast):
    data, noisy = breast
    app = celery_service(tmp_path, redis_url, database_url)
    service = app.extensions["cincer"]
    pid = projects.create_project(service, ProjectSpec.build(**{
        "name": "breast", "classes": ["malignant", "benign"], "input_shape": [30],
        # warm retrains always run warm_epochs (no early stop): long enough to be killed in
        "model": {"kind": "lr", "max_epochs": 200, "warm_epochs": 4000, "schedule": "fixed"},
        "bootstrap_size": N_BOOTSTRAP, "retrain": {"mode": "warm", "every_n_answers": 1000}}))["id"]
    items = [{"external_id": str(i), "x": data.X_train[i].tolist(), "label": int(noisy[i])}
             for i in range(len(data.X_train))]
    env = worker_env(tmp_path, redis_url, database_url)
    log1 = str(tmp_path / "worker1.log")

    with process([CLI, "worker", "--beat", "--loglevel", "info"], env, log1) as worker:
        statuses = [r["status"] for r in examples.ingest(service, pid, items[:N_BOOTSTRAP + N_STREAM])]
        assert statuses.count("accepted") == N_BOOTSTRAP
        try:
            stats = wait_until(lambda: settled(service, pid, 1), 60, 0.2,
                               "first model, screening and counter-examples")
        except TimeoutError:
            pytest.fail(f"worker did not finish the first round:\n{log_tail(log1)}")
        assert worker.poll() is None
        assert stats["model_version"] == 1
        assert stats["examples"]["accepted"] + stats["examples"]["suspicious"] \
            == N_BOOTSTRAP + N_STREAM
        # Open: the stream's suspicious examples and the bootstrap audit's suspects, but
        # those a stream pair already shows as its counter-example (counter-examples run
        # first, and no example is in two open pairs).
        with service.store.session() as s:
            audited = s.scalar(select(func.count(Query.id)).where(
                Query.project_id == pid, Query.origin == "bootstrap"))
        assert 0 < audited <= bootstrap_audit_size(N_BOOTSTRAP)
        assert stats["queries"]["open"] == stats["examples"]["suspicious"] + audited
        assert stats["examples"]["suspicious"] > 0
        annotator = access.authenticate(service, access.create_token(service, pid, "annotator", "a")["token"])
        query = queries.lease_next_query(service, pid, annotator)
        assert query["counterexample"] is not None and query["model_version"] == 1
        assert query["counterexample"]["label"] == query["example"]["prediction"]

        # More data and a retrain; kill the worker (SIGKILL, whole process group) while it
        # holds the retrain's lease, i.e. in the middle of training.
        examples.ingest(service, pid, items[N_BOOTSTRAP + N_STREAM:N_BOOTSTRAP + N_STREAM + 300])
        wait_until(lambda: reports.stats(service, pid)["examples"].get("pending", 0) == 0, 60, 0.2,
                   "screening of the second batch")
        training.request_retrain(service, pid)
        wait_until(lambda: project_row(service, pid)["lease"] is not None, 30, 0.01,
                   "the worker claiming the retrain")
        kill_group(worker, timeout=5, sig=signal.SIGKILL)

    row = project_row(service, pid)
    assert row["lease"] is not None and row["wanted"] > row["trained"], \
        "the retrain finished before the kill; make it longer"
    assert reports.stats(service, pid)["model_version"] == 1

    # A new worker (with beat) finds the unfinished retrain through the reconciler once the
    # dead worker's lease expires; nothing is resubmitted from the test process.
    log2 = str(tmp_path / "worker2.log")
    with process([CLI, "worker", "--beat", "--loglevel", "info"], env, log2) as worker:
        try:
            stats = wait_until(lambda: settled(service, pid, 2), 60, 0.2,
                               "the retrain redone by a new worker")
        except TimeoutError:
            pytest.fail(f"the new worker did not finish:\n{log_tail(log2)}")
        assert worker.poll() is None
    models = training.list_models(service, pid)
    assert [m["version"] for m in models] == [1, 2]
    assert models[1]["mode"] == "warm"
    assert models[1]["train_size"] == stats["examples"]["accepted"]
    assert stats["examples"].get("pending", 0) == 0
    assert "reconcile" in open(log2).read()
    service.store.engine.dispose()


def test_audit_task_reports_progress_to_the_result_backend(tmp_path, redis_url, breast):
    data, noisy = breast
    app = celery_service(tmp_path, redis_url)
    service, celery_app = app.extensions["cincer"], app.extensions["celery"]
    import tasks.jobs  # noqa: F401  (registers the shared tasks on this app)
    pid = projects.create_project(service, ProjectSpec.build(**{
        "name": "breast", "classes": ["malignant", "benign"], "input_shape": [30],
        "model": {"kind": "lr", "max_epochs": 50}, "bootstrap_size": 40}))["id"]
    examples.ingest(service, pid, [{"x": data.X_train[i].tolist(), "label": int(noisy[i])}
                         for i in range(40)])
    assert runner.run_job(service, jobs.RETRAIN(pid)) == 1    # no worker here: run it in-process
    audit = audits.create_audit(service, pid, ["self_influence", "margin", "near_duplicates"], 5)
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe("celery-task-meta-audit-progress")
    pubsub.get_message(timeout=1)                        # the subscribe confirmation
    result = celery_app.tasks["tasks.audit"].apply(args=(audit["id"],),
                                                    task_id="audit-progress")
    assert result.successful(), result.traceback
    states = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        states.append(json.loads(message["data"]))
    pubsub.close()
    client.close()
    progress = [s["result"] for s in states if s["status"] == "PROGRESS"]
    assert [p["message"] for p in progress] == ["self_influence", "margin", "near_duplicates"]
    assert [p["done"] for p in progress] == pytest.approx([0, 1 / 3, 2 / 3])
    assert result.get() == "done"
    done = audits.get_audit(service, pid, audit["id"])
    assert done["status"] == "done" and len(done["suspects"]) == 5


def test_tasks_retry_transient_database_errors_only(tmp_path, redis_url, monkeypatch):
    import sqlalchemy.exc
    app = celery_service(tmp_path, redis_url)
    celery_app = app.extensions["celery"]
    import tasks.jobs  # noqa: F401
    calls = []

    def flaky(ctx, submission, progress=None):
        calls.append((submission.job.name, *submission.values))
        if len(calls) < 3:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))
        return 0

    monkeypatch.setattr(tasks.jobs.runner, "run_job", flaky)
    assert celery_app.tasks["tasks.screen"].apply(args=(3,)).get() == 0
    assert calls == [("screen", 3)] * 3

    def broken(ctx, submission, progress=None):
        calls.append((submission.job.name, *submission.values))
        raise ValueError("a bug, not a hiccup")

    calls.clear()
    monkeypatch.setattr(tasks.jobs.runner, "run_job", broken)
    result = celery_app.tasks["tasks.counterexample"].apply(args=(5,))
    assert result.failed() and isinstance(result.result, ValueError)
    assert calls == [("counterexample", 5)]


def test_counterexamples_run_only_on_the_compute_worker(tmp_path, redis_url, breast):
    """Two workers: one takes the ``compute`` queue (a GPU host), one ``background``
    (CPU hosts, with beat). Every counter-example records the compute worker's name and
    device; both workers register with their queues and device."""
    data, noisy = breast
    database_url = f"sqlite:///{tmp_path / 'cincer.db'}"
    app = celery_service(tmp_path, redis_url, database_url)
    service = app.extensions["cincer"]
    pid = projects.create_project(service, ProjectSpec.build(**{
        "name": "breast", "classes": ["malignant", "benign"], "input_shape": [30],
        "model": {"kind": "lr", "max_epochs": 60}, "bootstrap_size": N_BOOTSTRAP,
        "retrain": {"mode": "warm", "every_n_answers": 1000}}))["id"]
    items = [{"x": data.X_train[i].tolist(), "label": int(noisy[i])}
             for i in range(N_BOOTSTRAP + N_STREAM)]
    env = worker_env(tmp_path, redis_url, database_url)
    compute_log, background_log = str(tmp_path / "compute.log"), str(tmp_path / "bg.log")
    compute = ["--queues", "compute", "--hostname", "gpu-host@test", "--pool", "solo"]
    background = ["--queues", "background", "--hostname", "cpu-host@test", "--beat"]
    with process([CLI, "worker", *compute], env, compute_log), \
            process([CLI, "worker", *background], env, background_log):
        examples.ingest(service, pid, items)
        try:
            wait_until(lambda: settled(service, pid, 1), 90, 0.2,
                       "first model, screening and counter-examples on two workers")
            wait_until(lambda: len(workers.list_workers(service)) == 2, 60, 0.2,
                       "both workers registered")
        except TimeoutError:
            pytest.fail(f"compute:\n{log_tail(compute_log)}\nbackground:\n"
                        f"{log_tail(background_log)}")
    with service.store.session() as s:
        computed = s.execute(select(Query.computed_by, Query.computed_on)
                             .where(Query.project_id == pid, Query.status == "open")).all()
    assert computed and {by for by, _ in computed} == {"gpu-host@test"}
    assert {on for _, on in computed} <= {"GPU", "CPU"}
    registered = {w["name"]: w for w in workers.list_workers(service)}
    assert registered["gpu-host@test"]["queues"] == ["compute"]
    assert registered["cpu-host@test"]["queues"] == ["background"]
    assert {w["device"] for w in registered.values()} <= {"GPU", "CPU"}
    print("counter-examples computed by", sorted(set(computed)))
    service.store.engine.dispose()


def test_a_worker_reconciles_without_beat(tmp_path, redis_url, breast):
    """Every message of an ingest is lost (the API's dispatcher drops them) and no beat
    runs: the worker's own reconciler thread still trains, screens and opens the queries."""
    from cincer_service.service import NullDispatcher
    data, noisy = breast
    database_url = f"sqlite:///{tmp_path / 'cincer.db'}"
    app = celery_service(tmp_path, redis_url, database_url)
    service = app.extensions["cincer"]
    service.set_dispatcher(NullDispatcher())
    pid = projects.create_project(service, ProjectSpec.build(**{
        "name": "breast", "classes": ["malignant", "benign"], "input_shape": [30],
        "model": {"kind": "lr", "max_epochs": 60}, "bootstrap_size": N_BOOTSTRAP}))["id"]
    examples.ingest(service, pid, [{"x": data.X_train[i].tolist(), "label": int(noisy[i])}
                                   for i in range(N_BOOTSTRAP + N_STREAM)])
    env = worker_env(tmp_path, redis_url, database_url)
    log = str(tmp_path / "worker.log")
    with process([CLI, "worker", "--pool", "solo"], env, log):
        try:
            stats = wait_until(lambda: settled(service, pid, 1), 90, 0.2,
                               "the work the worker's reconciler found")
        except TimeoutError:
            pytest.fail(f"the worker did not reconcile:\n{log_tail(log)}")
    assert stats["model_version"] == 1 and stats["queries"]["open"] > 0
    service.store.engine.dispose()
