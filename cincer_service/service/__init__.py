"""The labeling service's domain layer: store, use cases and the embedded worker.

No Flask or Celery here. ``context`` holds what every use case shares; one module per
resource family holds the use cases (``access``, ``projects``, ``examples``, ``queries``,
``training``, ``audits``, ``reports``, ``workers``); ``labels`` is the one way labels
change; ``jobs`` is the table of background jobs and ``runner`` runs them.
``api/`` handlers and ``tasks/`` jobs call these modules with a ``ServiceContext``.
"""
from . import (
    access,
    annotators,
    audits,
    examples,
    freshness,
    jobs,
    labels,
    projects,
    queries,
    reports,
    runner,
    screening,
    sources,
    training,
    webhooks,
    workers,
)
from .access import ROLES, Principal
from .context import ServiceContext, build_context
from .demo import seed_demo
from .dispatch import Dispatcher, InlineDispatcher, NullDispatcher, ThreadDispatcher
from .errors import BadInput, Conflict, Forbidden, NotFound, ServiceError, Unauthorized
from .settings import Settings
from .store import Store

__all__ = ["access", "audits", "examples", "freshness", "jobs", "labels", "projects", "queries", "reports",
           "runner", "workers", "annotators", "sources",
           "screening", "training", "webhooks", "ROLES", "Principal", "ServiceContext",
           "build_context", "seed_demo", "Dispatcher", "InlineDispatcher", "NullDispatcher",
           "ThreadDispatcher", "BadInput", "Conflict", "Forbidden", "NotFound", "ServiceError",
           "Unauthorized", "Settings", "Store"]
