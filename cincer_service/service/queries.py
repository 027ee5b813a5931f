"""Queries: leases, answers, skips and corrections (the jobs that create queries are in
``screening``).

Annotators lease an open query (a compare-and-set UPDATE, so no two hold the same one), the
most valuable first (``priority``), and answer it; an answer relabels the example and/or the
counter-example and may ask for a retrain.
"""
from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
from sqlalchemy import and_, case, func, or_, select, update

from . import annotators, crowd, freshness, jobs, webhooks
from .access import Principal
from .context import ServiceContext, project_row, query_row
from .errors import BadInput, Conflict, Forbidden
from .labels import LabelChange, change_labels, count_towards_retrain
from .projects import label_error, label_index, label_name
from .store import Example, Project, Query, retry_transaction, utcnow

log = logging.getLogger(__name__)


def ranked_view(s, ranked: dict, classes) -> dict:
    """An alternative counter-example from the ranking, with its current label."""
    e = s.get(Example, ranked["id"])
    label = None if e is None else e.label
    return {"id": ranked["id"], "external_id": None if e is None else e.external_id,
            "label": label, "label_name": label_name(classes, label), "score": ranked["score"]}


def query_view(s, q: Query, project: Project, viewer: Principal | None = None) -> dict:
    """The query as the API shows it, both sides with their current labels and class
    names. An ``annotator`` ``viewer`` sees only their own answer, and a gold check as the
    audit pair it looks like (``crowd``)."""
    classes = project.classes
    masked = viewer is not None and viewer.role == "annotator"

    def side(example_id, probabilities):
        if example_id is None:
            return None
        e = s.get(Example, example_id)
        probs = list(probabilities) if probabilities is not None else None
        prediction = int(np.argmax(probs)) if probs else None
        return {"id": e.id, "external_id": e.external_id,
                "x": e.features(project.input_shape).tolist(), "text": e.raw, "label": e.label,
                "label_name": label_name(classes, e.label), "prediction": prediction,
                "prediction_name": label_name(classes, prediction), "probabilities": probs}

    answer = None
    if q.status == "answered":
        answer = {"example_label": q.answer_example_label,
                  "example_label_name": label_name(classes, q.answer_example_label),
                  "counterexample_label": q.answer_counterexample_label,
                  "counterexample_label_name": label_name(classes,
                                                          q.answer_counterexample_label),
                  "counterexample_not_sure": (q.counterexample_id is not None
                                              and q.answer_counterexample_label is None),
                  "annotator": q.answered_by, "answered_at": q.answered_at}
    lease_expires_at = q.lease_expires_at if q.status == "leased" else None
    if masked or q.status == crowd.COLLECTING or q.origin == crowd.GOLD:
        answer, lease_expires_at = own_view(s, q, project, viewer, answer, lease_expires_at)
    origin = "audit" if masked and q.origin == crowd.GOLD else q.origin
    example = s.get(Example, q.example_id)
    counterexample = s.get(Example, q.counterexample_id) if q.counterexample_id else None
    shown = q
    if origin != q.origin:
        shown = Query(origin=origin, margin=q.margin, prediction=q.prediction,
                      threshold=None, counterexample_id=q.counterexample_id)
    return {"id": q.id, "status": q.status, "origin": origin,
            "closed_reason": q.closed_reason,
            "explanation": explain(shown, project, example.label,
                                   None if counterexample is None else counterexample.label),
            "example": side(q.example_id, q.probabilities),
            "counterexample": side(q.counterexample_id, q.counterexample_probabilities),
            "margin": q.margin, "strategy": q.strategy, "model_version": q.model_version,
            "note": q.note,
            "lease_expires_at": lease_expires_at,
            "answer": answer, "created_at": q.created_at,
            "priority": q.priority, "priority_terms": q.priority_terms,
            "counterexample_score": q.ranking[0]["score"] if q.ranking else None,
            "alternatives": [ranked_view(s, r, classes) for r in (q.ranking or [])[1:]]}


