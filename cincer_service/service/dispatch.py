"""How background jobs reach ``jobs.run_job``.

The database says what is unfinished, so every dispatcher may lose or repeat a message:
``reconcile`` re-submits, and every job is idempotent.
"""
from __future__ import annotations

import logging
import queue
import threading

log = logging.getLogger(__name__)


class Dispatcher:
    """Hands a job ``(name, arg)`` to whoever runs background work."""

    def submit(self, name: str, arg=None) -> None:
        raise NotImplementedError


class NullDispatcher(Dispatcher):
    """Drops jobs; a later ``reconcile`` (or a worker's periodic one) picks the work up."""

    def submit(self, name: str, arg=None) -> None:
        log.debug("no dispatcher: %s(%s) left to the reconciler", name, arg)


def run_job(ctx, name: str, arg=None):
    """``jobs.run_job``, imported late: the job modules import the context, which imports
    this module."""
    from .jobs import run_job as run
    return run(ctx, name, arg)


class InlineDispatcher(Dispatcher):
    """Runs each job synchronously inside ``submit`` (tests, scripts)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def submit(self, name: str, arg=None) -> None:
        run_job(self.ctx, name, arg)


class ThreadDispatcher(Dispatcher):
    """The embedded default: one background thread runs jobs in order and reconciles
    every ``interval`` seconds, so requests never wait for training."""

    def __init__(self, ctx, interval: float | None = None):
        self.ctx = ctx
        self.interval = ctx.settings.reconcile_seconds if interval is None else interval
        self._queue: queue.Queue = queue.Queue()
        self._queued: set = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False

    def submit(self, name: str, arg=None) -> None:
        with self._lock:
            if (name, arg) in self._queued:   # the same job is already waiting
                return
            self._queued.add((name, arg))
        self._queue.put((name, arg))

    def start(self) -> "ThreadDispatcher":
        self._thread = threading.Thread(target=self._run, name="cincer-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def idle(self) -> bool:
        return not self._busy and self._queue.empty() and not self._queued

    def _run(self) -> None:
        self.submit("reconcile")
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=self.interval)
            except queue.Empty:
                self.submit("reconcile")
                continue
            if job is None:
                break
            with self._lock:
                self._queued.discard(job)
                self._busy = True
            try:
                run_job(self.ctx, *job)
            except Exception:   # keep the worker alive; the reconciler retries
                log.exception("background job %s(%s) failed", *job)
            finally:
                self._busy = False
