"""``export``: every example (labels with class names, input, status, last change; JSON
lines add the label history) as CSV or JSON lines, to stdout or a file; ``import``: such a
file into a new project."""
from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from ..client import DEFAULT_BATCH_SIZE, CincerClient
from ..errors import EXIT_OK
from ..readers import read_export
from .common import emit

IMPORT_HELP = """\
FILE is an export of any project with the same classes and input (python -m clients
PID export --format jsonl|csv): .jsonl keeps the whole label history, .csv the last
change. Labels, statuses, confirmed, inputs and times are kept; only pending examples
are screened. Send it to a new project: an external id it already holds is refused."""


def register(sub, common) -> None:
    """Add the ``export`` and ``import`` subcommands."""
    p = sub.add_parser("export", parents=[common],
                       help="every example: labels, input, status, history")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", default=None, help="file to write (default stdout)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("import", parents=[common], help="an export's examples, into a new "
                       "project (admin)", description="Import an export into the project.",
                       epilog=IMPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="a .jsonl or .csv export")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.set_defaults(func=cmd_import)


def cmd_export(client: CincerClient, args) -> int:
    """Write the export text to ``--out``, or stdout."""
    text = client.export(args.project, args.format)
    if args.out:
        with open(args.out, "w", newline="") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_import(client: CincerClient, args) -> int:
    """Read the export, send it in batches, print ``{project, imported, events,
    statuses}``."""
    project = client.get_project(args.project)
    records = read_export(args.file, project)
    with tqdm(total=len(records), unit="ex", desc="import", file=sys.stderr,
              disable=args.quiet) as bar:
        done = client.import_examples(args.project, records, batch_size=args.batch_size,
                                      progress=bar.update)
    return emit({"project": args.project, "imported": done["imported"],
                 "events": done["events"], "statuses": done["statuses"]})
