"""Idempotency keys: a POST sent again with the same ``Idempotency-Key`` gets the stored
answer instead of being applied twice.

A request reserves its key (a unique row, ``status_code`` 0 while it runs) before it is
applied, so concurrent twins cannot both apply it: a twin waits for the first answer and
replays it. Keys are scoped to the token that sent them. A key reused for a different
request (another method, path or body) is a ``Conflict``. Only successful answers are kept:
a failed request frees its key, and a retry with it is applied.
"""
from __future__ import annotations

import hashlib
import time

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from .context import ServiceContext
from .errors import Conflict
from .store import IdempotencyKey

IN_PROGRESS = 0
WAIT_SECONDS = 10.0          # how long a twin waits for the first request's answer


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request."""
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def reserve(ctx: ServiceContext, token_id: int, key: str, print_: str,
            wait: float = WAIT_SECONDS) -> tuple | None:
    """Reserve the key for this request: ``None`` when it is new (apply the request, then
    ``remember`` or ``release``), else the stored ``(status_code, response)`` to replay —
    waiting up to ``wait`` seconds for a twin still running (then a ``Conflict``)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with ctx.store.session() as s:
                s.add(IdempotencyKey(token_id=token_id, key=key, fingerprint=print_,
                                     status_code=IN_PROGRESS, response=None))
            return None
        except IntegrityError:
            pass
        with ctx.store.session() as s:
            row = s.scalar(select(IdempotencyKey).where(IdempotencyKey.token_id == token_id,
                                                        IdempotencyKey.key == key))
        if row is None:
            continue                     # freed between our insert and our read: try again
        if row.fingerprint != print_:
            raise Conflict("this Idempotency-Key was used for a different request",
                           {"idempotency_key": key})
        if row.status_code != IN_PROGRESS:
            return row.status_code, row.response
        if time.monotonic() > deadline:
            raise Conflict("a request with this Idempotency-Key is still being applied; "
                           "retry later", {"idempotency_key": key})
        time.sleep(0.05)


def remember(ctx: ServiceContext, token_id: int, key: str, status_code: int,
             response) -> None:
    """Store the successful answer under the reserved key."""
    with ctx.store.session() as s:
        s.execute(update(IdempotencyKey).where(IdempotencyKey.token_id == token_id,
                                               IdempotencyKey.key == key)
                  .values(status_code=status_code, response=response))


def release(ctx: ServiceContext, token_id: int, key: str) -> None:
    """Free a reserved key whose request failed, so that a retry is applied."""
    with ctx.store.session() as s:
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.token_id == token_id,
                                               IdempotencyKey.key == key,
                                               IdempotencyKey.status_code == IN_PROGRESS))
