"""``health``, ``metrics``, ``openapi`` and ``workers``: the service itself (no project;
``health`` and ``metrics`` need no token, ``workers`` an admin token)."""
from __future__ import annotations

import sys

from ..client import CincerClient
from ..errors import EXIT_OK
from .common import emit


def register(sub, common) -> None:
    """Add the ``health``, ``metrics`` and ``openapi`` subcommands."""
    p = sub.add_parser("health", parents=[common], help="the service and its database answer")
    p.set_defaults(func=cmd_health, needs_project=False, needs_token=False)
    p = sub.add_parser("metrics", parents=[common], help="Prometheus metrics (text)")
    p.set_defaults(func=cmd_metrics, needs_project=False, needs_token=False)
    p = sub.add_parser("openapi", parents=[common], help="the API's OpenAPI document")
    p.set_defaults(func=cmd_openapi, needs_project=False, needs_token=False)
    p = sub.add_parser("workers", parents=[common],
                       help="the workers running background jobs: queues, device, heartbeat "
                            "(admin token)")
    p.set_defaults(func=cmd_workers, needs_project=False)


def cmd_health(client: CincerClient, args) -> int:
    return emit(client.healthz())


def cmd_metrics(client: CincerClient, args) -> int:
    sys.stdout.write(client.metrics())
    return EXIT_OK


def cmd_openapi(client: CincerClient, args) -> int:
    return emit(client.openapi())


def cmd_workers(client: CincerClient, args) -> int:
    return emit({"items": client.list_workers()})
