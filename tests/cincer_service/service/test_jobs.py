"""jobs: the job table, run_job's counters, reconcile, the dispatchers."""
import time

import pytest

from cincer_service.service import (
    InlineDispatcher,
    NullDispatcher,
    ThreadDispatcher,
    examples,
    jobs,
    projects,
    reports,
    seed_demo,
)
from tests.support.service import BOOTSTRAP, items, make_context, new_project


def test_lost_messages_are_redone_by_reconcile(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None)       # every message is lost
    assert isinstance(ctx.dispatcher, NullDispatcher)
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 140))
    assert reports.stats(ctx, pid)["model_version"] is None
    ctx.set_dispatcher(InlineDispatcher(ctx))
    for _ in range(3):        # retrain first, then screening, then counter-examples
        jobs.reconcile(ctx)
    stats = reports.stats(ctx, pid)
    assert stats["model_version"] == 1 and stats["examples"]["pending"] == 0
    assert stats["queries"]["computing"] == 0 and stats["queries"]["open"] > 0
    assert jobs.reconcile(ctx) == {}                          # nothing left to redo


def test_run_job_counts_runs_and_failures(ctx):
    assert set(jobs.JOBS) == set(jobs.TASK_NAMES) >= {"screen", "counterexample", "retrain",
                                                      "audit", "reconcile"}
    assert jobs.run_job(ctx, "reconcile") == {}
    with pytest.raises(ValueError):
        jobs.run_job(ctx, "nonsense")
    assert jobs.run_job(ctx, "counterexample", 12345) is None     # no such query: a no-op
    assert ctx.job_counts == {"reconcile": 1, "counterexample": 1}
    assert not ctx.job_failures


def test_thread_dispatcher_works_in_background(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None, reconcile_seconds=0.2)
    worker = ThreadDispatcher(ctx)
    ctx.set_dispatcher(worker)
    worker.start()
    try:
        pid = new_project(ctx)
        started = time.perf_counter()
        examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 140))
        assert time.perf_counter() - started < 5       # the request does not train
        deadline = time.time() + 60
        while time.time() < deadline:
            stats = reports.stats(ctx, pid)
            if stats["model_version"] and not stats["examples"]["pending"] \
                    and not stats["queries"]["computing"]:
                break
            time.sleep(0.2)
        assert stats["model_version"] == 1 and stats["queries"]["open"] > 0
    finally:
        worker.stop()


def test_demo_is_seeded_once(tmp_path):
    ctx = make_context(tmp_path, dispatcher=None)
    project = seed_demo(ctx, n_examples=200, bootstrap_size=100)
    assert project["name"] == "demo-digits" and project["input_shape"] == [8, 8]
    assert project["input_kind"] == "image"
    assert examples.list_examples(ctx, project["id"])["total"] == 200
    text = [p for p in projects.list_projects(ctx) if p["input_kind"] == "text"]
    assert len(text) == 1 and text[0]["name"] == "demo-intents"
    page = examples.list_examples(ctx, text[0]["id"], limit=5)
    assert page["total"] == 100 and all(e["text"] for e in page["items"])
    assert seed_demo(ctx) is None


def test_a_failing_job_backs_off_and_shows_its_error(tmp_path, stream, monkeypatch):
    ctx = make_context(tmp_path, dispatcher=None)
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    calls = []

    def broken(ctx_, arg, progress=None):
        calls.append(arg)
        raise RuntimeError("the GPU caught fire")
    monkeypatch.setitem(jobs.JOBS, "retrain", jobs.Job(broken, progress=True))
    assert jobs.reconcile(ctx) == {"retrain": 1}          # the dispatcher drops it
    for _ in range(2):
        with pytest.raises(RuntimeError):
            jobs.run_job(ctx, "retrain", pid)
    failing = reports.stats(ctx, pid)["failing_jobs"]
    assert [(f["job"], f["arg"], f["failures"]) for f in failing] == [("retrain", str(pid), 2)]
    assert "the GPU caught fire" in failing[0]["last_error"]
    assert jobs.reconcile(ctx) == {}                       # waiting out its backoff
    assert jobs.backoff_seconds(1) == jobs.BACKOFF_BASE_SECONDS
    assert jobs.backoff_seconds(2) == 2 * jobs.BACKOFF_BASE_SECONDS
    assert jobs.backoff_seconds(50) == jobs.BACKOFF_CAP_SECONDS

    monkeypatch.undo()
    assert jobs.run_job(ctx, "retrain", pid) == 1          # it works again: forgotten
    assert reports.stats(ctx, pid)["failing_jobs"] == []
