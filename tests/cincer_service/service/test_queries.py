"""queries: screening, counter-examples, leases and answers."""
import threading
import time

import pytest

from cincer_service.service import (
    BadInput,
    Conflict,
    Forbidden,
    NotFound,
    NullDispatcher,
    examples,
    queries,
    reports,
    runner,
)
from cincer_service.service.store import Project
from tests.support.service import (
    BOOTSTRAP,
    annotator,
    answer_all,
    items,
    make_context,
    new_project,
    true_answer,
)

N_STREAM = 140


def test_stream_is_screened_and_answers_clean_labels(ctx, stream):
    data, noisy, corrupted = stream
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + N_STREAM))
    stats = reports.stats(ctx, pid)
    assert stats["model_version"] == 1 and stats["examples"]["pending"] == 0
    assert stats["state"] == "ready"
    n_queries = stats["queries"]["open"]
    origins = [q["origin"] for q in queries.list_queries(ctx, pid, "open", limit=500)["items"]]
    assert len(origins) == n_queries
    assert origins.count("stream") == stats["examples"]["suspicious"] > 0
    assert origins.count("bootstrap") > 0              # the first model's bootstrap audit

    answered = answer_all(ctx, pid, data.y_train, annotator(ctx, pid))
    assert all(q["counterexample"] is not None for q in answered)
    # Pertinence and freshness: every leased counter-example carries the predicted label,
    # and no pair shows an example an earlier answer labelled (those pairs were rebuilt or
    # closed as answered elsewhere / resolved by the model before anyone saw them).
    touched = set()
    for q in answered:
        ce = q["counterexample"]
        assert ce["label"] == q["example"]["prediction"]
        assert not {q["example"]["id"], ce["id"]} & touched
        touched |= {q["example"]["id"], ce["id"]}
    stats = reports.stats(ctx, pid)
    assert stats["queries"]["answered"] == len(answered) > n_queries // 2
    assert stats["queries"]["open"] == stats["queries"]["computing"] == 0
    assert stats["queries"]["answered"] + stats["queries"]["closed"] >= n_queries
    assert stats["model_version"] >= 2                  # answers triggered retrains

    # Histories are exact: ingest first, then one event per answer touching the example.
    for q in answered[:10]:
        history = examples.get_example(ctx, pid, q["example"]["id"])["history"]
        assert history[0]["why"] == "ingest" and history[0]["old_label"] is None
        assert history[0]["new_label"] == noisy[int(q["example"]["external_id"])]
        answer = [h for h in history if h["query_id"] == q["id"]]
        assert len(answer) == 1 and answer[0]["why"] == "answer_example"
        assert answer[0]["new_label"] == data.y_train[int(q["example"]["external_id"])]
        final = examples.get_example(ctx, pid, q["example"]["id"])
        assert final["label"] == history[-1]["new_label"] and final["confirmed"]

    # Counter-examples computed after the answers never show a confirmed example again.
    confirmed = {i for q in answered for i in (q["example"]["id"], q["counterexample"]["id"])}
    examples.ingest(ctx, pid, items(stream, BOOTSTRAP + N_STREAM, BOOTSTRAP + N_STREAM + 120))
    later = answer_all(ctx, pid, data.y_train, annotator(ctx, pid, "later"))
    assert later and all(q["counterexample"]["id"] not in confirmed for q in later)


