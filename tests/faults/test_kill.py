"""SIGKILL in the middle of background work, with real processes on loopback: the API under
gunicorn, two Celery workers and beat (its own process), on PostgreSQL when
``CINCER_TEST_POSTGRES_URL`` answers, else a SQLite file. Default retrain lease (15 s),
reconciler every second.

Three kills, each while an annotator keeps answering over HTTP:

(b) a worker's pool child in the middle of a counter-example (found with Celery's
    ``inspect().active()``; the query is checked to be still ``computing`` after the kill);
(a) the pool child that holds the retrain lease (its pid is in the lease holder);
(c) the main process of the worker whose pool child holds the retrain lease (its child is
    left orphaned; the worker is then started again, as a supervisor would).

After each kill a retrain is wanted, and a new model version must appear within 30 s of the
kill (the seconds are printed). Once everything settles no query is ``computing``, no example
is ``pending``, and the label history holds exactly the answers sent (none lost, none
doubled); no process outlives the cluster.

Retrains are long enough to be killed in: the training set stays small (so every retrain
runs its full ``warm_epochs``) and ``warm_epochs`` is large.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from celery import Celery
from sqlalchemy import func, select

from cincer_service.service.store import LabelEvent, Project, Query
from tests.support.services import database_url, pid_alive, processes_with_env, start_redis, wait_until

from .cluster import (
    API,
    BOOTSTRAP,
    Cluster,
    Http,
    answer_body,
    create_project,
    mint,
    model_versions,
    stats,
    synthetic,
)

pytestmark = pytest.mark.integration

RECOVERY_LIMIT = 30.0         # seconds from a kill to the next model version
D = 400                       # wide inputs: a version's first influence counter-example ~1 s
WARM_EPOCHS = 8000            # a warm retrain on ~40-60 examples: 2-3 s
N_STREAM = 24                 # flipped labels: each becomes a query
MAX_ANSWERS = 16              # keeps the training set small (< 67: fixed schedule)


class Annotator(threading.Thread):
    """Leases and answers queries over HTTP at a steady pace until stopped (or
    ``MAX_ANSWERS``); keeps every answer the API acknowledged."""

    def __init__(self, http: Http, pid: int, truth_of, pause: float = 2.5):
        super().__init__(daemon=True, name="annotator")
        self.http, self.pid, self.truth_of, self.pause = http, pid, truth_of, pause
        self.stopping = threading.Event()
        self.answers: dict[int, dict] = {}            # qid -> body, acknowledged (200)
        self.refused: list = []
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stopping.is_set() and len(self.answers) < MAX_ANSWERS:
                leased = self.http.post(f"{API}/projects/{self.pid}/queries/next", kind="lease")
                if leased.status_code == 204:
                    self.stopping.wait(0.5)
                    continue
                assert leased.status_code == 200, leased.text
                query = leased.json()
                body = answer_body(query, self.truth_of)
                answered = self.http.post(
                    f"{API}/projects/{self.pid}/queries/{query['id']}/answer", body,
                    kind="answer")
                if answered.status_code == 200:
                    self.answers[query["id"]] = body
                else:
                    self.refused.append((query["id"], answered.status_code, answered.text[:300]))
                self.stopping.wait(self.pause)
        except BaseException as exc:       # reported by the test
            self.error = exc

    def stop(self):
        self.stopping.set()
        self.join(30)


def lease_holder_pid(ctx, pid: int) -> int | None:
    """The pid in the project's retrain lease holder (``host:pid:random``), if held."""
    with ctx.store.session() as s:
        holder = s.get(Project, pid).retrain_lease_holder
    if not holder:
        return None
    return int(holder.split(":")[-2])


def query_status(ctx, qid: int) -> str:
    with ctx.store.session() as s:
        return s.get(Query, qid).status


def wait_new_version(admin: Http, pid: int, after: int, since: float, cluster: Cluster,
                     what: str) -> float:
    """Seconds from ``since`` (monotonic) until a model version above ``after`` exists."""
    try:
        wait_until(lambda: max(model_versions(admin, pid), default=0) > after,
                   RECOVERY_LIMIT + 30, 0.2, what)
    except TimeoutError:
        pytest.fail(f"no new model version within {RECOVERY_LIMIT + 30:.0f} s after {what}:\n"
                    f"{cluster.logs(60)}")
    return round(time.monotonic() - since, 2)


