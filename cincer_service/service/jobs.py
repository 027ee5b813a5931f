"""The job table: every background job of the service, defined once.

A ``Job`` holds its name, its argument type (``ProjectArg``, ``QueryArg``, ``AuditArg`` or
``NoArg``: each knows its project, its key and how to find the keys of one project's jobs),
its Celery queue, whether it reports progress and, once its family module has bound them,
its run function and how the reconciler finds its unfinished work. Calling a job makes a
``Submission`` (job + argument): the only thing callers hand to ``ctx.submit`` or record
with ``follow``. Task names, the "already queued" marker, the reconciler's list and the
delete cascade are all derived from ``JOBS``.

This module imports only the store, so every family can import it; the families bind their
run functions (``jobs.RETRAIN.bind(retrain, unfinished=...)``) and ``runner`` imports all of
them and runs jobs. No module here imports ``runner`` except the dispatcher's owners.

Follow-up work: a use case calls ``follow(s, jobs.RETRAIN(pid))`` inside its transaction;
the store submits it once that transaction commits and drops it on rollback
(``Store.session``).
"""
from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Callable, ClassVar

from sqlalchemy import String, cast, select

from .store import PENDING_FOLLOWUPS, Audit, JobBackoff, Query

COMPUTE = "compute"          # counter-examples, screening, retrains: the GPU host's queue
BACKGROUND = "background"    # audits, overviews, webhooks, the reconciler: CPU hosts
QUEUES = (COMPUTE, BACKGROUND)
# Within a queue, lower runs first (the broker keeps one list per level): what an annotator
# or an assistant waits for comes before bulk work, so a counter-example job sent again after
# its worker was killed does not wait behind a backlog of screens and retrains.
PRIORITIES = {"interactive": 0, "default": 5, "bulk": 9}

# The most rows of one kind (oldest first) a reconcile pass submits again. A stream of a
# million examples leaves some 200k queries computing; sending each again every few seconds
# (a routing read and a broker call apiece) kept a worker busy with nothing else. The next
# rows are looked at once the first ones are done.
RECONCILE_WINDOW = 1000


# -- argument types ------------------------------------------------------------------------
@dataclass(frozen=True)
class NoArg:
    """A job without an argument (the reconciler)."""

    def key(self) -> str:
        return ""

    def project_of(self, s) -> int | None:
        return None

    @classmethod
    def keys_of_project(cls, pid: int):
        return []


@dataclass(frozen=True)
class ProjectArg:
    """A job over one project."""

    project_id: int

    def key(self) -> str:
        return str(self.project_id)

    def project_of(self, s) -> int | None:
        return self.project_id

    @classmethod
    def keys_of_project(cls, pid: int):
        return [str(pid)]


@dataclass(frozen=True)
class _RowArg:
    """A job over one row of ``table`` (which has a ``project_id``)."""

    table: ClassVar = None

    def key(self) -> str:
        return str(astuple(self)[0])

    def project_of(self, s) -> int | None:
        row = s.get(self.table, astuple(self)[0])
        return None if row is None else row.project_id

    @classmethod
    def keys_of_project(cls, pid: int):
        return select(cast(cls.table.id, String)).where(cls.table.project_id == pid)


@dataclass(frozen=True)
class QueryArg(_RowArg):
    """A job over one query."""

    table: ClassVar = Query
    query_id: int


@dataclass(frozen=True)
class AuditArg(_RowArg):
    """A job over one audit."""

    table: ClassVar = Audit
    audit_id: int


# -- jobs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    """One job with its argument, as dispatchers send it."""

    job: "Job"
    arg: object

    @property
    def values(self) -> tuple:
        return astuple(self.arg)

    def key(self) -> str:
        return self.arg.key()

    def marker(self) -> str:
        """The broker key that says this submission is waiting in a queue."""
        return f"cincer:queued:{self.job.name}:{self.key()}"

    def __str__(self) -> str:
        return f"{self.job.name}({self.key()})"


class Job:
    """A background job (see the module docstring)."""

    def __init__(self, name: str, arg: type, queue: str, progress: bool = False,
                 priority: str = "default"):
        if queue not in QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        self.name, self.arg, self.queue, self.progress = name, arg, queue, progress
        self.priority = PRIORITIES[priority]
        self.run: Callable | None = None
        self.unfinished: Callable | None = None

    def __call__(self, *values) -> Submission:
        return Submission(self, self.arg(*values))

    def __repr__(self) -> str:
        return f"Job({self.name!r}, {self.arg.__name__}, queue={self.queue!r})"

    @property
    def task_name(self) -> str:
        """The Celery task that runs this job."""
        return f"tasks.{self.name}"

    def bind(self, run: Callable, unfinished: Callable | None) -> Callable:
        """Attach the run function ``run(ctx, *arg values[, progress=])`` and
        ``unfinished(s, now) -> [arg values]``, what the reconciler re-submits (``None``
        only for the reconciler itself). Returns ``run``."""
        self.run, self.unfinished = run, unfinished
        return run

    def from_values(self, values) -> Submission:
        """The submission for a task's JSON arguments."""
        return self(*values)


SCREEN = Job("screen", ProjectArg, COMPUTE)
COUNTEREXAMPLE = Job("counterexample", QueryArg, COMPUTE, priority="interactive")
RETRAIN = Job("retrain", ProjectArg, COMPUTE, progress=True, priority="bulk")
REFRESH = Job("refresh", ProjectArg, COMPUTE)
AUDIT = Job("audit", AuditArg, BACKGROUND, progress=True, priority="bulk")
OVERVIEW = Job("overview", ProjectArg, BACKGROUND, progress=True, priority="bulk")
DELIVER_WEBHOOKS = Job("deliver_webhooks", ProjectArg, BACKGROUND)
RECONCILE = Job("reconcile", NoArg, BACKGROUND, priority="interactive")
LABEL_STUDIO_SYNC = Job("label_studio_sync", ProjectArg, BACKGROUND)   # service.label_studio

JOBS: dict[str, Job] = {job.name: job for job in (
    SCREEN, COUNTEREXAMPLE, RETRAIN, REFRESH, AUDIT, OVERVIEW, DELIVER_WEBHOOKS, RECONCILE,
    LABEL_STUDIO_SYNC)}


def by_name(name: str) -> Job:
    """The job called ``name``; ``ValueError`` for an unknown one."""
    job = JOBS.get(name)
    if job is None:
        raise ValueError(f"unknown job {name!r}; one of {', '.join(JOBS)}")
    return job


def task_routes() -> dict:
    """Celery's routing table: each job's task to its queue."""
    return {job.task_name: {"queue": job.queue} for job in JOBS.values()}


# -- follow-up work ------------------------------------------------------------------------
def follow(s, submission: Submission) -> None:
    """Submit ``submission`` once the transaction of session ``s`` commits (dropped on
    rollback; the same submission twice is sent once)."""
    if not s.in_transaction():
        s.begin()               # so that a rollback before any statement drops it too
    s.info.setdefault(PENDING_FOLLOWUPS, {})[(submission.job.name, submission.key())] = submission


def failing_jobs(s, pid: int) -> list[dict]:
    """The project's jobs that are backing off after failures, for ``/stats``."""
    return [{"job": r.name, "arg": r.arg, "failures": r.failures, "last_error": r.last_error,
             "retry_at": r.retry_at.isoformat()}
            for r in s.scalars(select(JobBackoff).where(JobBackoff.project_id == pid)
                               .order_by(JobBackoff.id))]