def test_leases_answers_and_conflicts(tmp_path, stream):
    data = stream[0]
    ctx = make_context(tmp_path, lease_seconds=0.5)
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + N_STREAM))
    alice, bob = annotator(ctx, pid, "alice"), annotator(ctx, pid, "bob")

    # Two annotators racing for queries never hold the same one.
    leased = {"alice": [], "bob": []}

    def grab(who, principal):
        for _ in range(3):
            q = queries.lease_next_query(ctx, pid, principal)
            if q is not None:
                leased[who].append(q["id"])
    threads = [threading.Thread(target=grab, args=(w, p)) for w, p in (("alice", alice),
                                                                        ("bob", bob))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert leased["alice"] and leased["bob"]
    assert not set(leased["alice"]) & set(leased["bob"])

    qid = leased["alice"][0]
    q = queries.get_query(ctx, pid, qid)
    truth = int(data.y_train[int(q["example"]["external_id"])])
    ce_truth = int(data.y_train[int(q["counterexample"]["external_id"])])
    with pytest.raises(Conflict):                      # bob does not hold alice's lease
        queries.answer_query(ctx, pid, qid, truth, ce_truth, bob)
    with pytest.raises(BadInput):
        queries.answer_query(ctx, pid, qid, 5, ce_truth, alice)
    first = queries.answer_query(ctx, pid, qid, truth, ce_truth, alice)
    assert first["status"] == "answered"
    for again in (truth, 1 - truth):                  # a second answer: never applied
        with pytest.raises(Conflict) as refused:
            queries.answer_query(ctx, pid, qid, again, ce_truth, alice)
        assert refused.value.details["already_answered"] is True
    history = examples.get_example(ctx, pid, q["example"]["id"])["history"]
    assert sum(h["query_id"] == qid for h in history) == 1

    # An expired lease returns the query to the pool; the old holder's answer is refused.
    stale = leased["bob"][0]
    time.sleep(0.6)
    again = queries.lease_next_query(ctx, pid, alice)
    assert again is not None
    if again["id"] == stale:
        with pytest.raises(Conflict):
            queries.answer_query(ctx, pid, stale, 0, None, bob, counterexample_not_sure=True)
    with pytest.raises(NotFound):
        queries.answer_query(ctx, pid, 10_000, 0, None, alice)
    with pytest.raises(BadInput) as missing:                 # the counter-example is unlabelled
        queries.answer_query(ctx, pid, again["id"], 0, None, alice)
    assert "counterexample_label" in missing.value.details


def test_concurrent_answers_count_every_one(tmp_path, stream):
    """Counters are updated in SQL: threads answering at once lose no increment."""
    data = stream[0]
    ctx = make_context(tmp_path, dispatcher=None)
    pid = new_project(ctx, retrain={"mode": "scratch", "every_n_answers": 1000})
    ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + N_STREAM))
    ctx.set_dispatcher(NullDispatcher())
    with ctx.store.session() as s:
        before = s.get(Project, pid).generation
    principals = [annotator(ctx, pid, f"a{i}") for i in range(4)]
    leased = [queries.lease_next_query(ctx, pid, p) for p in principals]
    assert all(q is not None for q in leased)
    barrier = threading.Barrier(len(principals))

    def answer(principal, q):
        barrier.wait()
        queries.answer_query(ctx, pid, q["id"], *true_answer(q, data.y_train), principal)
    threads = [threading.Thread(target=answer, args=pq) for pq in zip(principals, leased)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with ctx.store.session() as s:
        project = s.get(Project, pid)
        assert project.generation == before + len(principals)
        assert project.answers_since_retrain == len(principals)


@pytest.fixture
def open_queries(tmp_path, stream):
    """A context whose project has open queries (jobs inline, no retrains)."""
    ctx = make_context(tmp_path)
    pid = new_project(ctx, retrain={"mode": "scratch", "every_n_answers": 1000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + N_STREAM))
    return ctx, pid


def test_release_gives_the_query_back(open_queries):
    ctx, pid = open_queries
    alice, bob = annotator(ctx, pid, "alice"), annotator(ctx, pid, "bob")
    q = queries.lease_next_query(ctx, pid, alice)
    with pytest.raises(Conflict):                           # bob does not hold it
        queries.release_query(ctx, pid, q["id"], bob)
    released = queries.release_query(ctx, pid, q["id"], alice)
    assert released["status"] == "open" and released["lease_expires_at"] is None
    assert queries.release_query(ctx, pid, q["id"], alice)["status"] == "open"   # replay
    assert queries.lease_next_query(ctx, pid, alice)["id"] != q["id"]  # others first
    assert queries.lease_next_query(ctx, pid, bob)["id"] == q["id"]   # at once, not 300 s


def test_correction_goes_into_the_history_with_its_reason(open_queries, stream):
    ctx, pid = open_queries
    truth = stream[0].y_train
    alice, bob = annotator(ctx, pid, "alice"), annotator(ctx, pid, "bob")
    q = queries.lease_next_query(ctx, pid, alice)
    right, ce_right = true_answer(q, truth)
    with pytest.raises(Conflict):                           # not answered yet
        queries.correct_answer(ctx, pid, q["id"], right, ce_right, "oops", alice)
    queries.answer_query(ctx, pid, q["id"], 1 - right, ce_right, alice)   # a slip
    with pytest.raises(Forbidden):
        queries.correct_answer(ctx, pid, q["id"], right, ce_right, "not mine", bob)
    fixed = queries.correct_answer(ctx, pid, q["id"], right, ce_right, "pressed the wrong key",
                                   alice)
    assert fixed["answer"]["example_label"] == right
    history = examples.get_example(ctx, pid, q["example"]["id"])["history"]
    assert [h["why"] for h in history][-2:] == ["answer_example", "correction"]
    assert history[-1]["reason"] == "pressed the wrong key"
    assert history[-1]["old_label"] == 1 - right and history[-1]["new_label"] == right


def test_identical_concurrent_answers_apply_once(open_queries, stream):
    """The same answer sent twice at once (no Idempotency-Key): one is applied, the other
    is a 409 that says it was already answered."""
    ctx, pid = open_queries
    alice = annotator(ctx, pid, "alice")
    q = queries.lease_next_query(ctx, pid, alice)
    answer = true_answer(q, stream[0].y_train)
    barrier, results, errors = threading.Barrier(2), [], []

    def send():
        barrier.wait()
        try:
            results.append(queries.answer_query(ctx, pid, q["id"], *answer, alice))
        except Exception as exc:                            # collected, asserted below
            errors.append(exc)
    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1 and len(errors) == 1
    assert isinstance(errors[0], Conflict) and errors[0].details["already_answered"] is True
    history = examples.get_example(ctx, pid, q["example"]["id"])["history"]
    assert sum(h["query_id"] == q["id"] for h in history) == 1


def test_answers_by_class_name_and_not_sure(open_queries, stream):
    ctx, pid = open_queries
    alice = annotator(ctx, pid, "alice")
    q = queries.lease_next_query(ctx, pid, alice)
    right, _ = true_answer(q, stream[0].y_train)
    name = ["malignant", "benign"][right]
    done = queries.answer_query(ctx, pid, q["id"], name, None, alice,
                                counterexample_not_sure=True)
    assert done["answer"]["example_label"] == right
    assert done["answer"]["example_label_name"] == name
    assert done["answer"]["counterexample_not_sure"]
    assert done["example"]["label_name"] == name
    listed = queries.list_queries(ctx, pid, "answered")
    assert [x["id"] for x in listed["items"]] == [q["id"]] and listed["total"] == 1


def test_a_query_explains_its_counterexample_and_alternatives(open_queries):
    ctx, pid = open_queries
    q = queries.lease_next_query(ctx, pid, annotator(ctx, pid, "alice"))
    assert q["counterexample"] is not None and q["counterexample_score"] is not None
    alternatives = q["alternatives"]
    assert 1 <= len(alternatives) <= 3
    scores = [q["counterexample_score"]] + [a["score"] for a in alternatives]
    assert scores == sorted(scores, reverse=True)           # the ranking, best first
    ids = [q["counterexample"]["id"]] + [a["id"] for a in alternatives]
    assert len(set(ids)) == len(ids) and q["example"]["id"] not in ids
    for a in alternatives:
        example = examples.get_example(ctx, pid, a["id"])
        assert a["label"] == example["label"] and a["label_name"] == example["label_name"]


def test_a_lease_never_waits_behind_another_annotators_claim(tmp_path, stream):
    """PostgreSQL: while one transaction holds the best open query's row (an annotator's
    lease in flight), another annotator gets the next query at once (SKIP LOCKED) instead
    of queueing behind that lock and then losing the race for it."""
    from sqlalchemy import create_engine, func, select, text

    from cincer_service.service.store import Query
    from tests.support.services import postgres_database

    with postgres_database() as url:
        if url is None:
            pytest.skip("needs PostgreSQL (CINCER_TEST_POSTGRES_URL)")
        ctx = make_context(tmp_path, database_url=url)
        pid = new_project(ctx, retrain={"mode": "scratch", "every_n_answers": 1000})
        examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + N_STREAM))
        bob = annotator(ctx, pid, "bob")
        with ctx.store.session() as s:
            best = s.scalar(select(Query.id).where(Query.project_id == pid,
                                                   Query.status == "open")
                            .order_by(func.coalesce(Query.priority, 0.0).desc(), Query.id)
                            .limit(1))
        engine = create_engine(url)
        claim = engine.connect()
        transaction = claim.begin()
        claim.execute(text("SELECT id FROM queries WHERE id = :id FOR UPDATE"), {"id": best})
        got = {}
        worker = threading.Thread(target=lambda: got.update(
            q=queries.lease_next_query(ctx, pid, bob)))
        worker.start()
        worker.join(timeout=10)
        waited = worker.is_alive()
        transaction.rollback()
        claim.close()
        worker.join()
        engine.dispose()
        assert not waited, "the lease waited for another transaction's row lock"
        assert got["q"] is not None and got["q"]["id"] != best