def kill_counterexample(cluster: Cluster, ctx, inspector, attempts: int = 20) -> dict:
    """SIGKILL a pool child while it computes a counter-example; returns what was killed."""
    hostnames = {f"{w}@": w for w in cluster.workers}
    for _ in range(attempts):
        active = inspector.active() or {}
        for node, tasks in active.items():
            for task in tasks:
                if task["name"] != "tasks.counterexample":
                    continue
                worker = next(w for prefix, w in hostnames.items() if node.startswith(prefix))
                child, qid = int(task["worker_pid"]), int(task["args"][0])
                if child not in cluster.pool(worker):
                    continue
                os.kill(child, signal.SIGKILL)
                killed_at = time.monotonic()
                if query_status(ctx, qid) == "computing":
                    return {"worker": worker, "pid": child, "query": qid, "at": killed_at}
                # It finished just before the kill: a kill all the same, but not mid-way.
                wait_until(lambda w=worker: cluster.pool(w), 60, 0.2, "a new pool child")
        time.sleep(0.05)
    pytest.fail(f"never caught a counter-example in progress ({attempts} tries):\n"
                f"{cluster.logs(40)}")


def wait_lease(ctx, pid: int, cluster: Cluster) -> tuple[int, str]:
    """The pool child holding the retrain lease, and its worker."""
    def holder():
        child = lease_holder_pid(ctx, pid)
        if child is None:
            return None
        for worker in cluster.workers:
            if child in cluster.pool(worker):
                return child, worker
        return None
    try:
        return wait_until(holder, 60, 0.02, "a worker claiming the retrain")
    except TimeoutError:
        pytest.fail(f"no worker claimed the retrain:\n{cluster.logs(40)}")


