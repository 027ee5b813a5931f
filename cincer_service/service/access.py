"""Access: API tokens, the principal behind a request, and who may do what.

Tokens are stored as the SHA-256 of their secret; the secret is shown once, when minted.
Roles: ``admin`` (everything; the global admin token has no project), ``ingest``,
``annotator`` and ``viewer`` (read only). Every token may read its own project.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from .context import ServiceContext, project_row
from .errors import Forbidden, Unauthorized
from .store import Token

ROLES = ("admin", "ingest", "annotator", "viewer")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, its project (None for the admin) and role."""

    token_id: int
    project_id: int | None
    role: str
    name: str


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
        secret = secret or secrets.token_urlsafe(32)
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
    secret = secrets.token_urlsafe(32)
    with ctx.store.session() as s:
        project_row(s, pid)
        token = Token(project_id=pid, role=role, name=name or role,
                      secret_hash=hash_secret(secret))
        s.add(token)
        s.flush()
        return {"id": token.id, "project_id": pid, "role": role, "name": token.name,
                "token": secret, "created_at": token.created_at}
