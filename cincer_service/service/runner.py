"""Running jobs: the one place that knows every family's jobs.

Importing this module imports every family module, and so binds every job of ``jobs.JOBS``
to its run function. Dispatchers receive ``run_job`` bound to a context
(``inline_dispatcher``, ``thread_dispatcher``); Celery tasks call it too. ``reconcile``
(job ``reconcile``) re-submits whatever the database says is unfinished, asking each job
how to find its own unfinished work. A job that fails is recorded (``JobBackoff``) and waits
longer after each failure, capped, instead of looping; ``/stats`` shows it.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from functools import partial

from sqlalchemy import delete, select

from . import audits, label_studio, overview, screening, training, webhooks  # noqa: F401  (bind their jobs)
from .context import ServiceContext
from .dispatch import InlineDispatcher, ThreadDispatcher
from .jobs import JOBS, RECONCILE, Submission
from .store import JobBackoff, utcnow

log = logging.getLogger(__name__)

# A job that keeps failing waits 5 s, 10 s, 20 s, ... at most 5 minutes between runs.
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 300.0


def run_job(ctx: ServiceContext, submission: Submission, progress=None):
    """Run one submission, counting runs and failures on the context; a failure is
    recorded for backoff and raised."""
    job = submission.job
    ctx.job_counts[job.name] += 1
    try:
        if job.progress:
            result = job.run(ctx, *submission.values, progress=progress)
        else:
            result = job.run(ctx, *submission.values)
    except Exception as exc:
        ctx.job_failures[job.name] += 1
        if job is not RECONCILE:
            try:
                record_failure(ctx, submission, exc)
            except Exception:           # the database itself is away: the log keeps it
                log.exception("could not record the failure of %s", submission)
        raise
    if job is not RECONCILE:
        clear_failures(ctx, submission)
    return result


def reconcile(ctx: ServiceContext) -> dict:
    """Re-submit unfinished work, as each job finds it (pending examples, computing
    queries, wanted retrains, queued or abandoned audits and overviews, due webhook
    deliveries). Jobs backing off after failures wait until their ``retry_at``. Returns how
    many of each kind were submitted."""
    now = utcnow()
    with ctx.store.session() as s:
        work = [(job, job.unfinished(s, now)) for job in JOBS.values() if job is not RECONCILE]
        waiting = set(s.execute(select(JobBackoff.name, JobBackoff.arg)
                                .where(JobBackoff.retry_at > now)).all())
    submitted = Counter()
    for job, args in work:
        for values in args:
            submission = job(*(values if isinstance(values, tuple) else (values,)))
            if (job.name, submission.key()) in waiting:
                continue
            ctx.submit(submission)
            submitted[job.name] += 1
    return dict(submitted)


RECONCILE.bind(reconcile, unfinished=None)


def backoff_seconds(failures: int) -> float:
    """Seconds before a job that failed ``failures`` times in a row runs again (capped)."""
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failures - 1))


def record_failure(ctx: ServiceContext, submission: Submission, error: BaseException) -> None:
    """Count a failure of ``submission`` and push its next run back; kept for ``/stats``."""
    now, name, key = utcnow(), submission.job.name, submission.key()
    message = f"{type(error).__name__}: {error}"[:2000]
    with ctx.store.session() as s:
        row = s.scalar(select(JobBackoff).where(JobBackoff.name == name, JobBackoff.arg == key)
                       .with_for_update())
        if row is None:
            row = JobBackoff(name=name, arg=key, failures=0,
                             project_id=submission.arg.project_of(s))
            s.add(row)
        row.failures += 1
        row.last_error, row.updated_at = message, now
        row.retry_at = now + timedelta(seconds=backoff_seconds(row.failures))


def clear_failures(ctx: ServiceContext, submission: Submission) -> None:
    """Forget the failures of ``submission`` after it succeeded (a read, and a write only
    when there were failures: most jobs never fail, and a write waits for SQLite's lock)."""
    where = (JobBackoff.name == submission.job.name, JobBackoff.arg == submission.key())
    with ctx.store.session() as s:
        if s.scalar(select(JobBackoff.id).where(*where).limit(1)) is not None:
            s.execute(delete(JobBackoff).where(*where))


def unbound_jobs() -> list[str]:
    """Jobs without a run function or a way to find their unfinished work (should be
    none; a test checks it)."""
    return [job.name for job in JOBS.values()
            if job.run is None or (job.unfinished is None and job is not RECONCILE)]


def inline_dispatcher(ctx: ServiceContext) -> InlineDispatcher:
    """A dispatcher that runs each job inside ``submit`` on ``ctx``."""
    return InlineDispatcher(partial(run_job, ctx))


def thread_dispatcher(ctx: ServiceContext, interval: float | None = None) -> ThreadDispatcher:
    """The embedded worker thread on ``ctx`` (not started), reconciling every ``interval``
    seconds (default: the settings' ``reconcile_seconds``)."""
    return ThreadDispatcher(partial(run_job, ctx),
                            ctx.settings.reconcile_seconds if interval is None else interval)
