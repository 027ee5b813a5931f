"""``export``: a project's current and original labels as CSV or JSON lines, to stdout or
a file."""
from __future__ import annotations

import sys

from ..client import CincerClient
from ..errors import EXIT_OK


def register(sub, common) -> None:
    """Add the ``export`` subcommand."""
    p = sub.add_parser("export", parents=[common], help="current and original labels")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", default=None, help="file to write (default stdout)")
    p.set_defaults(func=cmd_export)


def cmd_export(client: CincerClient, args) -> int:
    """Write the export text to ``--out``, or stdout."""
    text = client.export(args.project, args.format)
    if args.out:
        with open(args.out, "w", newline="") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK
