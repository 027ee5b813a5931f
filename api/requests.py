"""Request-level rules every POST follows: a JSON body says so (else 415), and an
``Idempotency-Key`` header makes a retried POST return the first answer instead of applying
it twice (``cincer_service.service.idempotency``)."""
from __future__ import annotations

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from cincer_service.service import BadInput, idempotency

from .auth import current_principal
from .extensions import get_context
from .fields import check_text

IDEMPOTENCY_HEADER = "Idempotency-Key"
BODY_METHODS = ("POST", "PUT", "PATCH")


def require_json_body() -> None:
    """415 for a body that is not declared as JSON (it would read as missing fields)."""
    if request.method in BODY_METHODS and request.content_length and not request.is_json:
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no content type'!r})")


def replay_idempotent_post():
    """The stored answer when this POST's ``Idempotency-Key`` was seen before."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if request.method != "POST" or key is None:
        return None
    try:
        key = check_text(key.strip())
    except Exception as exc:
        raise BadInput("bad Idempotency-Key header", {IDEMPOTENCY_HEADER: [str(exc)]}) from None
    if not key:
        raise BadInput("empty Idempotency-Key header", {IDEMPOTENCY_HEADER: ["not empty"]})
    principal = current_principal()
    print_ = idempotency.fingerprint(request.method, request.path, request.get_data())
    stored = idempotency.reserve(get_context(), principal.token_id, key, print_)
    if stored is None:
        g.idempotency = (principal.token_id, key)
        return None
    status, body = stored
    response = jsonify(body)
    response.status_code = status
    response.headers["Idempotent-Replayed"] = "true"
    return response


def remember_idempotent_post(response):
    """Keep a successful JSON answer under its ``Idempotency-Key``; free the key of a
    request that failed."""
    pending = g.pop("idempotency", None)
    if pending is not None:
        if 200 <= response.status_code < 300 and response.is_json:
            idempotency.remember(get_context(), *pending, response.status_code,
                                 response.get_json())
        else:
            idempotency.release(get_context(), *pending)
    return response


def register_request_rules(app: Flask) -> None:
    """Install the JSON-body check and idempotency keys on every request."""
    app.before_request(require_json_body)
    app.before_request(replay_idempotent_post)
    app.after_request(remember_idempotent_post)
