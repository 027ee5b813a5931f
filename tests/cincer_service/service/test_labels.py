"""labels: the one label-change function, from every door, also at the same instant."""
import threading
from functools import partial

import pytest
from sqlalchemy import select

from cincer_service.service import BadInput, examples, labels, overview, queries, webhooks
from cincer_service.service.store import Example, LabelEvent, Query, WebhookDelivery
from tests.support.service import (
    BOOTSTRAP,
    annotator,
    items,
    make_context,
    new_project,
    true_answer,
)

CLASSES = ["malignant", "benign"]


def label_changed(ctx) -> list[dict]:
    with ctx.store.session() as s:
        return [d.payload["data"] for d in s.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event == "label.changed")
            .order_by(WebhookDelivery.id))]


def history_chains(ctx, pid) -> tuple[int, int]:
    """(history chain breaks, examples whose label is not their newest event's)."""
    breaks = mismatched = 0
    with ctx.store.session() as s:
        for e in s.scalars(select(Example).where(Example.project_id == pid)):
            events = s.scalars(select(LabelEvent).where(LabelEvent.example_id == e.id)
                               .order_by(LabelEvent.id)).all()
            breaks += sum(b.old_label != a.new_label for a, b in zip(events, events[1:]))
            mismatched += events[-1].new_label != e.label
    return breaks, mismatched


@pytest.fixture
def project(tmp_path, stream):
    ctx = make_context(tmp_path)
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 60))
    webhooks.create_endpoint(ctx, pid, "http://127.0.0.1:9/hook", ["label.changed"])
    return ctx, pid


def test_overview_relabel_emits_label_changed(project):
    ctx, pid = project
    [e] = examples.list_examples(ctx, pid, status="accepted", limit=1)["items"]
    new = 1 - e["label"]
    done = overview.relabel_examples(ctx, pid, [e["id"]], new, "owner", "looked again")
    assert done["example_ids"] == [e["id"]]
    [event] = label_changed(ctx)
    assert event["example_id"] == e["id"] and event["why"] == "overview_relabel"
    assert (event["old_label"], event["new_label"]) == (e["label"], new)
    assert (event["old_label_name"], event["new_label_name"]) == (CLASSES[e["label"]],
                                                                  CLASSES[new])
    assert event["actor"] == "owner" and event["cause"] == "overview_relabel"


def test_overview_actions_take_class_names(project):
    ctx, pid = project
    [e] = examples.list_examples(ctx, pid, status="accepted", limit=1)["items"]
    other = CLASSES[1 - e["label"]]
    overview.apply_action(ctx, pid, "relabel", [e["id"]], "owner", label=other)
    assert examples.get_example(ctx, pid, e["id"])["label_name"] == other
    with pytest.raises(BadInput):
        overview.apply_action(ctx, pid, "relabel", [e["id"]], "owner", label="no-such-class")


def test_every_door_keeps_the_history_chained(project, stream):
    """Answers, corrections, overview actions and ingest updates on the same examples:
    every event's old label is the previous event's new label."""
    ctx, pid = project
    data, noisy, corrupted = stream
    ann = annotator(ctx, pid)
    q = queries.lease_next_query(ctx, pid, ann)
    assert q is not None
    truth = true_answer(q, data.y_train)
    queries.answer_query(ctx, pid, q["id"], *truth, ann)
    both = [q["example"]["id"]] + ([q["counterexample"]["id"]] if q["counterexample"] else [])
    overview.relabel_examples(ctx, pid, both, 1 - truth[0], "owner")
    queries.correct_answer(ctx, pid, q["id"], *truth, "second look", ann)
    overview.confirm_examples(ctx, pid, both, "owner")
    assert history_chains(ctx, pid) == (0, 0)


def test_open_queries_are_told_when_a_side_changes(project):
    ctx, pid = project
    with ctx.store.session() as s:
        q = s.scalar(select(Query).where(Query.project_id == pid, Query.status == "open")
                     .limit(1))
        assert q is not None and q.labels_changed_at is None
        example = s.get(Example, q.example_id)
    overview.relabel_examples(ctx, pid, [example.id], 1 - example.label, "owner")
    with ctx.store.session() as s:
        assert s.get(Query, q.id).labels_changed_at is not None


def test_an_unknown_cause_is_refused():
    with pytest.raises(ValueError):
        labels.LabelChange(1, 0, "because")


def at_once(*works) -> list[str]:
    """Run the callables in threads released together; the errors they raised."""
    start, failures = threading.Barrier(len(works)), []

    def run(work):
        start.wait()
        try:
            work()
        except Exception as exc:            # noqa: BLE001  (collected, asserted by callers)
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(w,)) for w in works]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return failures

ROUNDS = 40




def test_an_answer_and_a_batch_relabel_at_once_keep_every_history(tmp_path, stream,
                                                                  database_url):
    """40 rounds: an annotator answers a pair while the owner batch-relabels the same two
    examples at the same instant. No error (deadlocks are retried inside the service),
    every history chains, every current label is its newest event's."""
    data, _, _ = stream
    ctx = make_context(tmp_path, database_url=database_url)
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 200))
    ann = annotator(ctx, pid)
    failures, rounds = [], 0
    for _ in range(ROUNDS):
        q = queries.lease_next_query(ctx, pid, ann)
        if q is None:
            break
        truth = true_answer(q, data.y_train)
        sides = [q["example"]["id"]] + ([q["counterexample"]["id"]] if q["counterexample"]
                                        else [])
        failures += at_once(
            partial(queries.answer_query, ctx, pid, q["id"], *truth, ann),
            partial(overview.relabel_examples, ctx, pid, sides, 1 - truth[0], "owner"))
        rounds += 1
    assert rounds >= 10, "too few open queries for the test"
    # The one refusal allowed: the relabel came first, so the answer is a 409 naming the
    # changed side (the pair is rebuilt, nothing half-applied); never a deadlock or 500.
    refused = [f for f in failures if f.startswith("Conflict: a side of this pair")]
    assert [f for f in failures if f not in refused] == []
    assert history_chains(ctx, pid) == (0, 0)
    ctx.store.engine.dispose()
