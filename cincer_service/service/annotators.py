"""Annotators: named identities, their consensus bookkeeping, scores, suspension and gold.

Every token answers as the annotator of its name in its project (``annotator_row``; the
global admin answers as ``admin``). Each answer is an ``Answer`` row; the consensus model
(``cincer_service.consensus``) keeps each annotator's soft confusion counts on their row and
the project-wide counts (classes, the confusions of the model's voters, one per query side
and confidence bin) on the project (``crowd_state``). An annotator's *agreement* is the
mean, over their answers, of how probable their label is under everyone else's votes and the
model (leave-one-out); their estimated accuracy is the diagonal share of their soft
confusion counts (Dawid–Skene's own estimate; gold checks add a count at the known class).
With at least ``spec.MIN_ANSWERS_TO_FLAG`` answers and an estimate under
``min_annotator_accuracy`` they are *flagged*: the consensus down-weights their votes
(``catalog.FLAGGED_WEIGHT``); nothing of theirs is deleted. An admin may suspend them (their
leases and answers are then refused) and restore them.

Gold examples carry a trusted label (``Example.gold_label``); ``service.crowd`` turns a share
of leases into gold checks that never change labels.
"""
from __future__ import annotations

import math
import statistics

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..consensus import MODEL, Crowd, expected_accuracy, krippendorff_alpha
from ..spec import MIN_ANSWERS_TO_FLAG
from .context import ServiceContext, project_child, project_row
from .errors import BadInput, Conflict, Forbidden
from .projects import crowd_policy, label_name
from .store import Annotator, Answer, Example, Query, utcnow


def annotator_row(s, pid: int, name: str, lock: bool = False) -> Annotator:
    """The annotator called ``name`` in project ``pid``, created on first use."""
    where = (Annotator.project_id == pid, Annotator.name == name)
    statement = select(Annotator).where(*where)
    if lock:
        statement = statement.with_for_update()
    row = s.scalar(statement)
    if row is not None:
        return row
    try:
        with s.begin_nested():
            row = Annotator(project_id=pid, name=name, created_at=utcnow())
            s.add(row)
    except IntegrityError:            # a concurrent first answer created it
        row = s.scalar(statement)
    return row


def ensure_active(annotator: Annotator) -> None:
    """``Forbidden`` for a suspended annotator (nothing of theirs is accepted)."""
    if annotator.suspended:
        raise Forbidden(f"annotator {annotator.name!r} is suspended; an admin may restore "
                        "them", {"annotator": annotator.name, "suspended": True})


def estimated_accuracy(a: Annotator) -> float | None:
    """Dawid–Skene's own estimate: the share of the annotator's soft confusion counts on
    the diagonal (gold checks count at their known class). The leave-one-out agreement,
    reported beside it, runs low on the doubtful pairs the service asks about: on the
    development table (bench_consensus, seed 100) it put every annotator but the best two
    under 0.7, the counts' diagonal tracks their true accuracy (0.95 … 0.63; spammers
    0.1)."""
    if not a.answers or a.confusion is None:
        return None
    return expected_accuracy(np.asarray(a.confusion))


def is_flagged(a: Annotator, min_accuracy: float) -> bool:
    accuracy = estimated_accuracy(a)
    return a.answers >= MIN_ANSWERS_TO_FLAG and accuracy is not None \
        and accuracy < min_accuracy


def crowd_for(project, annotators) -> Crowd:
    """The consensus model with the counts of ``annotators`` (and the project's)."""
    c, state = len(project.classes), project.crowd_state or {}
    counts = {a.id: (np.zeros((c, c)) if a.confusion is None else np.asarray(a.confusion))
              for a in annotators}
    if state.get("model") is not None:
        counts[MODEL] = np.asarray(state["model"])
    for key, value in (state.get("models") or {}).items():    # absent in older states
        counts[key] = np.asarray(value)
    minimum = crowd_policy(project)["min_annotator_accuracy"]
    return Crowd(c, class_counts=state.get("class_counts"), counts=counts,
                 flagged={a.id for a in annotators if is_flagged(a, minimum)})


