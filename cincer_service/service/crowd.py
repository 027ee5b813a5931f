"""Crowds: several answers per query, the consensus that decides, and gold checks.

With ``answers_per_query = 1`` (the default) a query takes one answer, which is the label,
exactly as before crowds; the answer still feeds the annotator's score (``annotators``).
With more, a query is *collecting* from its first lease on: several annotators hold it at
once (one ``Answer`` row each: ``leased`` → ``answered``), never anyone who already answered
it, and nobody sees anyone else's answer. Each answer is a ``crowd_answer`` event in the
history of each side it labels (the vote is in its ``reason``; the label does not change), and updates the
consensus (``annotators.update_consensus``). The query completes when it has at least
``answers_per_query`` answers and each side's posterior reaches ``consensus_confidence``, or
at ``max_answers_per_query`` answers: then ``labels.change_labels`` applies the consensus as
its own ``consensus`` event. Leases are handed out up to the answers still needed (all
``answers_per_query`` at first, then one at a time); an answer that arrives after the query
completed is a ``Conflict`` that says so, and is not counted; so is a second answer by
an annotator who already answered (``already_answered``, gold checks too).

Gold checks: when the project has gold examples, a share ``gold_share`` of leases shows a
gold example (and another gold example of another class as its counter-example) that the
annotator has not been checked on; it looks like an audit pair, is scored against the
trusted labels and never changes a label.
"""
from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
from sqlalchemy import and_, case, func, or_, select, update

from . import annotators, freshness, webhooks
from .labels import LabelChange, change_labels, count_towards_retrain
from .projects import crowd_policy, label_name
from .store import Answer, Example, LabelEvent, ModelVersion, Query

COLLECTING = "collecting"
GOLD = "gold"
CONSENSUS_ACTOR = "consensus"
_random = random.Random()


def overlap(project) -> bool:
    """Whether queries of ``project`` take several answers."""
    return crowd_policy(project)["answers_per_query"] > 1


def already_answered(q: Query):
    """The ``Conflict`` for a second answer to ``q`` by an annotator who answered it
    (same labels or not, gold or not): nothing of it is applied. A client's retry of its own
    request carries the first request's ``Idempotency-Key`` and gets the stored response
    instead (``service.idempotency``)."""
    from .errors import Conflict
    return Conflict("you already answered this query; your second answer was not applied "
                    "(a retry of the same request gets the stored response when it carries "
                    "the first request's Idempotency-Key)",
                    {"query_id": q.id, "status": q.status, "already_answered": True})


# -- gold ------------------------------------------------------------------------------
def checked_gold(pid: int, annotator_id: int):
    """SQL: the gold examples ``annotator_id`` was already shown."""
    return (select(Query.example_id).join(Answer, Answer.query_id == Query.id)
            .where(Query.project_id == pid, Query.origin == GOLD,
                   Answer.annotator_id == annotator_id))


def lease_gold(s, project, principal, annotator, now, lease: timedelta,
               rng=None) -> Query | None:
    """With probability ``gold_share``, a gold check for ``annotator`` (a new query,
    leased to the caller); None when it is not drawn or every gold example was shown."""
    share = crowd_policy(project)["gold_share"]
    if share <= 0 or (rng or _random).random() >= share:
        return None
    example = s.scalar(select(Example).where(
        Example.project_id == project.id, Example.gold,
        Example.id.not_in(checked_gold(project.id, annotator.id)))
        .order_by(func.random()).limit(1))
    if example is None:
        return None
    counter = s.scalar(select(Example).where(
        Example.project_id == project.id, Example.gold, Example.id != example.id,
        Example.gold_label != example.gold_label).order_by(func.random()).limit(1))
    c = len(project.classes)
    probabilities = list(example.screen_probabilities or [1.0 / c] * c)
    prediction = int(np.argmax(probabilities))
    version = s.scalar(select(func.max(ModelVersion.version))
                       .where(ModelVersion.project_id == project.id)) or 0
    q = Query(project_id=project.id, example_id=example.id,
              counterexample_id=None if counter is None else counter.id,
              model_version=version, strategy=project.strategy,
              margin=float(probabilities[prediction] - probabilities[example.label]),
              prediction=prediction, probabilities=probabilities,
              counterexample_probabilities=None if counter is None else list(
                  counter.screen_probabilities or [1.0 / c] * c),
              origin=GOLD, status="leased", lease_holder=principal.token_id,
              lease_expires_at=now + lease, created_at=now)
    s.add(q)
    s.flush()
    s.add(Answer(project_id=project.id, query_id=q.id, annotator_id=annotator.id,
                 token_id=principal.token_id, status="leased", leased_at=now,
                 lease_expires_at=now + lease, gold=True))
    return q


