"""jobs and runner: the job table and its duties, follow-ups, run_job's counters,
reconcile, the dispatchers."""
import time

import pytest
from sqlalchemy import select

from cincer_service.service import (
    BadInput,
    NullDispatcher,
    examples,
    jobs,
    projects,
    reports,
    runner,
    seed_demo,
)
from tests.support.service import BOOTSTRAP, items, make_context, new_project


def test_lost_messages_are_redone_by_reconcile(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None)       # every message is lost
    assert isinstance(ctx.dispatcher, NullDispatcher)
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 140))
    assert reports.stats(ctx, pid)["model_version"] is None
    ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    for _ in range(3):        # retrain first, then screening, then counter-examples
        runner.reconcile(ctx)
    stats = reports.stats(ctx, pid)
    assert stats["model_version"] == 1 and stats["examples"]["pending"] == 0
    assert stats["queries"]["computing"] == 0 and stats["queries"]["open"] > 0
    assert runner.reconcile(ctx) == {}                          # nothing left to redo


def test_reconcile_sends_computing_queries_a_window_at_a_time(tmp_path, stream, monkeypatch):
    """The oldest ``RECONCILE_WINDOW`` computing queries per pass, not every one (a million
    examples leave some 200k); the next ones once those are done."""
    from cincer_service.service.dispatch import InlineDispatcher
    from cincer_service.service.screening import computing_queries
    ctx = make_context(tmp_path, dispatcher=None)
    ctx.set_dispatcher(InlineDispatcher(     # every counter-example message is lost
        lambda sub: None if sub.job is jobs.COUNTEREXAMPLE else runner.run_job(ctx, sub)))
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 140))
    runner.reconcile(ctx)
    assert reports.stats(ctx, pid)["examples"]["pending"] == 0
    with ctx.store.session() as s:
        computing = computing_queries(s, None)
    monkeypatch.setattr(jobs, "RECONCILE_WINDOW", 3)
    assert len(computing) > 6
    sent = []
    ctx.set_dispatcher(InlineDispatcher(sent.append))
    assert runner.reconcile(ctx) == {"counterexample": 3}
    assert [sub.values[0] for sub in sent] == computing[:3]
    for sub in sent:
        runner.run_job(ctx, sub)
    sent.clear()
    assert runner.reconcile(ctx) == {"counterexample": 3}
    assert [sub.values[0] for sub in sent] == computing[3:6]


def test_run_job_counts_runs_and_failures(ctx):
    assert set(jobs.JOBS) >= {"screen", "counterexample", "retrain", "audit", "reconcile"}
    assert runner.run_job(ctx, jobs.RECONCILE()) == {}
    with pytest.raises(ValueError):
        jobs.by_name("nonsense")
    assert runner.run_job(ctx, jobs.COUNTEREXAMPLE(12345)) is None     # no such query: a no-op
    assert ctx.job_counts == {"reconcile": 1, "counterexample": 1}
    assert not ctx.job_failures


def test_thread_dispatcher_works_in_background(tmp_path, stream):
    ctx = make_context(tmp_path, dispatcher=None, reconcile_seconds=0.2)
    worker = runner.thread_dispatcher(ctx)
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
    # the stream, and the default evaluation set (300 digits, 150 utterances)
    assert examples.list_examples(ctx, project["id"])["total"] == 200 + 300
    text = [p for p in projects.list_projects(ctx) if p["input_kind"] == "text"]
    assert len(text) == 1 and text[0]["name"] == "demo-intents"
    page = examples.list_examples(ctx, text[0]["id"], limit=5)
    assert page["total"] == 100 + 150 and all(e["text"] for e in page["items"])
    assert seed_demo(ctx) is None


def test_a_failing_job_backs_off_and_shows_its_error(tmp_path, stream, monkeypatch):
    ctx = make_context(tmp_path, dispatcher=None)
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    calls = []

    def broken(ctx_, arg, progress=None):
        calls.append(arg)
        raise RuntimeError("the GPU caught fire")
    monkeypatch.setattr(jobs.RETRAIN, "run", broken)
    assert runner.reconcile(ctx) == {"retrain": 1}          # the dispatcher drops it
    for _ in range(2):
        with pytest.raises(RuntimeError):
            runner.run_job(ctx, jobs.RETRAIN(pid))
    failing = reports.stats(ctx, pid)["failing_jobs"]
    assert [(f["job"], f["arg"], f["failures"]) for f in failing] == [("retrain", str(pid), 2)]
    assert "the GPU caught fire" in failing[0]["last_error"]
    assert runner.reconcile(ctx) == {}                       # waiting out its backoff
    assert runner.backoff_seconds(1) == runner.BACKOFF_BASE_SECONDS
    assert runner.backoff_seconds(2) == 2 * runner.BACKOFF_BASE_SECONDS
    assert runner.backoff_seconds(50) == runner.BACKOFF_CAP_SECONDS

    monkeypatch.undo()
    assert runner.run_job(ctx, jobs.RETRAIN(pid)) == 1          # it works again: forgotten
    assert reports.stats(ctx, pid)["failing_jobs"] == []


