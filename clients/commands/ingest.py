"""``ingest``: send a .csv or .npz file's examples to a project, in batches, and print a
JSON summary (count, statuses, first and last id)."""
from __future__ import annotations

import json
import sys
from collections import Counter

from tqdm import tqdm

from ..client import DEFAULT_BATCH_SIZE, CincerClient
from ..errors import EXIT_OK
from ..readers import load_items


def register(sub, common) -> None:
    """Add the ``ingest`` subcommand."""
    p = sub.add_parser("ingest", parents=[common], help="send a .csv or .npz file's examples")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--source", default=None, help="source tag stored with every example")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.set_defaults(func=cmd_ingest)


def cmd_ingest(client: CincerClient, args) -> int:
    """Read ``args.file`` into items shaped for the project, send them, print the summary."""
    project = client.get_project(args.project)
    items = load_items(args.file, project, args.source)
    with tqdm(total=len(items), unit="ex", desc="ingest", file=sys.stderr,
              disable=args.quiet) as bar:
        results = client.ingest(args.project, items, batch_size=args.batch_size,
                                progress=bar.update)
    statuses = Counter(r["status"] for r in results)
    print(json.dumps({"project": args.project, "ingested": len(results),
                      "statuses": dict(statuses),
                      "first_id": results[0]["id"] if results else None,
                      "last_id": results[-1]["id"] if results else None}))
    return EXIT_OK
