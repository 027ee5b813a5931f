"""Freshness: every pair an annotator leases is true to the current model and labels.

A pair is *fresh* when it was built under the newest model version (or the one before it
while the newest is younger than ``GRACE_SECONDS`` and may still be building its factor)
and nobody labelled either side since (``Query.labels_changed_at``, set by
``labels.change_labels``). Leases hand out fresh pairs only (``fresh_condition``). Stale
open pairs are rebuilt by the ``refresh`` job (``screening.refresh_queries``), which runs after each
new model version and after label changes that touch open pairs, and which the reconciler
finds: the example's margin is checked again under the current model, and the
counter-example is chosen again with the current labels. A pair that lost its reason
closes itself (status ``closed``):

* ``resolved_by_model``: a stream example is no longer suspicious under the current model
  (it joins the training set, as screening would have let it);
* ``answered_elsewhere``: a person labelled the example meanwhile (as the other side of
  another pair, or in the overview).

Counter-examples are chosen among the training examples nobody labelled or confirmed and
that no other open pair shows (``busy_examples``), so no example is in two open pairs and
no counter-example repeats among them; the strategy's ranking then gives the next best.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update

from .context import project_row
from .labels import REMOVED
from .store import Example, ModelVersion, Project, Query, utcnow

GRACE_SECONDS = 5.0           # a newer version this young may still be building its factor
CLOSED = "closed"
RESOLVED_BY_MODEL = "resolved_by_model"
ANSWERED_ELSEWHERE = "answered_elsewhere"
CLOSE_REASONS = (RESOLVED_BY_MODEL, ANSWERED_ELSEWHERE)
PAIRED = ("computing", "open", "leased",     # statuses of a query that shows its examples
          "collecting")                  # (several answers: service.crowd)
COMPUTING = "computing"                  # waiting for its counter-example
SHOWING = tuple(status for status in PAIRED if status != COMPUTING)
STREAM = "stream"                        # a query's origin: screening the stream


def acceptable_version(s, pid: int, now=None) -> int | None:
    """The oldest model version a leased pair may be built under: the newest, or the one
    before it while the newest is younger than ``GRACE_SECONDS``."""
    now = now or utcnow()
    rows = s.execute(select(ModelVersion.version, ModelVersion.created_at)
                     .where(ModelVersion.project_id == pid)
                     .order_by(ModelVersion.version.desc()).limit(2)).all()
    if not rows:
        return None
    if len(rows) == 2 and rows[0].created_at > now - timedelta(seconds=GRACE_SECONDS):
        return rows[1].version
    return rows[0].version


def available_condition(now):
    """SQL: open, or leased under a lease that ran out."""
    return or_(Query.status == "open",
               and_(Query.status == "leased", Query.lease_expires_at < now))


def fresh_condition(min_version: int | None):
    """SQL: built under ``min_version`` or newer, and no side labelled since."""
    return and_(Query.labels_changed_at.is_(None),
                Query.model_version >= (min_version if min_version is not None else 0))


def available(q: Query, statuses: tuple, now) -> bool:
    """Whether ``q`` may be (re)built now: in ``statuses`` (``leased`` counts only once its
    lease ran out: a pair is never changed while someone holds it)."""
    if q.status == "leased":
        return "open" in statuses and q.lease_expires_at is not None \
            and q.lease_expires_at < now
    return q.status in statuses


def unchanged(seen: dict) -> list:
    """SQL conditions: the query still has the status, labels mark and model version read
    in ``seen`` (a compare-and-set for writes that were computed outside locks)."""
    mark = seen["labels_changed_at"]
    return [Query.status == seen["status"], Query.model_version == seen["model_version"],
            Query.labels_changed_at.is_(None) if mark is None
            else Query.labels_changed_at == mark]


def busy_examples(s, pid: int, but: int | None = None,
                  within: tuple[int, int] | None = None) -> set[int]:
    """The examples another pair of the project shows, among those a new pair may pick:
    both sides of open, leased and collecting pairs, and the example of a computing pair
    that is not from the stream; never query ``but``'s. With ``within`` (the lowest and
    highest id of the candidates, a version's training set), only the ids in that range:
    the stream's examples that open pairs show lie past it, and at 9k open pairs reading
    them was about half of each counter-example job.

    A computing stream pair's example is left out. It is suspicious, so no training set
    (where counter-examples and audit suspects come from) holds it, and once a person labels
    it, it is confirmed and excluded as such; it has no counter-example yet. A stream of a
    million examples leaves some 200k such pairs computing: reading them for every
    counter-example took 1.0-1.6 s (``docs/scaling.md``)."""
    others = [Query.id != but] if but is not None else []
    shown, computing = [], []
    if within is not None:
        lo, hi = within
        shown = [or_(Query.example_id.between(lo, hi), Query.counterexample_id.between(lo, hi))]
        computing = [Query.example_id.between(lo, hi)]
    rows = s.execute(select(Query.example_id, Query.counterexample_id).where(
        Query.project_id == pid, Query.status.in_(SHOWING), *others, *shown)).all()
    busy = {i for row in rows for i in row if i is not None} | set(s.scalars(
        select(Query.example_id).where(Query.project_id == pid, Query.status == COMPUTING,
                                       Query.origin != STREAM, *others, *computing)))
    return busy if within is None else {i for i in busy if lo <= i <= hi}


def answered_elsewhere(example) -> str | None:
    """``answered_elsewhere`` when a person labelled or removed the example since its pair
    was made (a pair is never made for a confirmed example)."""
    return ANSWERED_ELSEWHERE if example.confirmed or example.status == REMOVED else None


def resolved_by_model(q: Query, project, prediction: int, label: int,
                      margin: float) -> str | None:
    """``resolved_by_model`` when the current model no longer doubts a stream pair's label:
    its margin fell below the τ it was screened with (the project's τ for older rows).

    Audit and bootstrap pairs never close this way: their examples are in the training
    set, so a retrained model tends to agree with their labels whether or not they are
    right (it fits them), and the audit's suspicion never rested on the margin. On digits
    (service-sim, seed 0, priority) the same rule for them closed 12 bootstrap pairs, 8 of
    them planted errors."""
    if q.origin != STREAM:
        return None
    threshold = q.threshold if q.threshold is not None else project.threshold
    return RESOLVED_BY_MODEL if prediction == label or margin < threshold else None


def close(s, q: Query, seen: dict, reason: str, now) -> bool:
    """Close ``q`` for ``reason`` unless someone changed it since ``seen``; kept in the
    history, never leased again. An example the model no longer doubts joins the training
    set, as screening would have let it (``accepted``, a new generation)."""
    project_row(s, q.project_id, lock=True)          # the lock order: project, queries, ...
    closed = s.execute(update(Query).where(Query.id == q.id, *unchanged(seen)).values(
        status=CLOSED, closed_reason=reason, closed_at=now, lease_holder=None,
        lease_expires_at=None).execution_options(synchronize_session=False))
    if closed.rowcount != 1:
        return False
    if reason == RESOLVED_BY_MODEL:
        accepted = s.execute(update(Example).where(
            Example.id == q.example_id, Example.status == "suspicious")
            .values(status="accepted", updated_at=now)
            .execution_options(synchronize_session=False))
        if accepted.rowcount:
            s.execute(update(Project).where(Project.id == q.project_id)
                      .values(generation=Project.generation + 1))
    return True


def stale_ids(s, pid: int, now=None) -> list[int]:
    """The project's available queries that are not fresh, the most valuable first (the
    refresh rebuilds first what the queue would hand out first)."""
    now = now or utcnow()
    newest = s.scalar(select(func.max(ModelVersion.version))
                      .where(ModelVersion.project_id == pid))
    if newest is None:
        return []
    return s.scalars(select(Query.id).where(
        Query.project_id == pid, available_condition(now),
        or_(Query.labels_changed_at.is_not(None), Query.model_version < newest))
        .order_by(func.coalesce(Query.priority, 0.0).desc(), Query.id)).all()


def stale_projects(s, now) -> list[int]:
    """Projects with stale available pairs (the reconciler's ``refresh`` work)."""
    newest = (select(ModelVersion.project_id, func.max(ModelVersion.version).label("v"))
              .group_by(ModelVersion.project_id).subquery())
    return s.scalars(select(Query.project_id).join(newest, newest.c.project_id == Query.project_id)
                     .where(available_condition(now),
                            or_(Query.labels_changed_at.is_not(None),
                                Query.model_version < newest.c.v))
                     .distinct().order_by(Query.project_id)).all()