def save_crowd(project, crowd: Crowd, annotators) -> None:
    project.crowd_state = crowd.to_json()
    for a in annotators:
        a.confusion = crowd.counts_of(a.id).tolist()


SIDES = (("example", "example_label", "probabilities", "example_id"),
         ("counterexample", "counterexample_label", "counterexample_probabilities",
          "counterexample_id"))


def update_consensus(s, project, q: Query, answers: list[Answer], new: Answer) -> dict:
    """Count ``new`` (one of ``answers``, the query's answered non-gold answers) into the
    consensus: each side's posterior is recomputed and every voter's counts and agreement
    move by the change. Returns ``{side: posterior or None}`` (also stored on ``q``)."""
    ids = sorted({a.annotator_id for a in answers})
    people = {a.id: a for a in s.scalars(select(Annotator).where(Annotator.id.in_(ids))
                                         .order_by(Annotator.id).with_for_update())}
    crowd = crowd_for(project, people.values())
    old = dict(q.consensus or {})
    result, agreements = {}, {a.id: [] for a in answers}
    for side, attr, probs_attr, id_attr in SIDES:
        if getattr(q, id_attr) is None:
            result[side] = None
            continue
        voters = [a for a in answers if getattr(a, attr) is not None]
        if not voters:
            result[side] = old.get(side)
            continue
        votes = [(a.annotator_id, getattr(a, attr)) for a in voters]
        counted = [(a.annotator_id, getattr(a, attr)) for a in voters if a.id != new.id] \
            if old.get(side) is not None else []
        probabilities = getattr(q, probs_attr)
        posterior = crowd.update_item(votes, probabilities, old.get(side), counted, side)
        result[side] = posterior.tolist()
        for a, value in zip(voters, crowd.leave_one_out(votes, probabilities, side)):
            agreements[a.id].append(value)
    for a in answers:
        if not agreements[a.id]:
            continue
        value = float(np.mean(agreements[a.id]))
        person = people[a.annotator_id]
        person.agreement = float(person.agreement) + value - (
            0.0 if a.agreement is None else a.agreement)
        a.agreement = value
    people[new.annotator_id].answers += 1
    q.consensus = result
    save_crowd(project, crowd, people.values())
    return result


def record_gold(s, project, q: Query, answer: Answer, annotator: Annotator) -> bool:
    """Score a gold check: the answer against the trusted labels of its gold sides (no
    label changes). Returns whether every gold side was right."""
    crowd = crowd_for(project, [annotator])
    right = []
    for _, attr, _, id_attr in SIDES:
        eid, label = getattr(q, id_attr), getattr(answer, attr)
        example = None if eid is None else s.get(Example, eid)
        if example is None or not example.gold or label is None:
            continue
        right.append(label == example.gold_label)
        crowd.add_gold(annotator.id, example.gold_label, label)
    value = float(np.mean(right)) if right else 1.0
    answer.agreement = value
    annotator.agreement = float(annotator.agreement) + value
    annotator.answers += 1
    annotator.gold_answers += 1
    annotator.gold_correct += int(all(right))
    save_crowd(project, crowd, [annotator])
    return all(right)


# -- reading ---------------------------------------------------------------------------
def annotator_view(a: Annotator, project, rows: list[Answer]) -> dict:
    """One annotator's record (``rows``: their answered answers)."""
    policy = crowd_policy(project)
    plain = [r.agreement for r in rows if not r.gold and r.agreement is not None]
    seconds = [r.seconds for r in rows if r.seconds is not None]
    c = len(project.classes)
    counts = np.zeros((c, c)) if a.confusion is None else np.asarray(a.confusion)
    crowd = Crowd(c, counts={a.id: counts})
    accuracy = estimated_accuracy(a)
    return {"id": a.id, "name": a.name, "answers": a.answers,
            "agreement": math.fsum(plain) / len(plain) if plain else None,   # any order
            "gold": {"answers": a.gold_answers, "correct": a.gold_correct,
                     "accuracy": a.gold_correct / a.gold_answers if a.gold_answers else None},
            "estimated_accuracy": accuracy,
            "confusion": np.round(crowd.theta(a.id), 4).tolist(),
            "median_seconds": statistics.median(seconds) if seconds else None,
            "flagged": is_flagged(a, policy["min_annotator_accuracy"]),
            "suspended": a.suspended, "suspended_by": a.suspended_by,
            "suspended_at": a.suspended_at}