def answer_gold(s, project, q: Query, annotator, principal, example_label,
                counterexample_label, now) -> None:
    """Score a gold check (no label changes); the caller must hold its lease. A second
    answer by the same annotator is ``already_answered``'s ``Conflict``."""
    from .errors import Conflict
    mine = s.scalar(select(Answer).where(Answer.query_id == q.id,
                                         Answer.annotator_id == annotator.id))
    if mine is not None and mine.status == "answered":
        raise already_answered(q)
    if mine is None or q.status != "leased" or q.lease_holder != principal.token_id \
            or q.lease_expires_at < now:
        raise Conflict("you do not hold a lease on this query (it expired, was taken "
                       "by another annotator, or was never leased)",
                       {"query_id": q.id, "status": q.status})
    mine.status, mine.answered_at = "answered", now
    mine.example_label, mine.counterexample_label = example_label, counterexample_label
    mine.seconds = (now - mine.leased_at).total_seconds()
    q.status, q.answered_by, q.answered_at = "answered", annotator.name, now
    q.answer_example_label, q.answer_counterexample_label = example_label, \
        counterexample_label
    annotators.record_gold(s, project, q, mine, annotator)


# -- one answer, today's way -----------------------------------------------------------
def record_single(s, project, q: Query, annotator, principal, example_label,
                  counterexample_label, now) -> None:
    """The answer that alone decided ``q`` (``answers_per_query = 1``): kept as an
    ``Answer`` and counted into the consensus, for the annotator's score."""
    row = Answer(project_id=project.id, query_id=q.id, annotator_id=annotator.id,
                 token_id=principal.token_id, status="answered", leased_at=now,
                 answered_at=now, example_label=example_label,
                 counterexample_label=counterexample_label)
    s.add(row)
    s.flush()
    annotators.update_consensus(s, project, q, [row], row)


# -- overlap ---------------------------------------------------------------------------
def lease_overlap(s, project, principal, annotator, now, lease: timedelta) -> Query | None:
    """Lease a query to ``annotator`` in a project whose queries take several answers:
    the one they hold first, then queries already collecting (most valuable first), then
    fresh open ones. Never one they answered; never more than ``max_answers_per_query``
    annotators (answered, or holding an unexpired lease)."""
    pid, policy = project.id, crowd_policy(project)
    held = s.scalar(select(Query).join(Answer, Answer.query_id == Query.id).where(
        Answer.annotator_id == annotator.id, Answer.status == "leased",
        Answer.lease_expires_at >= now, Query.status == COLLECTING, Query.project_id == pid)
        .order_by(Query.id).limit(1))
    if held is not None:
        return held
    answered = select(Answer.query_id).where(Answer.annotator_id == annotator.id,
                                             Answer.status == "answered")
    released = select(Answer.query_id).where(Answer.annotator_id == annotator.id,
                                             Answer.status == "released")
    minimum = freshness.acceptable_version(s, pid, now)
    fresh_open = and_(freshness.available_condition(now), freshness.fresh_condition(minimum))
    collecting = Query.status == COLLECTING
    order = ((Query.id,) if project.queue_order == "fifo"
             else (func.coalesce(Query.priority, 0.0).desc(), Query.id))
    candidates = s.scalars(select(Query.id).where(
        Query.project_id == pid, Query.origin != GOLD, or_(collecting, fresh_open),
        Query.id.not_in(answered))
        .order_by(case((Query.id.in_(released), 1), else_=0),
                  case((collecting, 0), else_=1), *order).limit(50)).all()
    if not candidates:
        return None
    taken = dict(s.execute(select(Answer.query_id, func.count(Answer.id)).where(
        Answer.query_id.in_(candidates), or_(
            Answer.status == "answered",
            and_(Answer.status == "leased", Answer.lease_expires_at >= now)))
        .group_by(Answer.query_id)).all())
    for qid in candidates:
        if taken.get(qid, 0) >= policy["max_answers_per_query"]:
            continue
        started = s.execute(update(Query).where(Query.id == qid, or_(collecting, fresh_open))
                            .values(status=COLLECTING, lease_holder=None,
                                    lease_expires_at=None)
                            .execution_options(synchronize_session=False))
        if started.rowcount != 1:
            continue
        row = s.scalar(select(Answer).where(Answer.query_id == qid,
                                            Answer.annotator_id == annotator.id))
        if row is None:
            row = Answer(project_id=pid, query_id=qid, annotator_id=annotator.id)
            s.add(row)
        row.token_id, row.status, row.leased_at = principal.token_id, "leased", now
        row.lease_expires_at = now + lease
        s.flush()
        return s.get(Query, qid, populate_existing=True)
    return None


def decide(policy: dict, posterior: dict, answered: int) -> bool:
    """Whether a query with ``answered`` answers and these side posteriors is complete."""
    if answered >= policy["max_answers_per_query"]:
        return True
    confident = all(max(p) >= policy["consensus_confidence"]
                    for p in posterior.values() if p is not None)
    return answered >= policy["answers_per_query"] and confident


