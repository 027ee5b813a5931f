"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``.

Service errors map to their HTTP status by class; Werkzeug and webargs errors (unknown route,
wrong method, malformed JSON, failed validation, oversized body) and unexpected exceptions
(500, no traceback in the body) are rewritten into the same shape.

Every 422 has one style, whoever found the problem (marshmallow/webargs at the edge, or the
service's ``BadInput``): code ``validation_error``, a message that names the invalid fields,
and ``details`` mapping each field's dotted path (``items.3.label``) to a list of messages.
"""
from __future__ import annotations

import re

import marshmallow as ma
from flask import current_app, jsonify
from werkzeug.exceptions import HTTPException

from cincer_service.service import (
    BadInput,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unauthorized,
)

SERVICE_STATUS = {BadInput: 422, Unauthorized: 401, Forbidden: 403, NotFound: 404,
                  Conflict: 409}

# Stable codes for HTTP-level errors (the rest use Werkzeug's name in snake_case).
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
              415: "unsupported_media_type", 422: "validation_error", 500: "internal_error",
              503: "unavailable"}


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "stable snake_case code"})
    message = ma.fields.String(required=True)
    details = ma.fields.Dict(metadata={"description": "field -> messages, or context"})


class ErrorSchema(ma.Schema):
    """The body of every 4xx/5xx answer (documentation only)."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


class Unavailable(ServiceError):
    """A dependency (the database) does not answer."""

    code = "unavailable"


class InvalidBody(ServiceError):
    """The body cannot be read as JSON at all (syntax, encoding, NaN, nesting): a 400."""

    code = "invalid_json"


SERVICE_STATUS[InvalidBody] = 400

VALIDATION_CODE = "validation_error"
# A service message that only repeats "N invalid field(s)" adds nothing to the field list.
_GENERIC_SUMMARY = re.compile(r"^(\d+ )?invalid\b", re.IGNORECASE)
_SHOWN_FIELDS = 5


def _messages(value, fallback: str) -> list[str]:
    """A details value as a list of strings (the service sometimes gives ids or names)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, (list, tuple)) and not value:
        return [fallback]
    return [f"{fallback}: {value}"]


def validation_details(details, fallback: str = "invalid") -> dict[str, list[str]]:
    """``details`` as field path -> list of messages (``_schema`` for the body as a whole)."""
    if not isinstance(details, dict) or not details:
        return {"_schema": _messages(details, fallback) if details else [fallback]}
    return {str(key): _messages(value, fallback) for key, value in details.items()}


def validation_message(details: dict[str, list[str]], summary: str | None = None) -> str:
    """A message naming the invalid fields (all of them up to five, then a count)."""
    extra = f" ({summary})" if summary and not _GENERIC_SUMMARY.match(summary) else ""
    fields = list(details)
    if fields == ["_schema"]:
        return f"invalid request: {details['_schema'][0]}{extra}"
    if len(fields) == 1:
        return f"invalid field {fields[0]}: {details[fields[0]][0]}{extra}"
    shown = ", ".join("(body)" if f == "_schema" else f for f in fields[:_SHOWN_FIELDS])
    more = f" and {len(fields) - _SHOWN_FIELDS} more" if len(fields) > _SHOWN_FIELDS else ""
    return f"{len(fields)} invalid fields: {shown}{more}; see details{extra}"


def validation_response(details, summary: str | None = None):
    """The one 422: code ``validation_error``, fields named in the message and details."""
    flat = validation_details(details, summary or "invalid")
    return error_response(422, VALIDATION_CODE, validation_message(flat, summary), flat)


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def handle_service_error(error: ServiceError):
    if isinstance(error, BadInput):
        return validation_response(error.details, error.message)
    status = next((s for cls, s in SERVICE_STATUS.items() if isinstance(error, cls)),
                  503 if isinstance(error, Unavailable) else 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, error.code, error.message, error.details, headers)


def _flatten_messages(messages) -> dict:
    """One style for every error's details: flat dotted keys to lists of messages
    (``{"items.3.label": ["..."]}``), as the service writes them. webargs nests messages
    by location (``{"json": {...}}``) and marshmallow by field and list index."""
    if not isinstance(messages, dict):
        return {"_schema": messages if isinstance(messages, list) else [str(messages)]}
    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix or "_schema"] = value if isinstance(value, list) else [str(value)]

    for location, fields in messages.items():
        walk("" if location in ("json", "query", "form", "querystring") else str(location),
             fields)
    return flat


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    code = HTTP_CODES.get(status) or error.name.lower().replace(" ", "_")
    message = error.description or error.name
    details: dict = {}
    data = getattr(error, "data", None) or {}      # set by webargs/flask-smorest ``abort``
    if "messages" in data or "errors" in data:
        raw = data.get("errors", data.get("messages"))
        details = _flatten_messages(raw)
        if status == 422:
            return validation_response(details)
        if status == 400 and isinstance(raw, dict) and "json" in raw:
            # webargs' "Invalid JSON body." (the edge check in api.requests normally
            # answers first, with the parser's own reason)
            code, message = "invalid_json", "the body is not valid JSON"
    if data.get("message"):
        message = data["message"]
    if data.get("code"):
        code = data["code"]
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
        details = {"allowed": list(error.valid_methods)}
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"the body is larger than the {limit} byte limit"
        details = {"max_content_length": limit}
    headers.update(data.get("headers") or {})
    return error_response(status, code, message, details, headers)


def handle_unexpected(error: Exception):
    current_app.logger.exception("unhandled error: %s", error)
    return error_response(500, "internal_error", "internal server error; see the server log")


def register_errorhandlers(app) -> None:
    """Install the handlers; later registration wins over flask-smorest's own."""
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