def own_view(s, q: Query, project: Project, viewer: Principal | None, answer,
             lease_expires_at):
    """The answer and lease a viewer may see: an annotator their own only; on a query of
    several answers the others see the consensus (``answer`` as stored)."""
    if viewer is None or viewer.role != "annotator":
        return answer, lease_expires_at
    mine = crowd.own_answer(s, q, viewer.name)
    if q.status == crowd.COLLECTING or q.origin == crowd.GOLD:
        lease_expires_at = mine.lease_expires_at if mine is not None \
            and mine.status == "leased" else None
    if mine is None or mine.status != "answered":
        return (answer if answer is not None and answer["annotator"] == viewer.name
                else None), lease_expires_at
    classes = project.classes
    return {"example_label": mine.example_label,
            "example_label_name": label_name(classes, mine.example_label),
            "counterexample_label": mine.counterexample_label,
            "counterexample_label_name": label_name(classes, mine.counterexample_label),
            "counterexample_not_sure": (q.counterexample_id is not None
                                        and mine.counterexample_label is None),
            "annotator": viewer.name, "answered_at": mine.answered_at}, lease_expires_at


ORIGINS = {
    "stream": "It was screened when it arrived in the stream.",
    "bootstrap": "It comes from the audit of the first training set (the bootstrap set is "
                 "never screened), which ranked it among the most suspicious examples.",
    "audit": "It comes from an audit of the training set, which ranked it among the most "
             "suspicious examples.",
}


def explain(q: Query, project: Project, example_label: int,
            counterexample_label: int | None) -> dict:
    """Why the service asks about this pair, derived from the query itself: its origin,
    its margin against the τ it was screened with, and what the counter-example's current
    label says about the prediction. ``sentences`` is what the annotator page shows."""
    classes, predicted = project.classes, q.prediction
    threshold = q.threshold if q.origin == "stream" else None
    if threshold is None and q.origin == "stream":
        threshold = project.threshold
    sentences = [ORIGINS.get(q.origin, f"It was asked for by {q.origin}.")]
    gap = f"The model prefers {label_name(classes, predicted)} to the given label " \
          f"{label_name(classes, example_label)} by a margin of {q.margin:.2f}"
    if threshold is not None:
        above = q.margin >= threshold
        sentences.append(gap + (f", at least the {threshold:g} at which the service asks."
                                if above else f", below the {threshold:g} at which the "
                                "stream asks; it was asked when the gap was larger."))
    else:
        above = None
        sentences.append(gap + "; the audit, not a fixed gap, chose it.")
    relation = None
    if q.counterexample_id is not None:
        relation = "supports_prediction" if counterexample_label == predicted \
            else "contradicts_prediction"
        name = label_name(classes, counterexample_label)
        sentences.append(
            f"The counter-example is labelled {name}, the class the model predicts: it is "
            "the training example that most supports the model's view." if relation ==
            "supports_prediction" else
            f"The counter-example is now labelled {name}, not the predicted "
            f"{label_name(classes, predicted)}: it no longer supports the model's view.")
    return {"origin": q.origin, "margin": q.margin, "threshold": threshold,
            "above_threshold": above, "counterexample_relation": relation,
            "sentences": sentences}


@retry_transaction
def lease_next_query(ctx: ServiceContext, pid: int, principal: Principal) -> dict | None:
    """Lease the open query (or one whose lease expired) of highest ``priority`` to
    ``principal`` (ties, and every query of a ``queue_order = "fifo"`` project: the oldest);
    the one it already holds comes first. ``None`` when nothing is open."""
    lease = timedelta(seconds=ctx.settings.lease_seconds)
    with ctx.store.session() as s:
        project = project_row(s, pid)
        now = utcnow()
        annotator = annotators.annotator_row(s, pid, principal.name)
        annotators.ensure_active(annotator)
        held = s.scalar(select(Query).where(
            Query.project_id == pid, Query.status == "leased",
            Query.lease_holder == principal.token_id, Query.lease_expires_at >= now)
            .order_by(Query.id).limit(1))
        if held is not None:
            return query_view(s, held, project, principal)
        if crowd.overlap(project):
            project = project_row(s, pid, lock=True)     # leases of a crowd: one at a time
        gold = crowd.lease_gold(s, project, principal, annotator, now, lease)
        if gold is not None:
            s.commit()
            return query_view(s, gold, project, principal)
        if crowd.overlap(project):
            q = crowd.lease_overlap(s, project, principal, annotator, now, lease)
            if q is not None:
                s.commit()
                return query_view(s, q, project, principal)
            if freshness.stale_ids(s, pid, now):
                jobs.follow(s, jobs.REFRESH(pid))
            return None
        # Fresh pairs only: stale ones are rebuilt first (job ``refresh``).
        minimum = freshness.acceptable_version(s, pid, now)
        available = and_(freshness.available_condition(now),
                         freshness.fresh_condition(minimum))
        # A query this annotator skipped comes last: someone else should look at it first.
        skipped_by_me = case((Query.released_by == principal.token_id, 1), else_=0)
        order = ((Query.id,) if project.queue_order == "fifo"
                 else (func.coalesce(Query.priority, 0.0).desc(), Query.id))
        candidates_query = (select(Query.id).where(Query.project_id == pid, available,
                                                   Query.origin != crowd.GOLD)
                            .order_by(skipped_by_me, *order))
        if s.get_bind().dialect.name == "postgresql":
            # Lock the best row nobody is claiming right now: concurrent annotators each get
            # a different query at once instead of queueing behind the same row's lock.
            candidates_query = candidates_query.limit(1).with_for_update(skip_locked=True)
        else:                   # SQLite serialises writers; the conditional update decides
            candidates_query = candidates_query.limit(20)
        candidates = s.scalars(candidates_query).all()
        for qid in candidates:
            claimed = s.execute(update(Query).where(Query.id == qid, available).values(
                status="leased", lease_holder=principal.token_id,
                lease_expires_at=now + lease).execution_options(synchronize_session=False))
            if claimed.rowcount == 1:
                s.commit()
                return query_view(s, s.get(Query, qid, populate_existing=True), project,
                                  principal)
        if freshness.stale_ids(s, pid, now):
            jobs.follow(s, jobs.REFRESH(pid))      # nothing fresh yet: rebuild the stale
        return None


