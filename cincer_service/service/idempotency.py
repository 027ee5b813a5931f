"""Idempotency keys: a POST sent again with the same ``Idempotency-Key`` gets the stored
answer instead of being applied twice.

Keys are scoped to the token that sent them. A key reused for a different request (another
method, path or body) is a ``Conflict``. Only successful answers are kept: a failed request
may be retried with the same key and is then applied.
"""
from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .context import ServiceContext
from .errors import Conflict
from .store import IdempotencyKey


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request."""
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def recall(ctx: ServiceContext, token_id: int, key: str, print_: str) -> tuple | None:
    """``(status_code, response)`` stored for this key, or ``None`` when it is new."""
    with ctx.store.session() as s:
        row = s.scalar(select(IdempotencyKey).where(IdempotencyKey.token_id == token_id,
                                                    IdempotencyKey.key == key))
        if row is None:
            return None
        if row.fingerprint != print_:
            raise Conflict("this Idempotency-Key was used for a different request",
                           {"idempotency_key": key})
        return row.status_code, row.response


def remember(ctx: ServiceContext, token_id: int, key: str, print_: str, status_code: int,
             response) -> None:
    """Store a successful answer under the key (a concurrent twin may have stored it
    first, which is fine: both were applied idempotently by the use case itself)."""
    try:
        with ctx.store.session() as s:
            s.add(IdempotencyKey(token_id=token_id, key=key, fingerprint=print_,
                                 status_code=status_code, response=response))
    except IntegrityError:
        pass
