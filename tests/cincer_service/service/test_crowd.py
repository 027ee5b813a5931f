"""crowd: several answers per query, consensus, gold checks, annotators' identities."""
import threading

import pytest
from sqlalchemy import select

from cincer_service.service import BadInput, Conflict, Forbidden, annotators, examples, projects, queries
from cincer_service.service.store import Answer, Example, LabelEvent, Project, Query
from tests.support.service import (
    BOOTSTRAP,
    annotator,
    items,
    make_context,
    new_project,
    true_answer,
)


def crowd_project(ctx, stream, **crowd):
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000},
                      crowd=crowd)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 60))
    return pid


def events(ctx, eid) -> list[tuple]:
    with ctx.store.session() as s:
        return [(e.why, e.actor, e.old_label, e.new_label) for e in s.scalars(
            select(LabelEvent).where(LabelEvent.example_id == eid).order_by(LabelEvent.id))]


def snapshot(ctx, pid, qid) -> tuple:
    """What an answer may change: the events, answers, annotator counts and consensus."""
    with ctx.store.session() as s:
        q = s.get(Query, qid)
        return (s.scalars(select(LabelEvent.id).join(Example).where(
                    Example.project_id == pid).order_by(LabelEvent.id)).all(),
                [(r.annotator_id, r.status, r.example_label, r.counterexample_label,
                  r.agreement) for r in s.scalars(select(Answer).where(
                      Answer.project_id == pid).order_by(Answer.id))],
                [(a["name"], a["answers"], a["agreement"], a["gold"], a["confusion"])
                 for a in annotators.list_annotators(ctx, pid)["items"]],
                q.status, q.consensus, q.answer_example_label, q.answered_by,
                s.get(Project, pid).crowd_state)


def test_one_answer_per_query_is_todays_behaviour_and_names_the_annotator(ctx, stream):
    data, _, _ = stream
    pid = crowd_project(ctx, stream)
    alice = annotator(ctx, pid, "alice")
    q = queries.lease_next_query(ctx, pid, alice)
    truth = true_answer(q, data.y_train)
    done = queries.answer_query(ctx, pid, q["id"], *truth, alice)
    assert done["status"] == "answered" and done["answer"]["annotator"] == "alice"
    assert events(ctx, q["example"]["id"])[-1][:2] == ("answer_example", "alice")
    listed = annotators.list_annotators(ctx, pid)
    [me] = listed["items"]
    assert me["name"] == "alice" and me["answers"] == 1 and not me["flagged"]
    assert len(me["confusion"]) == 2 and me["agreement"] is not None
    # a second answer by alice (the same or another) is a 409 that changes nothing; bob's
    # is a 409 too, not "already answered"
    bob = annotator(ctx, pid, "bob")
    assert queries.lease_next_query(ctx, pid, bob)["id"] != q["id"]
    before = snapshot(ctx, pid, q["id"])
    for again in (truth, (1 - truth[0], truth[1])):
        with pytest.raises(Conflict) as refused:
            queries.answer_query(ctx, pid, q["id"], *again, alice)
        assert refused.value.details["already_answered"] is True
    with pytest.raises(Conflict) as other:
        queries.answer_query(ctx, pid, q["id"], *truth, bob)
    assert "already_answered" not in other.value.details
    assert snapshot(ctx, pid, q["id"]) == before


