"""The CLI's subcommands, one module per group. Each module has ``register(sub, common)``,
which adds its subparser(s) to ``sub`` (with ``common``, the connection options, as parent)
and sets ``func``, called as ``func(client, args)`` and returning the exit status."""
from __future__ import annotations

from . import annotate, bench, export, ingest, status

# In the order ``--help`` lists them.
GROUPS = (ingest, annotate, export, status, bench)


def register_all(sub, common) -> None:
    """Add every group's subcommands to the subparsers action ``sub``."""
    for group in GROUPS:
        group.register(sub, common)
