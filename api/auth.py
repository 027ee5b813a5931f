"""Bearer-token authentication and role checks, delegated to the service.

``@requires("admin")`` on a view authenticates the caller before the body is parsed (so a
request without a token gets 401, not 422) and authorises it for the URL's ``pid``; with no
roles any token of the project (or the admin token) may call.
"""
from __future__ import annotations

import functools
from copy import deepcopy

from flask import g, request

from cincer_service.service import Principal, Unauthorized, access

from .extensions import get_context


def bearer_secret() -> str | None:
    """The token from ``Authorization: Bearer <token>``; ``None`` when absent."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("malformed Authorization header: send 'Authorization: Bearer <token>'")
    return secret.strip()


def current_principal() -> Principal:
    """The authenticated caller of this request (raises ``Unauthorized``)."""
    if "principal" not in g:
        g.principal = access.authenticate(get_context(), bearer_secret())
    return g.principal


def requires(*roles: str):
    """Authenticate, then authorise for ``view_args["pid"]`` (None: admin-only global)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            access.authorize(principal, kwargs.get("pid"), *roles)
            return view(*args, **kwargs)

        _document_errors(wrapper, "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND")
        return wrapper

    return decorate


def _document_errors(wrapper, *responses: str) -> None:
    """Add the auth failures to the view's OpenAPI responses (flask-smorest's ``_apidoc``)."""
    wrapper._apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
    documented = wrapper._apidoc.setdefault("response", {}).setdefault("responses", {})
    for name in responses:
        status = {"UNAUTHORIZED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404}[name]
        documented.setdefault(status, [name])


def authenticated(view):
    """Authenticate only; the view decides what the caller may see."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        current_principal()
        return view(*args, **kwargs)

    return wrapper
