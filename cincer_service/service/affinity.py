"""Project affinity: a project's compute jobs go to the worker that holds its state.

Each live ``compute`` worker also consumes its own queue ``compute.<name>``. Who is live comes
from a ``members`` function: the Celery side reads a Redis membership set whose entries expire
a few seconds after a worker stops renewing them (``tasks.celery_app``), so a killed worker's
projects move within seconds; without one, the workers table (heartbeat younger than
``workers.ALIVE_SECONDS``, not retired). A
project's owner is chosen by rendezvous (highest-random-weight) hashing of the project id
over the live workers' names: every process that sends jobs agrees on it without talking to
the others, and when a worker stops or joins only the projects it owned (or now wins) move,
about ``1/k`` of them with ``k`` workers. With no live compute worker a job goes to the shared
``compute`` queue, which every compute worker also consumes.

Nothing depends on a message reaching its owner: jobs are idempotent and their work is in the
database, so a job sent to a worker that died meanwhile is sent again by the reconciler, to the
new owner, once the dead worker's heartbeat is too old (``Router`` sends again when the owner
changed, ``tasks.celery_app``). The owner keeps the project's model state warm (the classifier,
the mapped columnar files and the Fisher factor): one factor build per model version.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from .jobs import COMPUTE, ProjectArg, Submission
from .store import Worker, utcnow
from .workers import ALIVE_SECONDS

MEMBERSHIP_SECONDS = 2.0       # how long a process reuses its list of live workers
PROJECT_MEMO = 10_000          # query id -> project id lookups remembered (they never change)
RETIRED = datetime(1970, 1, 1, tzinfo=timezone.utc)


def worker_queue(name: str) -> str:
    """The queue only worker ``name`` consumes."""
    return f"{COMPUTE}.{name}"


def weight(project_id: int, worker: str) -> int:
    """The rendezvous weight of ``worker`` for ``project_id`` (a stable 64-bit hash)."""
    digest = hashlib.blake2b(f"{worker}\x00{int(project_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(project_id: int, workers) -> str | None:
    """The worker of ``workers`` that owns ``project_id`` (None if there are none)."""
    return max(workers, key=lambda w: (weight(project_id, w), w), default=None)


def live_compute_workers(store, now=None) -> list[str]:
    """Names of the registered workers that consume ``compute`` and beat recently."""
    now = now or utcnow()
    with store.session() as s:
        rows = s.execute(select(Worker.name, Worker.queues).where(
            Worker.heartbeat_at >= now - timedelta(seconds=ALIVE_SECONDS))).all()
    return sorted(name for name, queues in rows if COMPUTE in (queues or []))


def retire(store, name: str) -> None:
    """Worker ``name`` stopped: it leaves the membership now, not ``ALIVE_SECONDS`` later."""
    with store.session() as s:
        s.execute(update(Worker).where(Worker.name == name).values(heartbeat_at=RETIRED))


class Router:
    """The queue of each submission: a compute job to its project's owner's queue, anything
    else to its job's queue. Membership is read from the database at most every
    ``MEMBERSHIP_SECONDS``; a query's project is looked up once."""

    def __init__(self, store, membership_seconds: float = MEMBERSHIP_SECONDS, members=None):
        self.store = store
        self._read_members = members or (lambda: live_compute_workers(store))
        self.membership_seconds = membership_seconds
        self._lock = threading.Lock()
        self._members: list[str] = []
        self._read_at = float("-inf")
        self._projects: OrderedDict = OrderedDict()

    def members(self) -> list[str]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.membership_seconds:
                self._members = sorted(self._read_members())
                self._read_at = time.monotonic()
            return list(self._members)

    def forget_members(self) -> None:
        """Read the membership again on next use."""
        with self._lock:
            self._read_at = float("-inf")

    def project_of(self, submission: Submission) -> int | None:
        arg = submission.arg
        if isinstance(arg, ProjectArg):
            return arg.project_id
        key = (type(arg).__name__, submission.key())
        with self._lock:
            if key in self._projects:
                self._projects.move_to_end(key)
                return self._projects[key]
        with self.store.session() as s:
            pid = arg.project_of(s)
        if pid is not None:
            with self._lock:
                self._projects[key] = pid
                while len(self._projects) > PROJECT_MEMO:
                    self._projects.popitem(last=False)
        return pid

    def queue_for(self, submission: Submission) -> str:
        job = submission.job
        if job.queue != COMPUTE:
            return job.queue
        pid = self.project_of(submission)
        name = owner(pid, self.members()) if pid is not None else None
        return worker_queue(name) if name else COMPUTE