def test_sigkill_mid_job_recovers_and_loses_no_answer(tmp_path, record):
    data = synthetic(BOOTSTRAP + N_STREAM, d=D)
    truth_of = lambda example: int(data.truth[data.index(example["external_id"])])  # noqa: E731
    measured = {}
    with start_redis() as redis_url, database_url(tmp_path) as (db_url, db_kind), \
            Cluster(tmp_path / "cluster", redis_url, db_url) as cluster:
        measured["database"] = db_kind
        started = time.monotonic()
        cluster.start()
        measured["startup_seconds"] = round(time.monotonic() - started, 1)
        ctx = cluster.context()
        inspector = Celery("faults-inspect", broker=redis_url).control.inspect(timeout=0.5)
        admin = cluster.admin()
        pid = create_project(admin, name="kill", input_shape=[D], strategy="influence",
                             model={"kind": "lr", "max_epochs": 100,
                                    "warm_epochs": WARM_EPOCHS})
        ingest = Http(cluster.url, mint(admin, pid, "ingest", "ingest"))
        annotator = Annotator(Http(cluster.url, mint(admin, pid, "annotator", "ann")), pid,
                              truth_of)
        try:
            # The first model, then a stream of flipped labels: one query each.
            ingest.post(f"{API}/projects/{pid}/examples",
                        {"items": [data.item(i, False) for i in range(BOOTSTRAP)]},
                        expect=(202,))
            wait_new_version(admin, pid, 0, time.monotonic(), cluster, "the bootstrap")
            ingest.post(f"{API}/projects/{pid}/examples",
                        {"items": [data.item(i, True) for i in range(BOOTSTRAP, len(data.X))]},
                        expect=(202,))
            annotator.start()

            # (b) a pool child mid counter-example; then a retrain is asked for.
            killed = kill_counterexample(cluster, ctx, inspector)
            before = max(model_versions(admin, pid))
            admin.post(f"{API}/projects/{pid}/models/retrain", expect=(202,))
            measured["counterexample_kill"] = {
                "query": killed["query"],
                "recovery_seconds": wait_new_version(admin, pid, before, killed["at"], cluster,
                                                     "killing a counter-example")}
            assert query_status(ctx, killed["query"]) != "computing" or wait_until(
                lambda: query_status(ctx, killed["query"]) != "computing", 30, 0.2,
                "the killed counter-example redone")

            # (a) the pool child holding the retrain lease.
            before = max(model_versions(admin, pid))
            admin.post(f"{API}/projects/{pid}/models/retrain", expect=(202,))
            child, worker = wait_lease(ctx, pid, cluster)
            os.kill(child, signal.SIGKILL)
            killed_at = time.monotonic()
            assert not pid_alive(child) or wait_until(lambda: not pid_alive(child), 5, 0.01)
            assert max(model_versions(admin, pid)) == before, \
                "the retrain finished before the kill: make it longer"
            measured["retrain_child_kill"] = {
                "recovery_seconds": wait_new_version(admin, pid, before, killed_at, cluster,
                                                     "killing the retrain's pool child")}

            # (c) the main process of the worker whose child trains.
            before = max(model_versions(admin, pid))
            admin.post(f"{API}/projects/{pid}/models/retrain", expect=(202,))
            child, worker = wait_lease(ctx, pid, cluster)
            cluster.kill(worker)                     # main process only: the child lives on
            killed_at = time.monotonic()
            orphan_alive = pid_alive(child)
            time.sleep(1.0)                          # a supervisor restarts it
            cluster.start(worker, wait=False)
            measured["worker_main_kill"] = {
                "orphaned_child_alive_after_kill": orphan_alive,
                "recovery_seconds": wait_new_version(admin, pid, before, killed_at, cluster,
                                                     "killing a worker's main process")}
            try:
                wait_until(lambda: not pid_alive(child), 30, 0.2, "the orphaned child exits")
                measured["worker_main_kill"]["orphan_exited"] = True
            except TimeoutError:
                measured["worker_main_kill"]["orphan_exited"] = False

            # Everything settles: no query computing, nothing pending, no retrain wanted.
            def settled():
                current = stats(admin, pid)
                return (current["queries"].get("computing", 0) == 0
                        and current["examples"].get("pending", 0) == 0
                        and not current["retrain_wanted"]) and current
            try:
                final = wait_until(settled, 90, 0.5, "the cluster settling")
            except TimeoutError:
                pytest.fail(f"did not settle: {stats(admin, pid)}\n{cluster.logs(60)}")
        finally:
            annotator.stop()
        assert annotator.error is None, repr(annotator.error)
        assert all(cluster.all_alive().values()), cluster.all_alive()

        # Label history == the answers the API acknowledged: none lost, none doubled.
        sent = annotator.answers
        assert len(sent) >= 4, f"too few answers during the kills: {annotator.refused}"
        with ctx.store.session() as s:
            events = s.execute(select(LabelEvent.query_id, LabelEvent.why, LabelEvent.new_label)
                               .where(LabelEvent.query_id.is_not(None))).all()
            answered = s.scalar(select(func.count(Query.id)).where(
                Query.project_id == pid, Query.status == "answered"))
        expected = sorted([(qid, "answer_example", body["example_label"])
                           for qid, body in sent.items()]
                          + [(qid, "answer_counterexample", body["counterexample_label"])
                             for qid, body in sent.items() if "counterexample_label" in body])
        assert sorted(tuple(e) for e in events) == expected
        assert answered == len(sent)
        versions = model_versions(admin, pid)
        assert versions == list(range(1, len(versions) + 1)), versions
        measured.update(answers=len(sent), refused_answers=len(annotator.refused),
                        label_events=len(events), model_versions=len(versions),
                        final_queries=final["queries"], final_examples=final["examples"],
                        http_5xx=annotator.http.stats.server_errors
                        + admin.stats.server_errors + ingest.stats.server_errors)
        for http in (admin, ingest, annotator.http):
            assert not http.stats.server_errors, http.stats.server_errors
        ctx.store.engine.dispose()
    leftovers = processes_with_env("CINCER_DATA_DIR", str(tmp_path / "cluster" / "data"))
    record(measured)
    assert not leftovers, f"processes outlived the cluster: {leftovers}"
    for kind in ("counterexample_kill", "retrain_child_kill", "worker_main_kill"):
        assert measured[kind]["recovery_seconds"] < RECOVERY_LIMIT, measured