def test_overlap_waits_for_consensus_and_nobody_sees_the_others(ctx, stream):
    data, _, _ = stream
    pid = crowd_project(ctx, stream, answers_per_query=2, max_answers_per_query=3,
                        consensus_confidence=0.5)
    a, b = annotator(ctx, pid, "a"), annotator(ctx, pid, "b")
    qa = queries.lease_next_query(ctx, pid, a)
    qb = queries.lease_next_query(ctx, pid, b)
    assert qa["id"] == qb["id"] and qb["status"] == "collecting"
    truth = true_answer(qa, data.y_train)
    eid = qa["example"]["id"]
    before = examples.get_example(ctx, pid, eid)["label"]
    mine = queries.answer_query(ctx, pid, qa["id"], *truth, a)
    assert mine["status"] == "collecting" and mine["answer"]["annotator"] == "a"
    assert examples.get_example(ctx, pid, eid)["label"] == before   # no label change yet
    assert queries.get_query(ctx, pid, qa["id"], b)["answer"] is None   # b sees nothing
    # while collecting, a second answer by a (the same or another) is a 409, nothing changes
    collecting = snapshot(ctx, pid, qa["id"])
    for again in (truth, (1 - truth[0], truth[1])):
        with pytest.raises(Conflict) as refused:
            queries.answer_query(ctx, pid, qa["id"], *again, a)
        assert refused.value.details == {"query_id": qa["id"], "status": "collecting",
                                         "already_answered": True}
    assert snapshot(ctx, pid, qa["id"]) == collecting
    # a is never offered the pair they answered
    nxt = queries.lease_next_query(ctx, pid, a)
    assert nxt is None or nxt["id"] != qa["id"]
    done = queries.answer_query(ctx, pid, qb["id"], *truth, b)
    assert done["status"] == "answered" and done["answer"]["annotator"] == "b"
    assert examples.get_example(ctx, pid, eid)["label"] == truth[0]
    history = events(ctx, eid)
    assert [h[:2] for h in history[-3:]] == [("crowd_answer", "a"), ("crowd_answer", "b"),
                                             ("consensus", "consensus")]
    assert all(h[2] == h[3] == before for h in history[-3:-1])   # votes change nothing
    # once complete too
    before = snapshot(ctx, pid, qa["id"])
    for again in (truth, (1 - truth[0], truth[1])):
        with pytest.raises(Conflict) as refused:
            queries.answer_query(ctx, pid, qa["id"], *again, a)
        assert refused.value.details["already_answered"] is True
    assert snapshot(ctx, pid, qa["id"]) == before


def test_overlap_settings_are_validated():
    import marshmallow as ma

    from api.projects.schemas import ProjectUpdateSchema
    for bad in ({"answers_per_query": 0}, {"answers_per_query": 4, "max_answers_per_query": 3},
                {"consensus_confidence": 1.0}, {"gold_share": 0.9},
                {"max_answers_per_query": 11}):
        with pytest.raises(ma.ValidationError):
            ProjectUpdateSchema().load({"crowd": bad})


def test_overlap_settings_out_of_order_after_merge_store_nothing(ctx):
    pid = new_project(ctx)
    with pytest.raises(BadInput):
        projects.update_project(ctx, pid, {"crowd": {"answers_per_query": 5}}, "owner")
    assert projects.get_project(ctx, pid)["crowd"]["answers_per_query"] == 1
    done = projects.update_project(ctx, pid, {"crowd": {"answers_per_query": 3}}, "owner")
    assert done["crowd"]["answers_per_query"] == 3 and done["crowd"][
        "max_answers_per_query"] == 3


