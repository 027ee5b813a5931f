"""20 annotators (each its own token) and one ingest client for 20 s (60 s in make
test-long) against a real server: gunicorn (3 workers x 4 threads) + two Celery workers +
beat, on PostgreSQL when ``CINCER_TEST_POSTGRES_URL`` answers, else a SQLite file.

Checked: no 5xx; no double lease, with sound bounds only: an annotator surely holds a query
from the moment its lease response arrived until the moment it *sent* its release or answer,
and two annotators' sure holds of one query must not overlap; a query is never granted after
another annotator's answer to it was acknowledged (the server's ``now`` at the grant,
``lease_expires_at - lease``, is later than that acknowledgement); no answer is refused for
a lost lease (409); each query is answered by one annotator, the one the database names;
the label history holds exactly the acknowledged answers; and the project's counters equal
the events, exactly:

* ``generation`` is bumped by each answer (``queries.count_answer``), by an ingest that
  changes the training set (``examples._ingest``: a bootstrap example accepted, or a new
  label for a training example) and by a screening batch that accepts something
  (``queries.screen_pending``). Here the bootstrap is complete before the run, ingest only
  adds new examples (pending, then screened), and with threshold 0 and flipped labels on
  well separated data screening accepts none (checked): so
  ``generation_after = generation_before + answers``.
* ``answers_since_retrain`` counts answers and drops to 0 when it reaches
  ``every_n_answers`` (a retrain is then wanted): ``(before + answers) mod every``.

p50/p99 latencies of lease and answer, the number of leases, answers, releases and 409s are
printed. A 60 s variant is marked ``long``.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from cincer_service.service.store import Example, LabelEvent, Project, Query
from tests.support.services import wait_until

from .cluster import (
    API,
    BOOTSTRAP,
    Http,
    Stats,
    answer_body,
    create_project,
    mint,
    model_versions,
    percentile,
    stats,
    synthetic,
)

pytestmark = pytest.mark.integration

ANNOTATORS = 20
EVERY_N_ANSWERS = 10
LEASE_SECONDS = 300.0          # the service default (CINCER_LEASE_SECONDS is not set)
RELEASE_SHARE = 0.1            # an annotator skips (releases) one query in ten
PRELOAD = 300                  # queries waiting when the run starts
BATCH = 5


def wall() -> float:
    return time.time()


def parse_time(text: str) -> float:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


class Run:
    """Shared record of what every client did."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stats = Stats()
        # qid -> [(held from, held until at least, annotator, server now at the grant)]
        self.holds = defaultdict(list)
        self.answered_at = {}                # qid -> when its answer was acknowledged
        self.releases = 0
        self.answers = {}                    # qid -> (annotator, body)
        self.answer_conflicts = []
        self.errors = []
        self.ingested_batches = 0
        self.ingested = 0


def annotate(run: Run, http: Http, name: str, pid: int, truth_of, stop: threading.Event,
             rng: random.Random):
    try:
        while not stop.is_set():
            leased = http.post(f"{API}/projects/{pid}/queries/next", kind="lease")
            if leased.status_code == 204:
                stop.wait(0.1)
                continue
            if leased.status_code != 200:
                continue                      # recorded in stats (5xx / 409 are checked)
            received = wall()
            query = leased.json()
            qid = query["id"]
            granted_now = parse_time(query["lease_expires_at"]) - LEASE_SECONDS
            if rng.random() < RELEASE_SHARE:
                sent = wall()
                released = http.post(f"{API}/projects/{pid}/queries/{qid}/release",
                                     kind="release")
                with run.lock:
                    run.holds[qid].append((received, sent, name, granted_now))
                    run.releases += 1
                    if released.status_code != 200:
                        run.errors.append(f"{name}: release of {qid}: HTTP "
                                          f"{released.status_code} {released.text[:200]}")
                continue
            body = answer_body(query, truth_of)
            sent = wall()
            answered = http.post(f"{API}/projects/{pid}/queries/{qid}/answer", body,
                                 kind="answer")
            with run.lock:
                run.holds[qid].append((received, sent, name, granted_now))
                if answered.status_code == 200:
                    if qid in run.answers and run.answers[qid][0] != name:
                        run.errors.append(f"query {qid} answered by {run.answers[qid][0]} "
                                          f"and {name}")
                    run.answers[qid] = (name, body)
                    run.answered_at[qid] = wall()
                elif answered.status_code == 409:
                    run.answer_conflicts.append((qid, name, answered.text[:300]))
    except BaseException as exc:
        run.errors.append(f"{name}: {exc!r}")