def get_query(ctx: ServiceContext, pid: int, qid: int,
              viewer: Principal | None = None) -> dict:
    """One query, with its answer once answered (an annotator: their own answer)."""
    with ctx.store.session() as s:
        return query_view(s, query_row(s, pid, qid), project_row(s, pid), viewer)


@retry_transaction
def answer_query(ctx: ServiceContext, pid: int, qid: int, example_label,
                 counterexample_label, principal: Principal,
                 counterexample_not_sure: bool = False) -> dict:
    """Apply an annotator's answer: relabel the example and/or the counter-example.

    Labels are class names or indices. When the query has a counter-example, its label is
    required unless the annotator says ``counterexample_not_sure``. An answer on a lost
    lease, to a query someone else answered, or a second answer by the annotator who
    answered (same labels or not, also concurrently: ``crowd.already_answered``) is a
    ``Conflict`` and changes nothing. A client retrying its own request sends the first
    request's ``Idempotency-Key`` and gets the stored response (``service.idempotency``)."""
    with ctx.store.session() as s:
        project, q, lock = lock_for_answer(s, pid, qid)     # the lock order: project first
        example_label, counterexample_label = check_answer(
            project, q, example_label, counterexample_label, counterexample_not_sure)
        now = utcnow()
        annotator = annotators.annotator_row(s, pid, principal.name)
        annotators.ensure_active(annotator)
        if q.origin == crowd.GOLD or q.status == crowd.COLLECTING or (
                crowd.overlap(project) and q.status == "answered"
                and q.answered_by == crowd.CONSENSUS_ACTOR):
            answer = crowd.answer_gold if q.origin == crowd.GOLD else crowd.answer_overlap
            answer(s, project, q, annotator, principal, example_label, counterexample_label,
                   now)
            s.commit()
            return query_view(s, s.get(Query, qid, populate_existing=True), project,
                              principal)
        held = q.status == "leased" and q.lease_holder == principal.token_id \
            and q.lease_expires_at >= now
        if held and q.labels_changed_at is not None:
            conflict = reopen_changed_pair(s, q, project)
        elif q.status != "answered":
            claimed = s.execute(update(Query).where(
                Query.id == qid, Query.status == "leased",
                Query.lease_holder == principal.token_id, Query.lease_expires_at >= now)
                .values(status="answered", answer_example_label=example_label,
                        answer_counterexample_label=counterexample_label,
                        answered_by=principal.name, answered_at=now)
                .execution_options(synchronize_session=False))
            if claimed.rowcount == 1:
                webhooks.emit(s, pid, "query.answered", {
                    "query_id": qid, "example_id": q.example_id,
                    "counterexample_id": q.counterexample_id, "example_label": example_label,
                    "counterexample_label": counterexample_label, "annotator": principal.name,
                    "answered_at": now})
                changes = [LabelChange(q.example_id, example_label, "answer_example")]
                if counterexample_label is not None:
                    changes.append(LabelChange(q.counterexample_id, counterexample_label,
                                               "answer_counterexample"))
                change_labels(s, pid, changes, principal.name, query_id=qid, now=now,
                              project_lock=lock)
                count_towards_retrain(s, pid, 1)
                crowd.record_single(s, project, q, annotator, principal, example_label,
                                    counterexample_label, now)
                s.commit()              # the project lock is held until here, not longer
                return query_view(s, s.get(Query, qid, populate_existing=True), project,
                                  principal)
            q = s.get(Query, qid, populate_existing=True)   # someone else changed it
        if not (held and q.labels_changed_at is not None):
            if q.status == "answered":
                mine = crowd.own_answer(s, q, principal.name)
                if q.answered_by == principal.name or (mine is not None
                                                       and mine.status == "answered"):
                    raise crowd.already_answered(q)
                raise Conflict("this query is already answered by another annotator; "
                               "your answer was not applied",
                               {"query_id": qid, "status": q.status})
            raise Conflict("you do not hold a lease on this query (it expired, was taken "
                           "by another annotator, or was never leased)",
                           {"query_id": qid, "status": q.status})
    raise conflict          # after the commit that gave the pair back for its rebuild


