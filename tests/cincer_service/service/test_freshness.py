"""freshness: leased pairs are true to the current model and labels; stale pairs are rebuilt
or close themselves; no example in two open pairs; the 409 for a side changed while leased;
the explanation derived from the query."""
import numpy as np
import pytest
from sqlalchemy import select, update

from cincer_service.service import (
    Conflict,
    NullDispatcher,
    examples,
    freshness,
    overview,
    queries,
    training,
)
from cincer_service.service.context import latest_version
from cincer_service.service.store import Example, Query
from tests.support.service import (
    BOOTSTRAP,
    annotator,
    items,
    make_context,
    new_project,
    true_answer,
)


@pytest.fixture
def project(tmp_path, stream):
    """A trained project with open stream pairs; answers never trigger a retrain."""
    ctx = make_context(tmp_path)
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 200))
    return ctx, pid


def pairs(ctx, pid, statuses=freshness.PAIRED) -> list[Query]:
    with ctx.store.session() as s:
        return s.scalars(select(Query).where(Query.project_id == pid,
                                             Query.status.in_(statuses))
                         .order_by(Query.id)).all()


def label_of(ctx, eid) -> int:
    with ctx.store.session() as s:
        return s.get(Example, eid).label


def assert_fresh(ctx, pid):
    """Every open pair: newest version, nothing changed since, the counter-example
    carries the predicted class, no example in two pairs."""
    open_pairs = pairs(ctx, pid)
    assert open_pairs
    newest = max(training.list_models(ctx, pid), key=lambda m: m["version"])["version"]
    shown = []
    for q in open_pairs:
        assert q.model_version == newest and q.labels_changed_at is None, q.id
        if q.counterexample_id is not None:
            assert label_of(ctx, q.counterexample_id) == q.prediction, q.id
            shown.append(q.counterexample_id)
        shown.append(q.example_id)
    assert len(shown) == len(set(shown)), "an example shown by two open pairs"


def test_no_example_in_two_open_pairs_and_no_repeated_counterexample(project):
    ctx, pid = project
    assert_fresh(ctx, pid)
    assert len(pairs(ctx, pid)) > 10


def test_busy_examples_leave_out_computing_stream_pairs(project):
    """Both sides of open pairs and the example of a computing audit pair are busy; the
    example of a computing stream pair (suspicious: never a candidate) is not read."""
    ctx, pid = project
    open_pairs = pairs(ctx, pid, ("open",))
    stream = next(q for q in open_pairs if q.origin == "stream")
    audit = next(q for q in open_pairs if q.origin != "stream")
    with ctx.store.session() as s:           # back to waiting for their counter-examples
        s.execute(update(Query).where(Query.id.in_([stream.id, audit.id]))
                  .values(status="computing", counterexample_id=None))
    with ctx.store.session() as s:
        busy = freshness.busy_examples(s, pid)
        assert s.get(Example, stream.example_id).status == "suspicious"
    assert stream.example_id not in busy and audit.example_id in busy
    shown = {i for q in open_pairs if q.id not in (stream.id, audit.id)
             for i in (q.example_id, q.counterexample_id) if i is not None}
    assert shown | {audit.example_id} == busy


