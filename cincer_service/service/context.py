"""The shared context every service module works over, and the row lookups they share.

A ``ServiceContext`` owns the store, the settings, the dispatcher that runs background jobs,
the per-process model cache and the job counters. The use cases live in one module per
resource family (``access``, ``projects``, ``examples``, ``queries``, ``training``,
``audits``, ``reports``, ``jobs``); each takes the context as its first argument, so HTTP
handlers and background jobs call the same functions.
"""
from __future__ import annotations

import logging
import os
import socket
from collections import Counter

from sqlalchemy import func, select, update

from .dispatch import Dispatcher, NullDispatcher
from .errors import NotFound
from .jobs import Submission
from .model_cache import ModelCache
from .settings import Settings
from .store import Audit, Example, ModelVersion, Project, Query, Store

log = logging.getLogger(__name__)

TRAINING = ("accepted", "reviewed")          # example statuses that form the training set
EXAMPLE_STATUSES = ("pending", "accepted", "suspicious", "reviewed", "removed")


class ServiceContext:
    """Store, settings, dispatcher, model cache and job counters of one process."""

    def __init__(self, store: Store, dispatcher: Dispatcher | None = None,
                 settings: Settings | None = None):
        self.store = store
        self.settings = settings or Settings()
        self.dispatcher = dispatcher or NullDispatcher()
        self.models = ModelCache(int(self.settings.model_cache_mb * 2**20),
                                 state_dir=os.path.join(self.settings.data_dir, "state"))
        self.job_counts: Counter = Counter()
        self.job_failures: Counter = Counter()
        # Who runs jobs in this process, for the counter-examples they compute (a Celery
        # worker sets its node name; ``device`` is filled in when a model first runs).
        self.worker_name: str | None = None
        self.worker_device: str | None = None
        store.on_commit = self.submit

    def set_dispatcher(self, dispatcher: Dispatcher) -> None:
        """Route background jobs to ``dispatcher`` from now on."""
        self.dispatcher = dispatcher

    def worker_identity(self) -> tuple[str, str]:
        """``(worker name, device)`` of this process, for what its jobs compute."""
        if self.worker_device is None:
            from ..device import describe_device  # TensorFlow: only where jobs run
            self.worker_device = describe_device()["device"]
        return self.worker_name or default_worker_name(), self.worker_device

    def submit(self, submission: Submission) -> None:
        """Hand a job (``jobs.RETRAIN(pid)``) to the dispatcher; a failure is logged, the
        reconciler redoes it. Use cases record follow-ups with ``jobs.follow`` instead."""
        try:
            self.dispatcher.submit(submission)
        except Exception:
            log.exception("could not submit %s; the reconciler will", submission)


def default_worker_name() -> str:
    """``embedded-<pid>@<host>``: a process that runs jobs without registering a name."""
    return f"embedded-{os.getpid()}@{socket.gethostname()}"


def build_context(settings: Settings | None = None,
                  dispatcher: Dispatcher | None = None) -> ServiceContext:
    """A context on ``settings.database`` (data dir created, schema migrated)."""
    settings = settings or Settings.from_env()
    os.makedirs(settings.data_dir, exist_ok=True)
    store = Store(settings.database)
    store.upgrade()
    return ServiceContext(store, dispatcher, settings)


# -- row lookups shared by the families (each takes an open session) ----------------------
# How a transaction may hold its project. ``True``: exclusively, as every batch writer does
# (ingest, screening, overview actions, retrain). ``"share"``: many holders at once,
# excluding the exclusive ones; a plain answer holds it so, locks only its own examples (in id
# order), and bumps the project's counters in SQL (an UPDATE that waits only for another
# counter UPDATE). On PostgreSQL the lock is a transaction-level advisory lock, shared or
# exclusive, whose queue is fair (a waiting exclusive holder is not starved by sharers, as it
# would be behind row locks), plus FOR UPDATE on the row when exclusive; SQLite serialises
# its writers anyway.
PROJECT_LOCK_CLASS = 0x43494E50          # "CINP": the advisory lock's first key
PROJECT_LOCK_MODES = (True, "share")


def project_row(s, pid: int, lock: bool | str = False) -> Project:
    """The project, locked when ``lock`` (``True`` or ``"share"``, see
    ``PROJECT_LOCK_MODES``); ``NotFound`` when it does not exist."""
    if lock:
        if lock not in PROJECT_LOCK_MODES:
            raise ValueError(f"unknown project lock {lock!r}")
        dialect = s.get_bind().dialect.name
        if dialect == "postgresql":
            take = (func.pg_advisory_xact_lock_shared if lock == "share"
                    else func.pg_advisory_xact_lock)
            s.execute(select(take(PROJECT_LOCK_CLASS, pid % 2**31)))
        elif dialect == "sqlite":
            # SQLite has one writer and the driver begins a transaction only at the first
            # write: until then every read sees the latest commit and another writer may
            # commit in between (a label change would record a label already replaced).
            # A write first takes the database's write lock, so what is read next stays.
            s.execute(update(Project).where(Project.id == pid).values(name=Project.name)
                      .execution_options(synchronize_session=False))
    project = s.get(Project, pid, with_for_update=True if lock is True else None,
                    populate_existing=bool(lock) or None)
    if project is None:
        raise NotFound(f"project {pid} does not exist", {"project_id": pid})
    return project


def project_child(s, table, pid: int, row_id: int, what: str):
    """A row of ``table`` that belongs to project ``pid``; ``NotFound`` otherwise."""
    row = s.get(table, row_id)
    if row is None or row.project_id != pid:
        raise NotFound(f"{what} {row_id} does not exist in project {pid}",
                       {f"{what}_id": row_id})
    return row


def example_row(s, pid: int, eid: int) -> Example:
    """An example of project ``pid``; ``NotFound`` otherwise."""
    return project_child(s, Example, pid, eid, "example")


def query_row(s, pid: int, qid: int) -> Query:
    """A query of project ``pid``; ``NotFound`` otherwise."""
    return project_child(s, Query, pid, qid, "query")


def audit_row(s, pid: int, aid: int) -> Audit:
    """An audit of project ``pid``; ``NotFound`` otherwise."""
    return project_child(s, Audit, pid, aid, "audit")


def latest_version(s, pid: int) -> ModelVersion | None:
    """The project's newest model version, or ``None`` before the first model."""
    return s.scalar(select(ModelVersion).where(ModelVersion.project_id == pid)
                    .order_by(ModelVersion.version.desc()).limit(1))


def latest_version_number(s, pid: int) -> int | None:
    """The newest model version's number, without loading its weights."""
    return s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.project_id == pid))