def list_annotators(ctx: ServiceContext, pid: int) -> dict:
    """Every annotator of the project with their record, and the crowd's Krippendorff's
    alpha over the query sides that have at least two answers."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        rows = s.scalars(select(Answer).where(Answer.project_id == pid,
                                              Answer.status == "answered")
                         .order_by(Answer.id)).all()
        by_person, by_query = {}, {}
        for r in rows:
            by_person.setdefault(r.annotator_id, []).append(r)
            if not r.gold:
                by_query.setdefault(r.query_id, []).append(r)
        items = []
        for answers in by_query.values():
            items.append([r.example_label for r in answers if r.example_label is not None])
            items.append([r.counterexample_label for r in answers
                          if r.counterexample_label is not None])
        people = s.scalars(select(Annotator).where(Annotator.project_id == pid)
                           .order_by(Annotator.id)).all()
        return {"items": [annotator_view(a, project, by_person.get(a.id, []))
                          for a in people],
                "krippendorff_alpha": krippendorff_alpha(items),
                "policy": crowd_policy(project),
                "min_answers_to_flag": MIN_ANSWERS_TO_FLAG,
                "classes": list(project.classes)}


def set_suspended(ctx: ServiceContext, pid: int, aid: int, suspended: bool,
                  actor: str) -> dict:
    """Suspend (or restore) annotator ``aid``: a suspended annotator's leases and answers
    are refused; nothing of theirs is deleted. ``Conflict`` when already so."""
    with ctx.store.session() as s:
        project = project_row(s, pid, lock=True)
        a = project_child(s, Annotator, pid, aid, "annotator")
        if a.suspended == suspended:
            raise Conflict(f"annotator {a.name!r} is already "
                           f"{'suspended' if suspended else 'active'}",
                           {"annotator_id": aid, "suspended": a.suspended})
        a.suspended = suspended
        a.suspended_by = actor if suspended else None
        a.suspended_at = utcnow() if suspended else None
        if suspended:                      # their open leases go back to the pool
            for r in s.scalars(select(Answer).where(Answer.annotator_id == aid,
                                                    Answer.status == "leased")):
                r.status, r.lease_expires_at = "released", utcnow()
        rows = s.scalars(select(Answer).where(Answer.annotator_id == aid,
                                              Answer.status == "answered")).all()
        return annotator_view(a, project, rows)


def gold_view(e: Example, classes) -> dict:
    return {"id": e.id, "external_id": e.external_id, "gold": e.gold,
            "label": e.gold_label, "label_name": label_name(classes, e.gold_label)}


def mark_gold(ctx: ServiceContext, pid: int, example_ids: list[int], gold: bool) -> dict:
    """Mark the examples as gold (their current label is trusted) or unmark them. Every
    id must be an example of the project (``BadInput`` otherwise; nothing changes)."""
    ids = sorted(set(int(i) for i in example_ids))
    with ctx.store.session() as s:
        project = project_row(s, pid, lock=True)
        rows = s.scalars(select(Example).where(Example.project_id == pid,
                                               Example.id.in_(ids))
                         .order_by(Example.id).with_for_update()).all()
        missing = sorted(set(ids) - {e.id for e in rows})
        if missing:
            raise BadInput("unknown examples", {"example_ids": [
                f"not examples of project {pid}: {missing[:20]}"]})
        for e in rows:
            e.gold = gold
            e.gold_label = e.label if gold else None
        return {"items": [gold_view(e, project.classes) for e in rows]}


def list_gold(ctx: ServiceContext, pid: int) -> dict:
    with ctx.store.session() as s:
        project = project_row(s, pid)
        rows = s.scalars(select(Example).where(Example.project_id == pid, Example.gold)
                         .order_by(Example.id)).all()
        return {"items": [gold_view(e, project.classes) for e in rows],
                "total": len(rows)}


def gold_count(s, pid: int) -> int:
    return s.scalar(select(func.count(Example.id)).where(Example.project_id == pid,
                                                         Example.gold)) or 0
