"""Jobs: the one table from job name to the function that runs it, and the reconciler.

Dispatchers (the embedded thread, Celery tasks) call ``run_job``; Celery reads ``JOBS`` to
name its tasks. Every job is idempotent and claims its rows with a compare-and-set UPDATE,
so a lost, repeated or killed job never corrupts anything: ``reconcile`` re-submits
whatever the database says is unfinished. A job that fails is recorded (``JobBackoff``)
and waits longer after each failure, capped, instead of looping; ``/stats`` shows it.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from sqlalchemy import and_, delete, or_, select

from . import audits, overview, screening, training, webhooks
from .context import ServiceContext
from .store import Audit, Example, JobBackoff, ModelVersion, Project, Query, utcnow

log = logging.getLogger(__name__)

# A job that keeps failing waits 5 s, 10 s, 20 s, ... at most 5 minutes between runs.
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 300.0


def reconcile(ctx: ServiceContext, _arg=None) -> dict:
    """Re-submit unfinished work: pending examples, computing queries, wanted retrains
    (once the bootstrap set is complete), queued or abandoned audits, due webhook
    deliveries. Jobs backing off after failures wait until their ``retry_at``. Returns how
    many of each kind were submitted."""
    now = utcnow()
    with ctx.store.session() as s:
        with_model = set(s.scalars(select(ModelVersion.project_id).distinct()))
        wanted = s.scalars(select(Project).where(
            Project.wanted_generation > Project.trained_generation,
            or_(Project.retrain_lease_until.is_(None),
                Project.retrain_lease_until < now))).all()
        work = {
            "retrain": [p.id for p in wanted
                        if p.id in with_model or training.bootstrap_progress(s, p)["ready"]],
            "screen": [pid for pid in s.scalars(select(Example.project_id).where(
                Example.status == "pending").distinct()) if pid in with_model],
            "counterexample": s.scalars(select(Query.id).where(Query.status == "computing")
                                        .order_by(Query.id)).all(),
            "audit": s.scalars(select(Audit.id).where(or_(
                Audit.status == "queued",
                and_(Audit.status == "running", Audit.lease_until < now)))).all(),
            "deliver_webhooks": webhooks.due_projects(s, now),
        }
        waiting = set(s.execute(select(JobBackoff.name, JobBackoff.arg)
                                .where(JobBackoff.retry_at > now)).all())
    submitted = Counter()
    for name, args in work.items():
        for arg in args:
            if (name, str(arg)) in waiting:
                continue
            ctx.submit(name, arg)
            submitted[name] += 1
    return dict(submitted)


def backoff_seconds(failures: int) -> float:
    """Seconds before a job that failed ``failures`` times in a row runs again (capped)."""
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failures - 1))


def record_failure(ctx: ServiceContext, name: str, arg, error: BaseException) -> None:
    """Count a failure of ``name(arg)`` and push its next run back; kept for ``/stats``."""
    now, key = utcnow(), str(arg)
    message = f"{type(error).__name__}: {error}"[:2000]
    with ctx.store.session() as s:
        row = s.scalar(select(JobBackoff).where(JobBackoff.name == name, JobBackoff.arg == key)
                       .with_for_update())
        if row is None:
            row = JobBackoff(name=name, arg=key, failures=0,
                             project_id=_project_of(s, name, arg))
            s.add(row)
        row.failures += 1
        row.last_error, row.updated_at = message, now
        row.retry_at = now + timedelta(seconds=backoff_seconds(row.failures))


def clear_failures(ctx: ServiceContext, name: str, arg) -> None:
    """Forget the failures of ``name(arg)`` after it succeeded."""
    with ctx.store.session() as s:
        s.execute(delete(JobBackoff).where(JobBackoff.name == name,
                                           JobBackoff.arg == str(arg)))


def failing_jobs(s, pid: int) -> list[dict]:
    """The project's jobs that are backing off after failures, for ``/stats``."""
    return [{"job": r.name, "arg": r.arg, "failures": r.failures, "last_error": r.last_error,
             "retry_at": r.retry_at.isoformat()}
            for r in s.scalars(select(JobBackoff).where(JobBackoff.project_id == pid)
                               .order_by(JobBackoff.id))]


def _project_of(s, name: str, arg) -> int | None:
    if name in ("retrain", "screen", "overview", "deliver_webhooks"):
        return arg
    row = {"counterexample": Query, "audit": Audit}.get(name)
    found = s.get(row, arg) if row is not None and arg is not None else None
    return found.project_id if found is not None else None


@dataclass(frozen=True)
class Job:
    """A background job: ``run(ctx, arg)``; ``progress`` jobs also take a callback."""

    run: Callable
    progress: bool = False


JOBS: dict[str, Job] = {
    "screen": Job(screening.screen_pending),
    "counterexample": Job(screening.compute_counterexample),
    "retrain": Job(training.retrain, progress=True),
    "audit": Job(audits.run_audit, progress=True),
    "overview": Job(overview.compute_overview, progress=True),
    "deliver_webhooks": Job(webhooks.deliver_webhooks),
    "reconcile": Job(reconcile),
}


def run_job(ctx: ServiceContext, name: str, arg=None, progress=None):
    """Run one background job by name, counting runs and failures on the context."""
    job = JOBS.get(name)
    if job is None:
        raise ValueError(f"unknown job {name!r}; one of {', '.join(JOBS)}")
    ctx.job_counts[name] += 1
    try:
        result = job.run(ctx, arg, progress=progress) if job.progress else job.run(ctx, arg)
    except Exception as exc:
        ctx.job_failures[name] += 1
        if name != "reconcile":
            try:
                record_failure(ctx, name, arg, exc)
            except Exception:           # the database itself is away: the log keeps it
                log.exception("could not record the failure of %s(%s)", name, arg)
        raise
    if name != "reconcile":
        clear_failures(ctx, name, arg)
    return result


# The Celery task of each job (``tasks/jobs.py`` registers them; the API sends by name).
TASK_NAMES = {name: f"tasks.{name}" for name in JOBS}


def queued_marker(name: str, arg) -> str:
    """The Redis key that says ``name(arg)`` is waiting in the Celery queue."""
    return f"cincer:queued:{name}:{arg}"
