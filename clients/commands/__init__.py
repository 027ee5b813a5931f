"""The CLI's subcommands, one module per group. Each module has ``register(sub, common)``,
which adds its subparser(s) to ``sub`` (with ``common``, the connection options, as parent)
and sets ``func``, called as ``func(client, args)`` and returning the exit status (and
``needs_project=False`` / ``needs_token=False`` where the command needs neither). Groups with
several actions (``projects create``, ``queries answer`` ...) use ``common.add_group``."""
from __future__ import annotations

from . import (
    annotate,
    audits,
    bench,
    crowd,
    curve,
    examples,
    export,
    ingest,
    models,
    overview,
    projects,
    queries,
    service,
    status,
    tokens,
    webhooks,
)

# In the order ``--help`` lists them.
GROUPS = (ingest, annotate, export, status, curve, bench, projects, tokens, examples, queries,
          models, audits, overview, crowd, webhooks, service)


def register_all(sub, common) -> None:
    """Add every group's subcommands to the subparsers action ``sub``."""
    for group in GROUPS:
        group.register(sub, common)