def lock_for_answer(s, pid: int, qid: int) -> tuple[Project, Query, bool | str]:
    """``(project, query, lock)`` with the project row locked for answering ``qid``: shared
    for a plain answer (20 annotators answer at once instead of queueing on the project),
    exclusively for a crowd's (overlap or gold: its slots and consensus are decided one
    answer at a time). The kind is read before locking and checked again after; if it
    changed meanwhile the lock is taken again, exclusively."""
    def plain(project: Project, q: Query) -> bool:
        return not crowd.overlap(project) and q.origin != crowd.GOLD
    lock = "share" if plain(project_row(s, pid), query_row(s, pid, qid)) else True
    project = project_row(s, pid, lock=lock)
    q = s.get(Query, qid, populate_existing=True)
    if lock == "share" and not plain(project, q):
        s.rollback()
        lock = True
        project = project_row(s, pid, lock=lock)
        q = s.get(Query, qid, populate_existing=True)
    return project, q, lock


def reopen_changed_pair(s, q: Query, project: Project) -> Conflict:
    """A leased pair one of whose sides a person labelled meanwhile: nothing of the answer
    is applied, the pair is open again and rebuilt (job ``refresh``) before anyone sees it.
    Returns the ``Conflict`` to raise once this is committed, naming each changed side."""
    s.execute(update(Query).where(Query.id == q.id).values(
        status="open", lease_holder=None, lease_expires_at=None)
        .execution_options(synchronize_session=False))
    jobs.follow(s, jobs.REFRESH(project.id))
    return Conflict("a side of this pair was labelled by someone else while you held it; "
                    "nothing was applied, and the pair will be offered again, rebuilt",
                    {"query_id": q.id, "changed": side_changes(s, q, project)})


def side_changes(s, q: Query, project: Project) -> list[dict]:
    """The sides of ``q`` that a person labelled after the pair was built: side, example
    id, its current label (index and name), who and when."""
    from .store import LabelEvent
    changed = []
    for side, eid in (("example", q.example_id), ("counterexample", q.counterexample_id)):
        if eid is None:
            continue
        event = s.scalar(select(LabelEvent).where(
            LabelEvent.example_id == eid, LabelEvent.at >= q.labels_changed_at)
            .order_by(LabelEvent.id.desc()).limit(1))
        if event is not None:
            changed.append({"side": side, "example_id": eid, "label": event.new_label,
                            "label_name": label_name(project.classes, event.new_label),
                            "by": event.actor, "why": event.why})
    return changed