def ingest(run: Run, http: Http, pid: int, data, start: int, stop: threading.Event):
    index = start
    try:
        while not stop.is_set() and index + BATCH <= len(data.X):
            items = [data.item(i, True) for i in range(index, index + BATCH)]
            index += BATCH
            response = http.post(f"{API}/projects/{pid}/examples", {"items": items},
                                 kind="ingest")
            if response.status_code == 202:
                outcomes = Counter(r["outcome"] for r in response.json()["items"])
                with run.lock:
                    run.ingested_batches += 1
                    run.ingested += outcomes["created"]
            stop.wait(0.5)
    except BaseException as exc:
        run.errors.append(f"ingest: {exc!r}")


def double_leases(run: Run) -> list[str]:
    """Proven overlaps: two annotators surely holding one query at the same time, or a
    query granted again after its answer was acknowledged."""
    problems = []
    for qid, holds in run.holds.items():
        holds = sorted(holds)
        for a, (start, end, holder, _) in enumerate(holds):
            for other_start, other_end, other, _ in holds[a + 1:]:
                if other != holder and other_start < end and start < other_end:
                    problems.append(f"query {qid}: {holder} held it {start:.3f}-{end:.3f}, "
                                    f"{other} held it {other_start:.3f}-{other_end:.3f}")
        if qid in run.answered_at:
            answerer = run.answers[qid][0]
            late = [(name, now) for _, _, name, now in holds
                    if name != answerer and now > run.answered_at[qid]]
            if late:
                problems.append(f"query {qid}: answered by {answerer} (acknowledged at "
                                f"{run.answered_at[qid]:.3f}), granted later to {late}")
    return problems


def counters(cluster, pid: int) -> dict:
    ctx = cluster.context()
    try:
        with ctx.store.session() as s:
            project = s.get(Project, pid)
            accepted = s.scalar(select(func.count(Example.id)).where(
                Example.project_id == pid, Example.status == "accepted"))
            examples = s.scalar(select(func.count(Example.id)).where(Example.project_id == pid))
            events = s.execute(select(LabelEvent.query_id, LabelEvent.why, LabelEvent.new_label)
                               .join(Query, Query.id == LabelEvent.query_id)
                               .where(Query.project_id == pid)).all()
            answered = dict(s.execute(select(Query.id, Query.answered_by).where(
                Query.project_id == pid, Query.status == "answered")).all())
            return {"generation": project.generation,
                    "answers_since_retrain": project.answers_since_retrain,
                    "accepted": accepted, "examples": examples,
                    "events": sorted(tuple(e) for e in events), "answered": answered}
    finally:
        ctx.store.engine.dispose()


