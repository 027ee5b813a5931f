"""Verdicts inside the ingest request: the assistant's loop (``Prefer: wait=<seconds>``).

An assistant hears a correction from its user, ingests it and wants to know *while the user
is still there* whether the label contradicts what the model learned. The ingest use case
commits as always (its follow-ups submit ``jobs.SCREEN``); ``wait_for_verdicts`` then reads
the database every few milliseconds until each item has a verdict and each suspicious
item's pair is open (its counter-example found), or until the deadline. Whoever runs the
jobs (the embedded thread, Celery workers on other hosts) writes the same rows, so the wait
is the same in every deployment, and this module only reads, apart from leasing the pairs.

Per item:

* ``accepted``: screened, the margin below τ (or the model agrees): it joins the training set;
* ``suspicious``: the model confidently disagrees; ``query`` is its pair (``id`` and the
  ``counterexample`` as a leased query shows it, null while not yet found). The pair is
  leased to the caller (a compare-and-set from open to leased) when the caller may answer
  it (an ``admin`` or ``annotator`` token of the project), so nobody else gets it meanwhile;
* ``unscreened`` with a ``reason``: the project has no model yet, its screen job is backing
  off after failures, or the item is outside the screened stream (bootstrap, evaluation,
  hold-out, removed);
* ``pending``: not screened when the deadline passed (never an error).

Screening stores the margin, prediction and probabilities of every screened example
(``Example.screen_*``), accepted ones too, so the verdict reads them back. In the embedded
mode (jobs on this process's worker thread, which may be busy with a retrain) a request
that finds its items pending runs the ``screen`` and ``counterexample`` jobs itself once
(``run_inline``); the result is read back from the database the same way.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import and_, func, select, update

from . import freshness, jobs
from .access import Principal, authorize
from .context import ServiceContext, latest_version_number, project_row
from .dispatch import ThreadDispatcher
from .errors import BadInput, Forbidden
from .projects import label_name
from .queries import query_view
from .store import Example, JobBackoff, Query, utcnow

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 10.0       # the longest ``Prefer: wait`` honoured
MAX_WAIT_ITEMS = 100          # the largest batch that may wait for its verdicts
# Seconds between two reads of the database: soon at first (the embedded worker screens
# a small batch in a few milliseconds), then every 15 ms.
POLL_SCHEDULE = (0.002, 0.003, 0.005, 0.01)
POLL_SECONDS = 0.015
# Between two full reads a waiting request only counts what still waits (one small query);
# it reads everything again when nothing does, or after this many counts (a reason not to
# screen may have appeared meanwhile: a backoff), or at the deadline.
FULL_READ_EVERY = 8
# Embedded mode: the request runs the jobs itself at once rather than wait for the worker
# thread (handing the batch to the thread and polling for its rows cost a poll interval or
# two, and the thread may be busy with a retrain); the thread, running the same jobs, finds
# the rows already claimed.
INLINE_AFTER_SECONDS = 0.0

VERDICTS = ("accepted", "suspicious", "unscreened", "pending")
SET_ASIDE = {"evaluation": "in the evaluation set: never screened",
             "holdout": "in the hold-out set: never screened",
             "removed": "removed from the project"}


def check_wait(wait: float, n_items: int) -> None:
    """``BadInput`` when a batch of ``n_items`` may not wait (``MAX_WAIT_ITEMS``) or
    ``wait`` is outside ``0 < wait ≤ MAX_WAIT_SECONDS``."""
    if not 0 < wait <= MAX_WAIT_SECONDS:
        raise BadInput(f"wait must be more than 0 and at most {MAX_WAIT_SECONDS:g} seconds",
                       {"wait": [f"0 < wait <= {MAX_WAIT_SECONDS:g}"]})
    if n_items > MAX_WAIT_ITEMS:
        raise BadInput(f"at most {MAX_WAIT_ITEMS} items may wait for their verdicts (got "
                       f"{n_items}): send smaller batches or drop the wait",
                       {"items": [f"at most {MAX_WAIT_ITEMS} items with Prefer: wait; send "
                                  "smaller batches or drop the wait"]})


def may_answer(principal: Principal, pid: int) -> bool:
    """Whether ``principal`` may answer the project's queries (so a pair may be leased to
    it): an ``annotator`` or ``admin`` token."""
    try:
        authorize(principal, pid, "annotator")
    except Forbidden:
        return False
    return True


def wait_for_verdicts(ctx: ServiceContext, pid: int, results: list[dict],
                      principal: Principal, wait: float) -> list[dict]:
    """The ingest ``results`` (``[{id, status, outcome}]``) with each item's verdict, read
    until every item has one (and each suspicious item's pair is open) or ``wait`` seconds
    passed; adds ``verdict``, ``reason``, ``margin``, ``prediction``, ``prediction_name``,
    ``probabilities`` and ``query`` (suspicious items) to each result."""
    check_wait(wait, len(results))
    started = time.monotonic()
    deadline = started + wait
    lease = may_answer(principal, pid)
    ids = sorted({r["id"] for r in results})
    polls, inline = 0, embedded(ctx)
    hurry = inline and retraining(ctx, pid)      # the worker thread is busy training it
    while True:
        views, done = read_verdicts(ctx, pid, ids, principal if lease else None)
        if done or time.monotonic() >= deadline:
            break
        if inline and (hurry or time.monotonic() - started >= INLINE_AFTER_SECONDS):
            # The embedded worker thread is busy (a retrain?): run the jobs here too.
            inline = False
            run_inline(ctx, pid, views)
            continue
        # One connection for the counts (a pool checkout pings the server first).
        with ctx.store.engine.connect() as conn:
            for _ in range(FULL_READ_EVERY):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                pause = POLL_SCHEDULE[polls] if polls < len(POLL_SCHEDULE) else POLL_SECONDS
                polls += 1
                time.sleep(min(pause, remaining))
                if waiting_count(conn, pid, ids) == 0:
                    break
    return [{**r, **views[r["id"]]} for r in results]


def waiting_count(conn, pid: int, ids: list[int]) -> int:
    """How many of the items still wait: pending examples, and pairs of theirs still being
    computed. One query on connection ``conn``, whose transaction it ends (so the next
    count sees what committed meanwhile); a request polls it between full reads. It may
    count more than ``read_verdicts`` waits for (an older pair of an item still computing),
    never less: the periodic full read settles those."""
    pending = select(func.count()).select_from(Example).where(
        Example.project_id == pid, Example.id.in_(ids), Example.status == "pending")
    computing = select(func.count()).select_from(Query).where(
        Query.project_id == pid, Query.example_id.in_(ids), Query.status == "computing")
    try:
        return int(conn.execute(select(pending.scalar_subquery()
                                       + computing.scalar_subquery())).scalar_one())
    finally:
        conn.rollback()


def embedded(ctx: ServiceContext) -> bool:
    """Whether jobs run on this process's embedded worker thread (``ThreadDispatcher``):
    then a waiting request screens its items itself rather than queue behind a retrain."""
    return isinstance(ctx.dispatcher, ThreadDispatcher)


def retraining(ctx: ServiceContext, pid: int) -> bool:
    """Whether a retrain of the project holds its lease now (the worker is training it)."""
    with ctx.store.session() as s:
        until = project_row(s, pid).retrain_lease_until
    return until is not None and until > utcnow()


def run_inline(ctx: ServiceContext, pid: int, views: dict) -> None:
    """Screen the project's pending examples, then compute the counter-examples of this
    request's computing pairs, in the calling thread (embedded mode). Both jobs claim their
    rows with a compare-and-set, so the worker thread running them too is harmless; a
    failure is recorded for backoff as the worker would, and the next read reports it."""
    from .runner import run_job  # the runner imports every family
    try:
        run_job(ctx, jobs.SCREEN(pid))
        with ctx.store.session() as s:
            computing = s.scalars(select(Query.id).where(
                Query.project_id == pid, Query.status == "computing",
                Query.example_id.in_(list(views)))).all()
        for qid in computing:
            run_job(ctx, jobs.COUNTEREXAMPLE(qid))
    except Exception:
        log.exception("inline screening of project %s failed; the worker retries", pid)


def read_verdicts(ctx: ServiceContext, pid: int, ids: list[int],
                  holder: Principal | None = None) -> tuple[dict, bool]:
    """``({example id: verdict fields}, done)`` as the database says now; open pairs of
    suspicious items are leased to ``holder`` (when given) on the way. ``done`` when no item
    waits for screening or for its counter-example."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        rows = {e.id: e for e in s.scalars(select(Example).where(
            Example.project_id == pid, Example.id.in_(ids)))}
        doubted = [i for i, e in rows.items() if e.status in ("suspicious", "reviewed")]
        pairs: dict[int, Query] = {}
        if doubted:
            # An example's newest pair (a stream pair, or one an audit made).
            for q in s.scalars(select(Query).where(Query.project_id == pid,
                                                   Query.example_id.in_(doubted))
                               .order_by(Query.id)):
                pairs[q.example_id] = q
        waiting = [e for e in rows.values() if e.status == "pending"]
        why_unscreened = unscreened_reason(s, pid) if waiting else None
        if holder is not None:
            lease_open_pairs(ctx, s, pid, [q for q in pairs.values() if q.status == "open"],
                             holder)
        views, done = {}, True
        for eid in ids:
            e = rows.get(eid)
            q = pairs.get(eid)
            view = verdict_view(s, project, e, q, why_unscreened, holder)
            views[eid] = view
            if view["verdict"] == "pending" or (q is not None and q.status == "computing"):
                done = False
        return views, done