# -- the job table's duties: each fails when a job is added without it ---------------------
def test_every_job_runs_and_says_how_to_find_its_unfinished_work():
    assert runner.unbound_jobs() == []
    for job in jobs.JOBS.values():
        assert job.queue in jobs.QUEUES
        assert callable(job.run), job.name
        assert job is jobs.RECONCILE or callable(job.unfinished), job.name


def test_reconcile_asks_every_job_for_its_unfinished_work(ctx, monkeypatch):
    asked = []
    for job in jobs.JOBS.values():
        if job is not jobs.RECONCILE:
            monkeypatch.setattr(job, "unfinished",
                                lambda s, now, name=job.name: asked.append(name) or [])
    assert runner.reconcile(ctx) == {}
    assert sorted(asked) == sorted(n for n in jobs.JOBS if n != "reconcile")


@pytest.fixture
def job_args(tmp_path, stream):
    """A context with a trained project, a query and an audit: ``(ctx, pid, {argument type:
    an id of that project})``."""
    from cincer_service.service import audits
    from cincer_service.service.store import Query
    ctx = make_context(tmp_path)
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 60))
    audit = audits.create_audit(ctx, pid, ["margin"], top_k=3)
    with ctx.store.session() as s:
        qid = s.scalar(select(Query.id).where(Query.project_id == pid).limit(1))
    return ctx, pid, {jobs.ProjectArg: pid, jobs.QueryArg: qid, jobs.AuditArg: audit["id"]}


def test_every_job_finds_its_project(job_args):
    """Each argument type answers the project of its job (backoff rows, the cascade)."""
    ctx, pid, ids = job_args
    with ctx.store.session() as s:
        for job in jobs.JOBS.values():
            if job.arg is jobs.NoArg:
                assert job(*()).arg.project_of(s) is None
                continue
            assert job.arg in ids, f"{job.name}: an argument type the test does not know"
            assert job(ids[job.arg]).arg.project_of(s) == pid, job.name


def test_delete_cascade_removes_every_jobs_backoff_rows(job_args):
    """A backoff row of each job (even one without a project id recorded) goes with its
    project; another project's rows stay."""
    from cincer_service.service.store import JobBackoff
    ctx, pid, ids = job_args
    other = new_project(ctx)
    with ctx.store.session() as s:
        for job in jobs.JOBS.values():
            if job.arg is not jobs.NoArg:
                s.add(JobBackoff(name=job.name, arg=job(ids[job.arg]).key(), failures=1,
                                 project_id=None))
        s.add(JobBackoff(name="retrain", arg=str(other), failures=1, project_id=None))
    removed = projects.delete_project(ctx, pid)
    assert removed["job_backoff"] == sum(j.arg is not jobs.NoArg for j in jobs.JOBS.values())
    with ctx.store.session() as s:
        left = s.execute(select(JobBackoff.name, JobBackoff.arg)).all()
    assert left == [("retrain", str(other))]


def test_celery_routes_come_from_the_table():
    routes = jobs.task_routes()
    assert routes == {job.task_name: {"queue": job.queue} for job in jobs.JOBS.values()}
    assert routes["tasks.counterexample"] == {"queue": "compute"}
    assert routes["tasks.retrain"] == {"queue": "compute"}
    assert routes["tasks.deliver_webhooks"] == {"queue": "background"}
    assert routes["tasks.reconcile"] == {"queue": "background"}


# -- follow-ups ----------------------------------------------------------------------------
class Recording(NullDispatcher):
    def __init__(self):
        self.sent = []

    def submit(self, submission):
        self.sent.append(str(submission))


def test_followups_are_submitted_after_commit_and_once(tmp_path):
    ctx = make_context(tmp_path, dispatcher=None)
    recording = Recording()
    ctx.set_dispatcher(recording)
    with ctx.store.session() as s:
        jobs.follow(s, jobs.RETRAIN(7))
        jobs.follow(s, jobs.RETRAIN(7))
        jobs.follow(s, jobs.COUNTEREXAMPLE(3))
        assert recording.sent == []            # nothing before the commit
    assert recording.sent == ["retrain(7)", "counterexample(3)"]


def test_followups_are_dropped_on_rollback(tmp_path):
    ctx = make_context(tmp_path, dispatcher=None)
    recording = Recording()
    ctx.set_dispatcher(recording)
    with pytest.raises(RuntimeError):
        with ctx.store.session() as s:
            jobs.follow(s, jobs.RETRAIN(7))
            raise RuntimeError("the use case failed")
    assert recording.sent == []
    with ctx.store.session() as s:             # a commit half-way keeps what it committed
        jobs.follow(s, jobs.SCREEN(1))
        s.commit()
        jobs.follow(s, jobs.SCREEN(2))
        s.rollback()
    assert recording.sent == ["screen(1)"]


def test_a_failed_use_case_sends_nothing(tmp_path, stream):
    """An ingest refused half-way (a bad item) sends no screen, retrain or webhook job."""
    ctx = make_context(tmp_path, dispatcher=None)
    recording = Recording()
    ctx.set_dispatcher(recording)
    pid = new_project(ctx)
    bad = items(stream, 0, BOOTSTRAP + 5) + [{"x": [1.0], "label": 0}]
    with pytest.raises(BadInput):
        examples.ingest(ctx, pid, bad)
    assert recording.sent == []
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 5))
    assert recording.sent == [f"retrain({pid})", f"screen({pid})"]
