"""Jobs: the one table from job name to the function that runs it, and the reconciler.

Dispatchers (the embedded thread, Celery tasks) call ``run_job``; Celery reads ``JOBS`` to
name its tasks. Every job is idempotent and claims its rows with a compare-and-set UPDATE,
so a lost, repeated or killed job never corrupts anything: ``reconcile`` re-submits
whatever the database says is unfinished.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import and_, or_, select

from . import audits, queries, training
from .context import ServiceContext
from .store import Audit, Example, ModelVersion, Project, Query, utcnow


def reconcile(ctx: ServiceContext, _arg=None) -> dict:
    """Re-submit unfinished work: pending examples, computing queries, wanted retrains,
    queued or abandoned audits. Returns how many jobs of each kind were submitted."""
    now = utcnow()
    with ctx.store.session() as s:
        with_model = set(s.scalars(select(ModelVersion.project_id).distinct()))
        work = {
            "retrain": s.scalars(select(Project.id).where(
                Project.wanted_generation > Project.trained_generation,
                or_(Project.retrain_lease_until.is_(None),
                    Project.retrain_lease_until < now))).all(),
            "screen": [pid for pid in s.scalars(select(Example.project_id).where(
                Example.status == "pending").distinct()) if pid in with_model],
            "counterexample": s.scalars(select(Query.id).where(Query.status == "computing")
                                        .order_by(Query.id)).all(),
            "audit": s.scalars(select(Audit.id).where(or_(
                Audit.status == "queued",
                and_(Audit.status == "running", Audit.lease_until < now)))).all(),
        }
    submitted = Counter()
    for name, args in work.items():
        for arg in args:
            ctx.submit(name, arg)
            submitted[name] += 1
    return dict(submitted)


@dataclass(frozen=True)
class Job:
    """A background job: ``run(ctx, arg)``; ``progress`` jobs also take a callback."""

    run: Callable
    progress: bool = False


JOBS: dict[str, Job] = {
    "screen": Job(queries.screen_pending),
    "counterexample": Job(queries.compute_counterexample),
    "retrain": Job(training.retrain, progress=True),
    "audit": Job(audits.run_audit, progress=True),
    "reconcile": Job(reconcile),
}


def run_job(ctx: ServiceContext, name: str, arg=None, progress=None):
    """Run one background job by name, counting runs and failures on the context."""
    job = JOBS.get(name)
    if job is None:
        raise ValueError(f"unknown job {name!r}; one of {', '.join(JOBS)}")
    ctx.job_counts[name] += 1
    try:
        if job.progress:
            return job.run(ctx, arg, progress=progress)
        return job.run(ctx, arg)
    except Exception:
        ctx.job_failures[name] += 1
        raise


# The Celery task of each job (``tasks/jobs.py`` registers them; the API sends by name).
TASK_NAMES = {name: f"tasks.{name}" for name in JOBS}


def queued_marker(name: str, arg) -> str:
    """The Redis key that says ``name(arg)`` is waiting in the Celery queue."""
    return f"cincer:queued:{name}:{arg}"