def unscreened_reason(s, pid: int) -> str | None:
    """Why the project's pending examples will not be screened soon: no model yet, or its
    screen job is backing off after failures; ``None`` when screening is on its way."""
    if latest_version_number(s, pid) is None:
        return ("no model yet: the project is still collecting its bootstrap set or "
                "training its first model")
    backoff = s.scalar(select(JobBackoff).where(JobBackoff.name == jobs.SCREEN.name,
                                                JobBackoff.arg == str(pid)))
    if backoff is not None:
        return (f"screening is failing ({backoff.failures} time(s) in a row, last error: "
                f"{backoff.last_error}); it is retried from "
                f"{backoff.retry_at.isoformat()}")
    return None


def lease_open_pairs(ctx: ServiceContext, s, pid: int, pairs: list[Query],
                     holder: Principal) -> None:
    """Lease each of ``pairs`` that is still available and fresh to ``holder`` (a
    compare-and-set UPDATE, as ``queries.lease_next_query`` does), and commit."""
    if not pairs:
        return
    now = utcnow()
    available = and_(freshness.available_condition(now),
                     freshness.fresh_condition(freshness.acceptable_version(s, pid, now)))
    leased = False
    for q in pairs:
        claimed = s.execute(update(Query).where(Query.id == q.id, available).values(
            status="leased", lease_holder=holder.token_id,
            lease_expires_at=now + timedelta(seconds=ctx.settings.lease_seconds))
            .execution_options(synchronize_session=False))
        leased |= claimed.rowcount == 1
    if leased:
        s.commit()
        for q in pairs:
            s.refresh(q)


