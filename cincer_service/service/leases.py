"""Leases on a row, tied to the worker that holds them.

A job that works for long (a retrain, an audit) claims its row by writing ``until`` (a short
expiry) and ``holder`` (a token naming this worker) in one compare-and-set UPDATE, and a
heartbeat thread renews ``until`` while the work runs. A worker killed with SIGKILL stops
renewing, so its lease runs out within ``seconds`` and the reconciler hands the job to
another worker; a worker that lost its lease finds out before it writes its result.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy import or_, update

from .store import utcnow

log = logging.getLogger(__name__)


def holder_name() -> str:
    """A lease holder token unique to this process and claim (host, pid, random)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class RowLease:
    """A renewable lease on the ``until``/``holder`` columns of one row of ``table``."""

    def __init__(self, store, table, row_id: int, seconds: float, until: str = "lease_until",
                 holder: str = "lease_holder"):
        self.store, self.table, self.row_id, self.seconds = store, table, row_id, seconds
        self.until, self.holder_column = getattr(table, until), getattr(table, holder)
        self.holder = holder_name()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _values(self, now) -> dict:
        return {self.until.key: now + timedelta(seconds=self.seconds),
                self.holder_column.key: self.holder}

    def claim(self, *conditions, **values) -> bool:
        """Take the lease when it is free or expired and ``conditions`` hold (also setting
        ``values``); starts the heartbeat. False when someone else holds it."""
        now = utcnow()
        with self.store.session() as s:
            claimed = s.execute(update(self.table).where(
                self.table.id == self.row_id, *conditions,
                or_(self.until.is_(None), self.until < now))
                .values(**self._values(now), **values)
                .execution_options(synchronize_session=False))
            if claimed.rowcount != 1:
                return False
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"lease-{self.table.__tablename__}-{self.row_id}")
        self._thread.start()
        return True

    def held_by_me(self):
        """The WHERE clause that matches the row only while this worker holds the lease."""
        return (self.table.id == self.row_id) & (self.holder_column == self.holder)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                with self.store.session() as s:
                    renewed = s.execute(update(self.table).where(self.held_by_me())
                                        .values(**self._values(utcnow()))
                                        .execution_options(synchronize_session=False))
                if renewed.rowcount != 1:
                    self.lost = True
                    log.warning("lost the lease on %s %s", self.table.__tablename__,
                                self.row_id)
                    return
            except Exception:            # the database hiccuped: try again next beat
                log.exception("could not renew the lease on %s %s",
                              self.table.__tablename__, self.row_id)

    def release_values(self) -> dict:
        """Column values that free the lease (to combine with a result's UPDATE)."""
        return {self.until.key: None, self.holder_column.key: None}

    def stop(self) -> None:
        """Stop renewing (the row keeps whatever the last UPDATE wrote)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def release(self) -> None:
        """Stop renewing and free the lease if this worker still holds it."""
        self.stop()
        with self.store.session() as s:
            s.execute(update(self.table).where(self.held_by_me())
                      .values(**self.release_values())
                      .execution_options(synchronize_session=False))