def test_busy_examples_within_the_candidates_range_are_the_full_set_cut_to_it(project):
    """The range a counter-example job asks for (its version's training ids) gives what the
    full read gives, cut to the range; the stream examples of open pairs lie outside it."""
    ctx, pid = project
    with ctx.store.session() as s:
        version = latest_version(s, pid)
        train_ids = np.frombuffer(version.train_ids, np.int64)
        lo, hi = int(train_ids[0]), int(train_ids[-1])
        full = freshness.busy_examples(s, pid)
        for within in ((lo, hi), (lo, (lo + hi) // 2), (hi + 1, 10**9)):
            assert freshness.busy_examples(s, pid, within=within) == {
                i for i in full if within[0] <= i <= within[1]}
    shown_stream = {q.example_id for q in pairs(ctx, pid, ("open",)) if q.origin == "stream"}
    assert shown_stream and not {i for i in shown_stream if lo <= i <= hi}


def test_a_new_model_refreshes_every_open_pair(project):
    ctx, pid = project
    before = {q.id: q.model_version for q in pairs(ctx, pid)}
    training.request_retrain(ctx, pid)           # inline: retrain, screen, refresh
    after = {q.id: q for q in pairs(ctx, pid, ("open", "closed", "leased", "computing"))}
    assert set(before) <= set(after)
    assert all(after[i].status == "closed" or after[i].model_version > before[i]
               for i in before)
    assert any(after[i].refreshed_at is not None for i in before)
    assert_fresh(ctx, pid)


def test_a_pair_the_model_no_longer_doubts_closes_as_resolved_by_model(project,
                                                                       monkeypatch):
    ctx, pid = project
    stream_pairs = [q.id for q in pairs(ctx, pid) if q.origin == "stream"]
    assert stream_pairs

    class AgreesWithEveryLabel:
        """A model whose prediction is the given label of each example (margin 0)."""

        def __init__(self, labels):
            self.labels = labels

        def fast_forward(self, X):
            """``(features, probabilities)`` as ``models.Classifier.fast_forward``."""
            out = np.zeros((len(X), 2))
            for row, x in enumerate(X):
                out[row, self.labels[np.asarray(x, np.float32).tobytes()]] = 1.0
            return np.asarray(X), out

    with ctx.store.session() as s:
        labels = {e.x: e.label for e in s.scalars(select(Example).where(
            Example.project_id == pid))}
    training.request_retrain(ctx, pid)
    monkeypatch.setattr(ctx.models, "classifier",
                        lambda project, version: AgreesWithEveryLabel(labels))
    with ctx.store.session() as s:                 # make them stale again, then refresh
        s.execute(update(Query).where(Query.id.in_(stream_pairs))
                  .values(model_version=0))
    from cincer_service.service import screening
    screening.refresh_queries(ctx, pid)
    closed = {q.id: q.closed_reason for q in pairs(ctx, pid, ("closed",))}
    assert set(stream_pairs) <= set(closed)
    assert {closed[i] for i in stream_pairs} == {"resolved_by_model"}
    listed = queries.list_queries(ctx, pid, status="closed", limit=500)["items"]
    assert {q["closed_reason"] for q in listed} >= {"resolved_by_model"}
    with ctx.store.session() as s:                 # the model no longer doubts them: training
        statuses = {s.get(Query, i).example_id: None for i in stream_pairs}
        statuses = {e.status for e in s.scalars(select(Example).where(
            Example.id.in_(list(statuses))))}
    assert statuses == {"accepted"}


def test_a_pair_whose_example_a_person_labelled_closes_as_answered_elsewhere(project):
    ctx, pid = project
    q = pairs(ctx, pid, ("open",))[0]
    overview.confirm_examples(ctx, pid, [q.example_id], "owner")   # inline refresh follows
    with ctx.store.session() as s:
        again = s.get(Query, q.id)
    assert again.status == "closed" and again.closed_reason == "answered_elsewhere"
    ann = annotator(ctx, pid)
    leased = [queries.lease_next_query(ctx, pid, ann) for _ in range(3)]
    assert q.id not in {x["id"] for x in leased if x}


def test_a_relabelled_counterexample_is_replaced_and_never_proposed_again(project):
    ctx, pid = project
    q = next(q for q in pairs(ctx, pid, ("open",)) if q.counterexample_id is not None)
    ce = q.counterexample_id
    overview.relabel_examples(ctx, pid, [ce], 1 - label_of(ctx, ce), "owner")
    with ctx.store.session() as s:
        again = s.get(Query, q.id)
    assert again.status in ("open", "closed") and again.counterexample_id != ce
    assert ce not in {x.counterexample_id for x in pairs(ctx, pid)}
    assert_fresh(ctx, pid)


def test_the_lease_never_hands_out_a_stale_pair(tmp_path, stream):
    ctx = make_context(tmp_path)
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 200))
    ctx.set_dispatcher(NullDispatcher())           # no refresh runs: the pairs stay stale
    stale = [q.id for q in pairs(ctx, pid, ("open",))][:5]
    with ctx.store.session() as s:
        s.execute(update(Query).where(Query.id.in_(stale)).values(
            labels_changed_at=Query.created_at))
    ann = annotator(ctx, pid)
    handed = []
    while (q := queries.lease_next_query(ctx, pid, ann)) is not None:
        handed.append(q["id"])
        queries.release_query(ctx, pid, q["id"], ann)
        if len(handed) > 400:
            break
        with ctx.store.session() as s:             # leave it aside for this test
            s.execute(update(Query).where(Query.id == q["id"]).values(status="answered"))
    assert handed and not set(stale) & set(handed)


