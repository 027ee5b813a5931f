"""The Celery tasks: one per job of the service's job table
(``cincer_service.service.jobs.JOBS``), each routed to its job's queue.

Each task runs inside the Flask app context (see ``tasks.celery_app.celery_init_app``) and
calls ``runner.run_job`` on the app's ``ServiceContext``. Jobs are idempotent and
acknowledged late, so a redelivered message is harmless. Only transient failures (database
or broker connection trouble, SQLite's "database is locked") are retried, with exponential
backoff; anything else is a bug or bad data and is left to the logs and the reconciler.
"""
from __future__ import annotations

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import shared_task
from flask import current_app

from cincer_service.service import jobs, runner

from .celery_app import clear_queued

TRANSIENT_ERRORS = (
    sqlalchemy.exc.OperationalError,      # lost connection, server restart, database locked
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,          # connection pool exhausted
    kombu.exceptions.OperationalError,    # broker unreachable while submitting follow-ups
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

JOB_OPTIONS = dict(bind=True, acks_late=True, autoretry_for=TRANSIENT_ERRORS,
                   retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=6)


def run_job(task, submission: jobs.Submission):
    """Run ``submission`` on the app's ``ServiceContext`` as worker ``task.request.hostname``;
    a job with progress reports PROGRESS states."""
    if submission.job is not jobs.RECONCILE:
        clear_queued(task.app, submission)
    ctx = current_app.extensions["cincer"]
    if task.request.hostname:
        ctx.worker_name = task.request.hostname
    if not submission.job.progress:
        return runner.run_job(ctx, submission)

    def progress(done, total, message=""):
        if task.request.id is not None:      # None when the task is called directly
            task.update_state(state="PROGRESS", meta={
                "done": float(done), "total": float(total), "message": str(message)})

    return runner.run_job(ctx, submission, progress=progress)


def job_task(job: jobs.Job):
    """The Celery task of ``job`` (registered under ``job.task_name``)."""
    options = dict(JOB_OPTIONS, name=job.task_name)
    if job.progress:
        options["ignore_result"] = False      # PROGRESS states go to the result backend

    def task(self, *values):
        return run_job(self, job.from_values(values))

    task.__name__ = task.__qualname__ = job.name
    task.__doc__ = f"Run the {job.name!r} job: {(job.run.__doc__ or '').splitlines()[0]}"
    return shared_task(**options)(task)


# One task per job in the service's job table.
TASKS = {name: job_task(job) for name, job in jobs.JOBS.items()}