def answer_overlap(s, project, q: Query, annotator, principal, example_label,
                   counterexample_label, now) -> None:
    """Count one annotator's answer to a collecting query; complete it when the consensus
    decides. ``Conflict`` when the query is already complete (the answer is not counted),
    when they hold no lease on it, or when they answered it before (``already_answered``)."""
    from .errors import Conflict
    # A write first: on SQLite it takes the database's write lock (PostgreSQL holds the
    # project's), so what is read next is what the concurrent answers committed.
    s.execute(update(Query).where(Query.id == q.id).values(consensus=Query.consensus)
              .execution_options(synchronize_session=False))
    s.refresh(q)
    mine = s.scalar(select(Answer).where(Answer.query_id == q.id,
                                         Answer.annotator_id == annotator.id)
                    .execution_options(populate_existing=True))
    if mine is not None and mine.status == "answered":
        raise already_answered(q)
    if q.status == "answered":
        raise Conflict("this query is complete: it has the answers its consensus needed, "
                       "and yours was not counted", {"query_id": q.id, "status": q.status,
                                                     "complete": True})
    if q.status != COLLECTING or mine is None or mine.status != "leased" \
            or mine.lease_expires_at < now:
        raise Conflict("you do not hold a lease on this query (it expired, was given "
                       "back, or was never leased)", {"query_id": q.id, "status": q.status})
    mine.status, mine.answered_at = "answered", now
    mine.example_label, mine.counterexample_label = example_label, counterexample_label
    mine.seconds = (now - mine.leased_at).total_seconds()
    mine.token_id = principal.token_id
    s.flush()
    for eid, label in ((q.example_id, example_label),
                       (q.counterexample_id, counterexample_label)):
        if eid is not None and label is not None:
            current = s.get(Example, eid).label      # a vote: the label stays as it is
            s.add(LabelEvent(example_id=eid, old_label=current, new_label=current,
                             why="crowd_answer", actor=annotator.name, query_id=q.id,
                             reason=f"answered {label_name(project.classes, label)} "
                                    f"(class {label}); the label changes only on consensus",
                             at=now))
    answers = s.scalars(select(Answer).where(Answer.query_id == q.id,
                                             Answer.status == "answered",
                                             Answer.gold.is_(False))
                        .order_by(Answer.id)).all()
    posterior = annotators.update_consensus(s, project, q, answers, mine)
    if decide(crowd_policy(project), posterior, len(answers)):
        complete(s, project, q, posterior, answers, now)


def complete(s, project, q: Query, posterior: dict, answers, now) -> None:
    """Apply the consensus: the most probable class of each side that got votes."""
    classes = project.classes
    example = int(np.argmax(posterior["example"]))
    counter = None if posterior.get("counterexample") is None \
        else int(np.argmax(posterior["counterexample"]))
    q.status, q.answered_by, q.answered_at = "answered", CONSENSUS_ACTOR, now
    q.answer_example_label, q.answer_counterexample_label = example, counter
    names = sorted({a.annotator_id for a in answers})
    reason = (f"consensus of {len(answers)} answers: {label_name(classes, example)} "
              f"with posterior {max(posterior['example']):.3f}")
    changes = [LabelChange(q.example_id, example, "consensus")]
    if counter is not None:
        changes.append(LabelChange(q.counterexample_id, counter, "consensus"))
    change_labels(s, project.id, changes, CONSENSUS_ACTOR, query_id=q.id, reason=reason,
                  now=now)
    count_towards_retrain(s, project.id, 1)
    s.execute(update(Answer).where(Answer.query_id == q.id, Answer.status == "leased")
              .values(status="released", lease_expires_at=now)
              .execution_options(synchronize_session=False))
    webhooks.emit(s, project.id, "query.answered", {
        "query_id": q.id, "example_id": q.example_id,
        "counterexample_id": q.counterexample_id, "example_label": example,
        "counterexample_label": counter, "annotator": CONSENSUS_ACTOR,
        "answers": len(answers), "annotator_ids": names, "answered_at": now})


def release_overlap(s, q: Query, annotator, now) -> bool:
    """Give back ``annotator``'s lease on a collecting query; False when they hold none."""
    gone = s.execute(update(Answer).where(Answer.query_id == q.id,
                                          Answer.annotator_id == annotator.id,
                                          Answer.status == "leased")
                     .values(status="released", lease_expires_at=now)
                     .execution_options(synchronize_session=False))
    return gone.rowcount == 1


def own_answer(s, q: Query, name: str) -> Answer | None:
    """The answer (or lease) of the annotator called ``name`` on ``q``."""
    from .store import Annotator
    return s.scalar(select(Answer).join(Annotator, Annotator.id == Answer.annotator_id)
                    .where(Answer.query_id == q.id, Annotator.name == name))