def test_a_side_labelled_while_leased_is_a_409_naming_it(project, stream):
    ctx, pid = project
    data = stream[0]
    ann = annotator(ctx, pid)
    q = queries.lease_next_query(ctx, pid, ann)
    while q["counterexample"] is None:
        queries.answer_query(ctx, pid, q["id"], *true_answer(q, data.y_train), ann)
        q = queries.lease_next_query(ctx, pid, ann)
    ce = q["counterexample"]["id"]
    example_label = label_of(ctx, q["example"]["id"])
    overview.relabel_examples(ctx, pid, [ce], 1 - q["counterexample"]["label"], "owner")
    with ctx.store.session() as s:                 # still leased: the pair is not touched
        held = s.get(Query, q["id"])
        assert held.status == "leased" and held.counterexample_id == ce
    truth = true_answer(q, data.y_train)
    with pytest.raises(Conflict) as refused:
        queries.answer_query(ctx, pid, q["id"], *truth, ann)
    [changed] = refused.value.details["changed"]
    assert changed["side"] == "counterexample" and changed["example_id"] == ce
    assert changed["label"] == 1 - q["counterexample"]["label"]
    assert changed["label_name"] in ("malignant", "benign") and changed["by"] == "owner"
    assert label_of(ctx, q["example"]["id"]) == example_label     # nothing half-applied
    with ctx.store.session() as s:
        again = s.get(Query, q["id"])
    assert again.status in ("open", "closed") and again.lease_holder is None
    if again.status == "open":
        assert again.labels_changed_at is None and again.counterexample_id != ce


# -- the explanation -----------------------------------------------------------------------
def explanation(ctx, pid, qid):
    return queries.get_query(ctx, pid, qid)["explanation"]


def test_a_stream_pair_explains_its_margin_against_its_tau(project):
    ctx, pid = project
    q = next(q for q in pairs(ctx, pid, ("open",)) if q.origin == "stream")
    text = explanation(ctx, pid, q.id)
    assert text["origin"] == "stream" and text["threshold"] == pytest.approx(q.threshold)
    assert text["above_threshold"] is True
    assert "screened when it arrived" in text["sentences"][0]
    assert f"{q.margin:.2f}" in text["sentences"][1] and "at least" in text["sentences"][1]


def test_an_audit_pair_does_not_claim_a_threshold(project):
    ctx, pid = project
    q = next(q for q in pairs(ctx, pid, ("open",)) if q.origin == "bootstrap")
    with ctx.store.session() as s:
        s.execute(update(Query).where(Query.id == q.id).values(margin=0.06))
    text = explanation(ctx, pid, q.id)
    assert text["threshold"] is None and text["above_threshold"] is None
    assert "audit" in text["sentences"][0] and "0.06" in text["sentences"][1]
    assert not any("at least" in sentence for sentence in text["sentences"])


def test_the_counterexample_relation_follows_its_current_label(project):
    ctx, pid = project
    q = next(q for q in pairs(ctx, pid, ("open",)) if q.counterexample_id is not None)
    assert explanation(ctx, pid, q.id)["counterexample_relation"] == "supports_prediction"
    with ctx.store.session() as s:                 # as if relabelled behind the pair's back
        s.execute(update(Example).where(Example.id == q.counterexample_id)
                  .values(label=1 - q.prediction))
    text = explanation(ctx, pid, q.id)
    assert text["counterexample_relation"] == "contradicts_prediction"
    assert "no longer supports" in text["sentences"][-1]
