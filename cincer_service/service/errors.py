"""Errors of the service layer; the API maps each class to one HTTP status."""
from __future__ import annotations


class ServiceError(Exception):
    """Base class: a stable ``code``, a human ``message`` and structured ``details``."""

    code = "error"

    def __init__(self, message: str, details: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code


class BadInput(ServiceError):
    """The request is invalid; nothing was stored."""

    code = "bad_input"


class Unauthorized(ServiceError):
    """No token, or a token the service does not know."""

    code = "unauthorized"


class Forbidden(ServiceError):
    """The token lacks the role, or belongs to another project."""

    code = "forbidden"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    """The request clashes with the current state (lost lease, already answered, ...)."""

    code = "conflict"
