"""The Celery tasks: one per background job of ``cincer_service.service.jobs.JOBS``.

Each task runs inside the Flask app context (see ``api.background.celery_init_app``) and
calls ``jobs.run_job(ctx, name, arg)`` on the app's ``ServiceContext``. Jobs are idempotent and
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

from cincer_service.service import jobs
from cincer_service.service.jobs import TASK_NAMES, queued_marker

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


def clear_queued(celery_app, name: str, arg) -> None:
    """Called by a task as it starts: a later submission of the same job is queued again."""
    try:
        client = redis.Redis.from_url(celery_app.conf.broker_url, socket_timeout=2,
                                      socket_connect_timeout=2)
        with client:
            client.delete(queued_marker(name, arg))
    except redis.exceptions.RedisError:
        pass


def run_job(task, name: str, arg=None, report_progress: bool = False):
    """Run ``name(arg)`` on the app's ``ServiceContext``; optionally report PROGRESS."""
    if name != "reconcile":
        clear_queued(task.app, name, arg)
    ctx = current_app.extensions["cincer"]
    if not report_progress:
        return jobs.run_job(ctx, name, arg)

    def progress(done, total, message=""):
        if task.request.id is not None:      # None when the task is called directly
            task.update_state(state="PROGRESS", meta={
                "done": float(done), "total": float(total), "message": str(message)})

    return jobs.run_job(ctx, name, arg, progress=progress)


def job_task(name: str):
    """The Celery task of job ``name`` (registered under ``TASK_NAMES[name]``)."""
    job = jobs.JOBS[name]
    options = dict(JOB_OPTIONS, name=TASK_NAMES[name])
    if job.progress:
        options["ignore_result"] = False      # PROGRESS states go to the result backend

    def task(self, arg=None):
        return run_job(self, name, arg, report_progress=job.progress)

    task.__name__ = task.__qualname__ = name
    task.__doc__ = f"Run the {name!r} job: {(job.run.__doc__ or '').splitlines()[0]}"
    return shared_task(**options)(task)


# One task per job in the service's job table.
TASKS = {name: job_task(name) for name in jobs.JOBS}