def verdict_view(s, project, e: Example | None, q: Query | None, why_unscreened: str | None,
                 holder: Principal | None) -> dict:
    """One item's verdict fields."""
    view = {"verdict": "unscreened", "reason": None, "margin": None, "prediction": None,
            "prediction_name": None, "probabilities": None, "query": None}
    if e is None:                              # deleted meanwhile
        view["reason"] = "the example no longer exists"
        return view
    if e.screen_margin is not None:
        view.update(margin=e.screen_margin, prediction=e.screen_prediction,
                    probabilities=e.screen_probabilities)
    elif q is not None and e.status in ("suspicious", "reviewed"):
        view.update(margin=q.margin, prediction=q.prediction, probabilities=q.probabilities)
    view["prediction_name"] = label_name(project.classes, view["prediction"])
    if e.status == "pending":
        if why_unscreened is None:
            view["verdict"] = "pending"
        else:
            view["reason"] = why_unscreened
    elif e.status in SET_ASIDE:
        view["reason"] = SET_ASIDE[e.status]
    elif q is not None and e.status in ("suspicious", "reviewed"):
        view["verdict"] = "suspicious"
        view["query"] = pair_view(s, q, project, holder)
    elif e.screen_margin is not None:
        view["verdict"] = "accepted"
    else:
        view["reason"] = ("joined the training set without screening (the bootstrap set, "
                          "before the first model)" if e.status in ("accepted", "reviewed")
                          else f"status {e.status}: not screened")
    return view


def pair_view(s, q: Query, project, holder: Principal | None) -> dict:
    """A suspicious item's pair: ``id``, ``status``, whether it is leased to the caller and
    until when, and the ``counterexample`` as a leased query shows it (null while it is
    being computed, or when none was found: ``note`` says why)."""
    full = query_view(s, q, project) if q.status != "computing" else None
    mine = (holder is not None and q.status == "leased"
            and q.lease_holder == holder.token_id)
    return {"id": q.id, "status": q.status, "leased_to_you": mine,
            "lease_expires_at": q.lease_expires_at if mine else None,
            "counterexample": None if full is None else full["counterexample"],
            "note": q.note,
            "explanation": None if full is None else full["explanation"]}
