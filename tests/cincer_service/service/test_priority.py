"""priority: the queue in order of value (margin, counter-example score, class history)."""
import numpy as np
import pytest

from cincer_service.service import examples, priority, queries
from cincer_service.service.priority import History
from cincer_service.service.store import LabelEvent, Query, utcnow
from tests.support.service import BOOTSTRAP, annotator, items, make_context, new_project


def test_scores_are_deterministic_and_grow_with_the_margin():
    history = History({0: (3, 5), 1: (1, 6)}, {1: (2, 4)})
    scores = [0.1, 0.5, 3.0, 0.2, -0.4]
    a = priority.score(0.6, 0, 1, history, scores)
    assert a == priority.score(0.6, 0, 1, history, list(scores))
    values = [priority.score(m, 0, 1, history, scores)[0] for m in (0.2, 0.4, 0.6, 0.8, 0.95)]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert 0.0 <= min(values) and max(values) <= 1.0


def test_no_history_means_the_margin_alone():
    value, terms = priority.score(0.7, 1, 0, History())
    assert value == pytest.approx(0.7)
    assert terms["class_error_rate"] == terms["overall_error_rate"] == 0.5
    assert terms["p_counterexample"] == 0.0


def test_class_history_moves_the_order():
    # class 0's labels were changed by most answers, class 1's by few
    history = History({0: (8, 10), 1: (1, 10)})
    high_margin_class1, _ = priority.score(0.6, 1, 0, history)
    lower_margin_class0, _ = priority.score(0.5, 0, 1, history)
    assert lower_margin_class0 > high_margin_class1
    without = History()
    assert priority.score(0.5, 0, 1, without)[0] < priority.score(0.6, 1, 0, without)[0]
    # a class never answered for sits at the overall rate: the margin alone decides
    _, terms = priority.score(0.5, 2, 0, history)
    assert terms["class_error_rate"] == pytest.approx(terms["overall_error_rate"])


def test_counterexample_that_stands_out_adds_value():
    history = History()
    flat = [1.0, 0.9, 1.1, 1.0, 0.95, 1.05]
    outlier = [9.0, 0.9, 1.1, 1.0, 0.95, 1.05]
    base, _ = priority.score(0.5, 0, 1, history)
    v_flat, t_flat = priority.score(0.5, 0, 1, history, flat)
    v_out, t_out = priority.score(0.5, 0, 1, history, outlier)
    assert base <= v_flat < v_out
    assert t_out["counterexample_standout"] > t_flat["counterexample_standout"]
    assert priority.standout([3.0]) == 0.0 and priority.standout([2.0, 2.0]) == 0.0
    # scale and shift of the strategy's scores do not matter
    assert priority.standout(np.array(outlier) * 1e-4 - 7) == pytest.approx(
        priority.standout(outlier))


# -- the queue -----------------------------------------------------------------------------
@pytest.fixture
def queue(tmp_path):
    """A project (no model, no jobs) with four examples to hang queries on."""
    ctx = make_context(tmp_path, dispatcher=None)
    pid = new_project(ctx, bootstrap_size=1000)
    ids = [r["id"] for r in examples.ingest(ctx, pid, [
        {"x": [float(i)] * 30, "label": i % 2} for i in range(8)])]
    return ctx, pid, ids


def _add_query(ctx, pid, eid, value, status="open"):
    with ctx.store.session() as s:
        q = Query(project_id=pid, example_id=eid, model_version=1, strategy="top_fisher",
                  margin=0.5, prediction=0, probabilities=[0.5, 0.5], status=status,
                  origin="stream", priority=value, created_at=utcnow())
        s.add(q)
        s.flush()
        return q.id


def _lease_all(ctx, pid):
    order = []
    principal = annotator(ctx, pid)
    while (q := queries.lease_next_query(ctx, pid, principal)) is not None:
        order.append((q["id"], q["priority"]))
        with ctx.store.session() as s:            # done with it: out of the queue
            s.get(Query, q["id"]).status = "answered"
    return order


def test_lease_takes_the_highest_priority_first_ties_by_id(queue):
    ctx, pid, ids = queue
    values = [0.3, 0.9, None, 0.9, 0.5, 0.1]
    qids = [_add_query(ctx, pid, ids[i], v) for i, v in enumerate(values)]
    _add_query(ctx, pid, ids[6], 2.0, status="computing")     # not leasable yet
    leased = _lease_all(ctx, pid)
    assert [qid for qid, _ in leased] == [qids[1], qids[3], qids[4], qids[0], qids[5],
                                          qids[2]]
    assert leased[0][1] == 0.9


def test_fifo_projects_lease_the_oldest_first(queue):
    ctx, pid, ids = queue
    from cincer_service.service.store import Project
    with ctx.store.session() as s:
        s.get(Project, pid).queue_order = "fifo"
    qids = [_add_query(ctx, pid, ids[i], v) for i, v in enumerate([0.1, 0.9, 0.5])]
    assert [qid for qid, _ in _lease_all(ctx, pid)] == qids


def test_history_comes_from_answers(queue):
    ctx, pid, ids = queue
    now = utcnow()
    with ctx.store.session() as s:
        for eid, old, new, why in [(ids[0], 0, 1, "answer_example"),
                                   (ids[2], 0, 0, "answer_example"),
                                   (ids[4], 0, 1, "answer_example"),
                                   (ids[1], 1, 1, "answer_example"),
                                   (ids[3], 1, 0, "answer_counterexample"),
                                   (ids[5], 1, 0, "correction")]:
            s.add(LabelEvent(example_id=eid, old_label=old, new_label=new, why=why,
                             actor="t", at=now))
    with ctx.store.session() as s:
        history = priority.load_history(s, pid)
    assert history.examples == {0: (2, 3), 1: (0, 1)}
    assert history.counterexamples == {1: (1, 1)}
    # class 0 (errors in 2 of 3 answers) now outranks class 1 at a slightly higher margin
    assert priority.score(0.5, 0, 1, history)[0] > priority.score(0.55, 1, 0, history)[0]


def test_service_queue_is_in_priority_order(ctx, stream):
    """Real screening and counter-examples: every open query has a priority, leases come in
    non-increasing priority, and the stored score is what ``score`` gives."""
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 1000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 140))
    open_queries = queries.list_queries(ctx, pid, "open", limit=500)["items"]
    assert open_queries and all(q["priority"] is not None for q in open_queries)
    for q in open_queries:
        terms = q["priority_terms"]
        assert terms["margin"] == q["margin"]
        if q["counterexample"] is not None:
            assert "counterexample_standout" in terms
    leased = _lease_all(ctx, pid)
    values = [v for _, v in leased]
    assert len(values) == len(open_queries) and values == sorted(values, reverse=True)
