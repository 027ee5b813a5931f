"""Extension singletons, bound to the app in ``register_extensions``."""
from __future__ import annotations

import threading
from collections import Counter

from flask import current_app
from flask_smorest import Api

from .errors import ErrorSchema


class CincerApi(Api):
    """flask-smorest's Api documenting our error shape; ``api.errors`` installs the handlers."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        pass                    # register_errorhandlers() installs the envelope handlers


class RequestCounter:
    """Requests served per (method, route, status), for ``/metrics`` (per process)."""

    def __init__(self):
        self._counts: Counter = Counter()
        self._lock = threading.Lock()

    def count(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(method, route, status)] += 1

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._counts)


def get_context():
    """The app's ``ServiceContext`` (kept in ``app.extensions["cincer"]``)."""
    return current_app.extensions["cincer"]


def get_request_counter() -> RequestCounter:
    return current_app.extensions["cincer_requests"]