def run_concurrency(shared_cluster, record, duration: float):
    cluster = shared_cluster
    data = synthetic(BOOTSTRAP + PRELOAD + int(duration * 2 * BATCH) + 50)
    truth_of = lambda e: int(data.truth[data.index(e["external_id"])])  # noqa: E731
    admin = cluster.admin()
    pid = create_project(admin, name=f"concurrency-{int(duration)}",
                         retrain={"mode": "warm", "every_n_answers": EVERY_N_ANSWERS})
    ingest_http = Http(cluster.url, mint(admin, pid, "ingest", "ingest"))
    ingest_http.post(f"{API}/projects/{pid}/examples",
                     {"items": [data.item(i, False) for i in range(BOOTSTRAP)]}, expect=(202,))
    wait_until(lambda: model_versions(admin, pid), 60, 0.2, "the first model")
    ingest_http.post(f"{API}/projects/{pid}/examples",
                     {"items": [data.item(i, True)
                                for i in range(BOOTSTRAP, BOOTSTRAP + PRELOAD)]}, expect=(202,))
    wait_until(lambda: stats(admin, pid)["queries"].get("open", 0) >= PRELOAD * 3 // 4, 90, 0.3,
               "queries opening")
    tokens = [mint(admin, pid, "annotator", f"annotator-{i:02d}") for i in range(ANNOTATORS)]
    before = counters(cluster, pid)

    run = Run()
    stop = threading.Event()
    threads = [threading.Thread(target=annotate, daemon=True, args=(
        run, Http(cluster.url, token, run.stats), f"annotator-{i:02d}", pid, truth_of, stop,
        random.Random(i))) for i, token in enumerate(tokens)]
    threads.append(threading.Thread(target=ingest, daemon=True, args=(
        run, Http(cluster.url, ingest_http.token, run.stats), pid, data,
        BOOTSTRAP + PRELOAD, stop)))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(duration)
    stop.set()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a client did not stop"

    # Let screening and counter-examples of the last batches finish (they bump nothing).
    try:
        wait_until(lambda: (lambda st: st["examples"].get("pending", 0) == 0
                            and st["queries"].get("computing", 0) == 0)(stats(admin, pid)),
                   60, 0.3, "screening to finish")
    except TimeoutError:
        pytest.fail(f"screening did not finish: {stats(admin, pid)}\n{cluster.logs(40)}")
    after = counters(cluster, pid)

    n_answers = len(run.answers)
    latencies = run.stats.latencies
    measured = {
        "database": cluster.database_kind, "seconds": round(elapsed, 1),
        "annotators": ANNOTATORS, "leases": len(latencies["lease"]),
        "leases_granted": sum(len(h) for h in run.holds.values()),
        "answers": n_answers, "releases": run.releases,
        "ingest_batches": run.ingested_batches, "ingested_examples": run.ingested,
        "statuses": dict(sorted(run.stats.statuses.items())),
        "http_409": run.stats.statuses.get(409, 0), "http_5xx": run.stats.count(lambda s: s >= 500),
        "answers_per_second": round(n_answers / elapsed, 1),
        **{f"{kind}_{name}_ms": round(1e3 * percentile(latencies[kind], q), 1)
           for kind in ("lease", "answer", "release", "ingest") if latencies[kind]
           for name, q in (("p50", 50), ("p99", 99))},
        "counters": {
            "generation": [before["generation"], after["generation"]],
            "expected_generation": before["generation"] + n_answers,
            "answers_since_retrain": [before["answers_since_retrain"],
                                      after["answers_since_retrain"]],
            "expected_answers_since_retrain":
                (before["answers_since_retrain"] + n_answers) % EVERY_N_ANSWERS,
            "accepted": [before["accepted"], after["accepted"]],
            "examples": [before["examples"], after["examples"]],
            "label_events_new": len(after["events"]) - len(before["events"])},
        "model_versions": len(model_versions(admin, pid)),
    }
    record(measured)

    assert not run.errors, run.errors
    assert not run.stats.server_errors, run.stats.server_errors[:10]
    assert not run.stats.connection_errors, run.stats.connection_errors[:10]
    assert n_answers > 0 and measured["leases_granted"] > ANNOTATORS
    assert not double_leases(run), double_leases(run)[:20]
    assert not run.answer_conflicts, run.answer_conflicts[:10]
    # Answers recorded == answers sent: the new label events are exactly the answers.
    new_events = sorted(set(after["events"]) - set(before["events"]))
    expected = sorted([(q, "answer_example", b["example_label"])
                       for q, (_, b) in run.answers.items()]
                      + [(q, "answer_counterexample", b["counterexample_label"])
                         for q, (_, b) in run.answers.items() if "counterexample_label" in b])
    assert len(after["events"]) - len(before["events"]) == len(expected)
    assert new_events == expected
    assert {q: n for q, n in after["answered"].items() if q in run.answers} == \
        {q: name for q, (name, _) in run.answers.items()}
    assert len(after["answered"]) - len(before["answered"]) == n_answers
    # Counters == events.
    assert after["examples"] == before["examples"] + run.ingested
    assert after["accepted"] == before["accepted"], \
        "screening accepted a flipped example: the data set is not separated enough"
    assert after["generation"] == before["generation"] + n_answers, measured["counters"]
    assert after["answers_since_retrain"] == \
        (before["answers_since_retrain"] + n_answers) % EVERY_N_ANSWERS, measured["counters"]


def test_concurrent_annotators_and_ingest(shared_cluster, record):
    run_concurrency(shared_cluster, record, 20.0)         # 60 s in make test-long


@pytest.mark.long
def test_concurrent_annotators_and_ingest_long(shared_cluster, record):
    run_concurrency(shared_cluster, record, 60.0)
