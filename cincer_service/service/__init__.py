"""The labeling service's domain layer: store, use cases and the embedded worker.

No Flask or Celery here; ``api/`` and ``tasks/`` are thin adapters over ``LabelService``.
"""
from .demo import seed_demo
from .dispatch import Dispatcher, InlineDispatcher, NullDispatcher, ThreadDispatcher
from .errors import BadInput, Conflict, Forbidden, NotFound, ServiceError, Unauthorized
from .service import ROLES, LabelService, Principal, build_service
from .settings import Settings
from .store import Store

__all__ = ["seed_demo", "Dispatcher", "InlineDispatcher", "NullDispatcher", "ThreadDispatcher",
           "BadInput", "Conflict", "Forbidden", "NotFound", "ServiceError", "Unauthorized",
           "ROLES", "LabelService", "Principal", "build_service", "Settings", "Store"]