def test_gold_checks_never_change_labels_and_score_the_annotator(ctx, stream, seeded_gold_draws):
    pid = crowd_project(ctx, stream, gold_share=0.5)
    with ctx.store.session() as s:
        gold = [e.id for e in s.scalars(select(Example).where(
            Example.project_id == pid, Example.status == "accepted").order_by(Example.id)
            .limit(40))]
    annotators.mark_gold(ctx, pid, gold, True)
    with pytest.raises(BadInput):
        annotators.mark_gold(ctx, pid, [10**9], True)
    projects.update_project(ctx, pid, {"crowd": {"gold_share": 0.5}}, "owner")
    ann = annotator(ctx, pid, "g")
    seen = 0
    for _ in range(12):
        q = queries.lease_next_query(ctx, pid, ann)
        if q is None:
            break
        assert q["origin"] != "gold"
        ex = examples.get_example(ctx, pid, q["example"]["id"])
        label = ex["label"]
        queries.answer_query(ctx, pid, q["id"], label,
                             None if q["counterexample"] is None
                             else q["counterexample"]["label"], ann)
        seen += 1
    with ctx.store.session() as s:
        checks = s.scalars(select(Query).where(Query.project_id == pid,
                                               Query.origin == "gold")).all()
        assert checks, "no gold check in 12 leases at gold_share 0.5"
        assert not s.scalars(select(LabelEvent).where(
            LabelEvent.query_id.in_([q.id for q in checks]))).all()
        for q in checks:
            assert s.get(Example, q.example_id).gold
    [me] = annotators.list_annotators(ctx, pid)["items"]
    assert me["gold"]["answers"] == len(checks) and me["gold"]["correct"] == len(checks)
    # answering a gold pair twice, the same or differently, is a 409 that changes nothing
    before = snapshot(ctx, pid, checks[0].id)
    for label in (checks[0].answer_example_label, 1 - checks[0].answer_example_label):
        with pytest.raises(Conflict) as refused:
            queries.answer_query(ctx, pid, checks[0].id, label,
                                 checks[0].answer_counterexample_label, ann)
        assert refused.value.details["already_answered"] is True
    with pytest.raises(Conflict, match="gold check"):          # nor corrected
        queries.correct_answer(ctx, pid, checks[0].id, 1 - checks[0].answer_example_label,
                               checks[0].answer_counterexample_label, "oops", ann)
    assert snapshot(ctx, pid, checks[0].id) == before


def test_a_suspended_annotator_is_refused_and_can_be_restored(ctx, stream):
    data, _, _ = stream
    pid = crowd_project(ctx, stream)
    ann = annotator(ctx, pid, "s")
    q = queries.lease_next_query(ctx, pid, ann)
    [me] = annotators.list_annotators(ctx, pid)["items"]
    assert annotators.set_suspended(ctx, pid, me["id"], True, "owner")["suspended"]
    with pytest.raises(Forbidden):
        queries.answer_query(ctx, pid, q["id"], *true_answer(q, data.y_train), ann)
    with pytest.raises(Forbidden):
        queries.lease_next_query(ctx, pid, ann)
    with pytest.raises(Conflict):
        annotators.set_suspended(ctx, pid, me["id"], True, "owner")
    annotators.set_suspended(ctx, pid, me["id"], False, "owner")
    assert queries.lease_next_query(ctx, pid, ann) is not None


def test_the_last_slot_counts_once_the_other_is_a_409(tmp_path, stream, database_url):
    """Three annotators hold a query that completes at two agreeing answers; after the
    first answer, two answer the last slot at the same instant: one counts, the other is a
    409 that says the query is complete."""
    data, _, _ = stream
    ctx = make_context(tmp_path, database_url=database_url)
    pid = crowd_project(ctx, stream, answers_per_query=2, max_answers_per_query=3,
                        consensus_confidence=0.5)
    people = [annotator(ctx, pid, name) for name in ("x", "y", "z")]
    leased = [queries.lease_next_query(ctx, pid, p) for p in people]
    assert len({q["id"] for q in leased}) == 1
    qid, truth = leased[0]["id"], true_answer(leased[0], data.y_train)
    queries.answer_query(ctx, pid, qid, *truth, people[0])
    outcomes, barrier = [], threading.Barrier(2)

    def answer(p):
        barrier.wait()
        try:
            outcomes.append(("ok", queries.answer_query(ctx, pid, qid, *truth, p)["status"]))
        except Conflict as error:
            outcomes.append(("conflict", str(error)))

    threads = [threading.Thread(target=answer, args=(p,)) for p in people[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o[0] for o in outcomes) == ["conflict", "ok"]
    assert "complete" in [o[1] for o in outcomes if o[0] == "conflict"][0]
    with ctx.store.session() as s:
        counted = s.scalars(select(Answer).where(Answer.query_id == qid,
                                                 Answer.status == "answered")).all()
        assert len(counted) == 2
        assert s.get(Query, qid).status == "answered"
    ctx.store.engine.dispose()
