"""Workers: the processes that run background jobs, as ``/api/v1/workers`` lists them.

Each worker (a Celery worker's main process, or the embedded worker thread of
``cincer-service serve``) registers at start-up with its queues and its device (GPU or CPU,
from TensorFlow) and then beats every ``HEARTBEAT_SECONDS``; a worker whose heartbeat is
older than ``ALIVE_SECONDS`` is shown as gone. Counter-examples record the worker and device
that computed them (``Query.computed_by``, ``computed_on``).
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import select, update

from ..device import describe_device
from .context import ServiceContext, default_worker_name
from .jobs import QUEUES
from .store import Worker, utcnow

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS


def worker_view(w: Worker, now) -> dict:
    """A worker as the API shows it."""
    return {"name": w.name, "queues": list(w.queues), "device": w.device,
            "device_name": w.device_name, "started_at": w.started_at,
            "last_heartbeat": w.heartbeat_at,
            "alive": w.heartbeat_at >= now - timedelta(seconds=ALIVE_SECONDS)}


def register_worker(ctx: ServiceContext, name: str, queues, device: dict) -> dict:
    """Record (or refresh) worker ``name`` with its ``queues`` and ``device``
    (``cincer_service.device.describe_device()``); the context's jobs are then marked as
    computed by it."""
    now = utcnow()
    ctx.worker_name, ctx.worker_device = name, device["device"]
    with ctx.store.session() as s:
        row = s.scalar(select(Worker).where(Worker.name == name))
        if row is None:
            row = Worker(name=name)
            s.add(row)
        row.queues, row.device, row.device_name = list(queues), device["device"], device.get("name")
        row.started_at = row.heartbeat_at = now
        s.flush()
        return worker_view(row, now)


def heartbeat(ctx: ServiceContext, name: str) -> None:
    """Worker ``name`` is alive now."""
    with ctx.store.session() as s:
        s.execute(update(Worker).where(Worker.name == name).values(heartbeat_at=utcnow()))


def list_workers(ctx: ServiceContext) -> list[dict]:
    """Every worker that ever registered, the most recently seen first."""
    now = utcnow()
    with ctx.store.session() as s:
        return [worker_view(w, now) for w in s.scalars(
            select(Worker).order_by(Worker.heartbeat_at.desc(), Worker.id))]


def start_heartbeat(ctx: ServiceContext, name: str,
                    interval: float = HEARTBEAT_SECONDS) -> threading.Event:
    """Beat for worker ``name`` from a daemon thread until the returned event is set."""
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            try:
                heartbeat(ctx, name)
            except Exception:            # the database is away: the next beat tries again
                log.warning("worker %s: heartbeat failed", name, exc_info=True)

    threading.Thread(target=beat, name="cincer-heartbeat", daemon=True).start()
    return stop


def register_embedded_worker(ctx: ServiceContext) -> threading.Thread:
    """Register this process's embedded worker thread (both queues) from a daemon thread:
    reading the device imports TensorFlow, which the request path never waits for."""
    def register():
        try:
            name = default_worker_name()
            register_worker(ctx, name, QUEUES, describe_device())
            start_heartbeat(ctx, name)
        except Exception:
            log.warning("could not register the embedded worker", exc_info=True)

    thread = threading.Thread(target=register, name="cincer-register", daemon=True)
    thread.start()
    return thread
