"""How background jobs reach a runner.

A dispatcher receives ``Submission``\\ s (``jobs``) and a *runner*, the callable that runs
one (``runner.run_job`` bound to a context), so it needs to know no job. The database says
what is unfinished, so every dispatcher may lose or repeat a message: the reconciler
re-submits, and every job is idempotent.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

from .jobs import RECONCILE, Submission

log = logging.getLogger(__name__)

Runner = Callable[[Submission], object]


class Dispatcher:
    """Hands a ``Submission`` to whoever runs background work."""

    def submit(self, submission: Submission) -> None:
        raise NotImplementedError


class NullDispatcher(Dispatcher):
    """Drops jobs; a later reconcile (or a worker's periodic one) picks the work up."""

    def submit(self, submission: Submission) -> None:
        log.debug("no dispatcher: %s left to the reconciler", submission)


class InlineDispatcher(Dispatcher):
    """Runs each job synchronously inside ``submit`` (tests, scripts, simulations)."""

    def __init__(self, run: Runner):
        self.run = run

    def submit(self, submission: Submission) -> None:
        self.run(submission)


class ThreadDispatcher(Dispatcher):
    """The embedded default: one background thread runs jobs in order and reconciles
    every ``interval`` seconds, so requests never wait for training."""

    def __init__(self, run: Runner, interval: float):
        self.run = run
        self.interval = interval
        self._queue: queue.Queue = queue.Queue()
        self._queued: set = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False

    def submit(self, submission: Submission) -> None:
        key = (submission.job.name, submission.key())
        with self._lock:
            if key in self._queued:   # the same job is already waiting
                return
            self._queued.add(key)
        self._queue.put(submission)

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
        self.submit(RECONCILE())
        while not self._stop.is_set():
            try:
                submission = self._queue.get(timeout=self.interval)
            except queue.Empty:
                self.submit(RECONCILE())
                continue
            if submission is None:
                break
            with self._lock:
                self._queued.discard((submission.job.name, submission.key()))
                self._busy = True
            try:
                self.run(submission)
            except Exception:   # keep the worker alive; the reconciler retries
                log.exception("background job %s failed", submission)
            finally:
                self._busy = False
