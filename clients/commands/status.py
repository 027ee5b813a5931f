"""``stats`` and ``wait-idle``: a project's counts per status and model version, now or
once its background work (screening, counter-examples, retrains) is done."""
from __future__ import annotations

import json
import sys

from ..client import CincerClient
from ..errors import EXIT_OK, EXIT_SERVICE


def register(sub, common) -> None:
    """Add the ``stats`` and ``wait-idle`` subcommands."""
    p = sub.add_parser("stats", parents=[common], help="counts per status, model version")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("wait-idle", parents=[common],
                       help="wait until screening, counter-examples and retrains are done")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--poll", type=float, default=0.5)
    p.set_defaults(func=cmd_wait_idle)


def cmd_stats(client: CincerClient, args) -> int:
    """Print the project's stats as one JSON line."""
    print(json.dumps(client.stats(args.project)))
    return EXIT_OK


def cmd_wait_idle(client: CincerClient, args) -> int:
    """Print the stats once idle; exit status 1 if still busy after ``--timeout``."""
    try:
        stats = client.wait_idle(args.project, timeout=args.timeout, poll=args.poll)
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    print(json.dumps(stats))
    return EXIT_OK
