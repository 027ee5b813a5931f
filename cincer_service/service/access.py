"""Access: API tokens, the principal behind a request, and who may do what.

Tokens are stored as the SHA-256 of their secret; the secret is shown once, when minted.
Roles: ``admin`` (everything; the global admin token has no project), ``ingest``,
``annotator`` and ``viewer`` (read only). Every token may read its own project.

A revoked token keeps its row (its id stays taken, so leases and answers recorded under it
never pass to a new token) but its stored hash is replaced by ``revoked:<id>``, which no
SHA-256 digest equals: it stops authenticating at once.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from .context import ServiceContext, project_child, project_row
from .errors import Conflict, Forbidden, Unauthorized
from .store import IdempotencyKey, Query, Token

ROLES = ("admin", "ingest", "annotator", "viewer")
REVOKED_PREFIX = "revoked:"          # a revoked token's ``secret_hash``: never a hex digest


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, its project (None for the admin) and role."""

    token_id: int
    project_id: int | None
    role: str
    name: str


def new_secret() -> str:
    """A fresh token secret. The prefix keeps it from starting with ``-`` (base64url may),
    which a command line would read as an option (``--token -abc``)."""
    return "cnc_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a token secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_admin_token(ctx: ServiceContext, secret: str | None = None) -> str | None:
    """Create the admin token on first start (or register ``secret``); the new secret is
    returned once, ``None`` when an admin token already existed."""
    with ctx.store.session() as s:
        if secret:
            if s.scalar(select(Token).where(Token.secret_hash == hash_secret(secret))):
                return None
        elif s.scalar(select(Token).where(Token.role == "admin", Token.project_id.is_(None))):
            return None
        secret = secret or new_secret()
        s.add(Token(project_id=None, role="admin", name="admin",
                    secret_hash=hash_secret(secret)))
    return secret


def authenticate(ctx: ServiceContext, secret: str | None) -> Principal:
    """The principal behind a bearer ``secret``; ``Unauthorized`` when missing or unknown."""
    if not secret:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    with ctx.store.session() as s:
        token = s.scalar(select(Token).where(Token.secret_hash == hash_secret(secret)))
        if token is None:
            raise Unauthorized("unknown token")
        return Principal(token.id, token.project_id, token.role, token.name)


def authorize(principal: Principal, pid: int | None, *roles: str) -> None:
    """Raise ``Forbidden`` unless ``principal`` may act on project ``pid`` in one of
    ``roles`` (no roles: any role of the project). The global admin may do anything."""
    if principal.role == "admin" and principal.project_id is None:
        return
    if pid is None or principal.project_id != pid:
        raise Forbidden("this token does not belong to that project"
                        if pid is not None else "only the admin token may do this")
    if roles and principal.role not in roles and principal.role != "admin":
        raise Forbidden(f"role {principal.role!r} may not do this; needs " + " or ".join(roles),
                        {"role": principal.role, "allowed": list(roles)})


def create_token(ctx: ServiceContext, pid: int, role: str, name: str) -> dict:
    """Mint a token of ``role`` for project ``pid``; the secret is in the answer only."""
    secret = new_secret()
    with ctx.store.session() as s:
        project_row(s, pid)
        token = Token(project_id=pid, role=role, name=name or role,
                      secret_hash=hash_secret(secret))
        s.add(token)
        s.flush()
        return {"id": token.id, "project_id": pid, "role": role, "name": token.name,
                "token": secret, "created_at": token.created_at}


def token_view(t: Token) -> dict:
    """A token as the admin sees it: never its secret or the secret's hash."""
    return {"id": t.id, "project_id": t.project_id, "role": t.role, "name": t.name,
            "created_at": t.created_at, "revoked": is_revoked(t)}


def is_revoked(t: Token) -> bool:
    """Whether ``t`` was revoked (its hash replaced by the revoked marker)."""
    return t.secret_hash.startswith(REVOKED_PREFIX)


def list_tokens(ctx: ServiceContext, pid: int) -> list[dict]:
    """Every token of project ``pid`` (revoked ones included, flagged), oldest first;
    ``NotFound`` when the project does not exist."""
    with ctx.store.session() as s:
        project_row(s, pid)
        return [token_view(t) for t in s.scalars(
            select(Token).where(Token.project_id == pid).order_by(Token.id))]


def revoke_token(ctx: ServiceContext, pid: int, tid: int) -> dict:
    """Revoke token ``tid`` of project ``pid``: it stops authenticating at once, the
    queries it holds leased are open again and its stored idempotent answers are dropped.

    ``NotFound`` when the project or the token (in that project) does not exist -- the
    global admin token belongs to no project, so it cannot be revoked here; ``Conflict``
    when the token is already revoked."""
    with ctx.store.session() as s:
        project_row(s, pid)
        token = project_child(s, Token, pid, tid, "token")
        if is_revoked(token):
            raise Conflict(f"token {tid} is already revoked", {"token_id": tid})
        token.secret_hash = f"{REVOKED_PREFIX}{token.id}"
        s.execute(update(Query).where(Query.project_id == pid, Query.status == "leased",
                                      Query.lease_holder == tid)
                  .values(status="open", lease_holder=None, lease_expires_at=None)
                  .execution_options(synchronize_session=False))
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.token_id == tid))
        s.flush()
        return token_view(token)