def release_query(ctx: ServiceContext, pid: int, qid: int, principal: Principal) -> dict:
    """Give a leased query back (an annotator skips it); it is open again at once, and the
    annotator who skipped it is offered every other open query first.
    Releasing a query that is already open is a no-op; one held by someone else or
    answered is a ``Conflict``."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        q = query_row(s, pid, qid)
        if q.status == crowd.COLLECTING:
            annotator = annotators.annotator_row(s, pid, principal.name)
            if not crowd.release_overlap(s, q, annotator, utcnow()):
                raise Conflict("you hold no lease on this query", {"query_id": qid,
                                                                    "status": q.status})
            return query_view(s, q, project, principal)
        s.execute(update(Query).where(
            Query.id == qid, Query.status == "leased", Query.lease_holder == principal.token_id)
            .values(status="open", lease_holder=None, lease_expires_at=None,
                    released_by=principal.token_id)
            .execution_options(synchronize_session=False))
        q = s.get(Query, qid, populate_existing=True)
        if q.status == "leased" and q.lease_expires_at >= utcnow():
            raise Conflict("another annotator holds this query", {"query_id": qid})
        if q.status not in ("open", "leased"):
            raise Conflict(f"this query is {q.status}; only a leased query can be released",
                           {"query_id": qid, "status": q.status})
        return query_view(s, q, project, principal)


@retry_transaction
def correct_answer(ctx: ServiceContext, pid: int, qid: int, example_label,
                   counterexample_label, reason: str, principal: Principal,
                   counterexample_not_sure: bool = False) -> dict:
    """Correct an answered query (its annotator, or an admin): the new labels go into the
    label history as ``correction`` with ``reason``; the query keeps the corrected answer."""
    with ctx.store.session() as s:
        project = project_row(s, pid, lock=True)        # the lock order: project first
        q = query_row(s, pid, qid)
        if q.status != "answered":
            raise Conflict("only an answered query can be corrected",
                           {"query_id": qid, "status": q.status})
        if q.lease_holder != principal.token_id and principal.role != "admin":
            raise Forbidden("only the annotator who answered (or an admin) may correct it")
        if q.origin == crowd.GOLD:
            raise Conflict("a gold check is scored against trusted labels and never changes "
                           "a label; it cannot be corrected", {"query_id": qid,
                                                               "status": q.status})
        example_label, counterexample_label = check_answer(
            project, q, example_label, counterexample_label, counterexample_not_sure)
        changes = [LabelChange(eid, label, "correction")
                   for eid, label in ((q.example_id, example_label),
                                      (q.counterexample_id, counterexample_label))
                   if label is not None]
        outcome = change_labels(s, pid, changes, principal.name, query_id=qid, reason=reason,
                                skip_unchanged=True)
        q.answer_example_label, q.answer_counterexample_label = example_label, \
            counterexample_label
        if outcome.relabelled:
            count_towards_retrain(s, pid, 1)
        return query_view(s, q, project)


def list_queries(ctx: ServiceContext, pid: int, status: str | None = None, offset: int = 0,
                 limit: int = 50, viewer: Principal | None = None) -> dict:
    """One page ``{items, total}`` of the project's queries, optionally by status (an
    expired lease counts as ``open``)."""
    now = utcnow()
    with ctx.store.session() as s:
        project = project_row(s, pid)
        where = [Query.project_id == pid]
        if status == "open":
            where.append(or_(Query.status == "open", and_(Query.status == "leased",
                                                          Query.lease_expires_at < now)))
        elif status == "leased":
            where += [Query.status == "leased", Query.lease_expires_at >= now]
        elif status:
            where.append(Query.status == status)
        total = s.scalar(select(func.count(Query.id)).where(*where))
        rows = s.scalars(select(Query).where(*where).order_by(Query.id).offset(offset)
                         .limit(limit))
        return {"items": [query_view(s, q, project, viewer) for q in rows], "total": total}


def check_answer(project: Project, q: Query, example_label, counterexample_label,
                 counterexample_not_sure: bool = False) -> tuple[int, int | None]:
    """The answer's labels as class indices; ``BadInput`` unless both are class names or
    indices of the project, and the counter-example is labelled (or explicitly not sure)
    exactly when the query has one."""
    classes, errors = project.classes, {}
    example = label_index(classes, example_label)
    if example is None:
        errors["example_label"] = [label_error(classes)]
    counter = None
    if counterexample_label is not None:
        counter = label_index(classes, counterexample_label)
        if q.counterexample_id is None:
            errors["counterexample_label"] = ["this query has no counter-example"]
        elif counter is None:
            errors["counterexample_label"] = [label_error(classes)]
        elif counterexample_not_sure:
            errors["counterexample_not_sure"] = ["give a counter-example label or say not "
                                                 "sure, not both"]
    elif q.counterexample_id is not None and not counterexample_not_sure:
        errors["counterexample_label"] = ["required: this query has a counter-example; "
                                          "label it, or set counterexample_not_sure"]
    if errors:
        raise BadInput("invalid answer", errors)
    return example, counter
