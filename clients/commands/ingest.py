"""``ingest``: send a .csv, .npz, .jsonl or .txt file's examples to a project, in batches,
and print a JSON summary (count, statuses, first and last id). The formats are
``clients.readers``'s."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from tqdm import tqdm

from ..client import DEFAULT_BATCH_SIZE, WAIT_BATCH_SIZE, CincerClient
from ..errors import EXIT_OK
from ..readers import label_note, load_items

# Formats whose labels are text (JSON has strings and integers; .npz holds indices).
TEXT_LABEL_FORMATS = (".csv", ".txt")

FORMATS_HELP = """\
file formats (by extension):
  .csv    header row; a 'label' column (or 'label_name': class names), optional
          'external_id' and 'source' columns, every other column a feature in file
          order (an export's other columns are skipped)
  .npz    arrays X (n x features) and y (n class indices), optional ids
  .jsonl  one JSON object per line, like an item of the REST ingest body:
          {"external_id": "a1", "label": "cat", "x": [0.1, 0.2, ...]}
          label: a class name (string) or index (integer); the input as x, text
          (text projects, with an optional embedding) or image (base64 PNG/JPEG)
  .txt    text projects, one example per line: LABEL<TAB>TEXT
          (the text is everything after the first tab; blank lines are skipped; UTF-8)
labels: a string is a class name, an integer a class index. In .csv and .txt files
(all text) digits are a class index, unless the project's class names are digits:
then every label is read as a class name, and ingest says so.
Without an external_id an example's id is its row index in the file (0, 1, ...).
--source tags every example; otherwise a file's own source values are kept."""


def register(sub, common) -> None:
    """Add the ``ingest`` subcommand."""
    p = sub.add_parser("ingest", parents=[common],
                       help="send a .csv, .npz, .jsonl or .txt file's examples",
                       description="Send a file's examples to the project, in batches.",
                       epilog=FORMATS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="the examples; the extension names the format")
    p.add_argument("--source", default=None, help="source tag stored with every example")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="wait at most SECONDS (0 < SECONDS <= 10) per batch for each "
                        f"example's verdict (batches of at most {WAIT_BATCH_SIZE}); the "
                        "summary then counts verdicts and lists the suspicious examples' "
                        "queries")
    p.set_defaults(func=cmd_ingest)


def cmd_ingest(client: CincerClient, args) -> int:
    """Read ``args.file`` into items shaped for the project, send them, print the summary."""
    project = client.get_project(args.project)
    items = load_items(args.file, project, args.source)
    note = label_note(project)
    if note and args.file.lower().endswith(TEXT_LABEL_FORMATS):
        print(note, file=sys.stderr)
    with tqdm(total=len(items), unit="ex", desc="ingest", file=sys.stderr,
              disable=args.quiet) as bar:
        results = client.ingest(args.project, items, batch_size=args.batch_size,
                                progress=bar.update, wait=args.wait)
    statuses = Counter(r["status"] for r in results)
    summary = {"project": args.project, "ingested": len(results), "statuses": dict(statuses),
               "first_id": results[0]["id"] if results else None,
               "last_id": results[-1]["id"] if results else None}
    if args.wait is not None:
        summary["verdicts"] = dict(Counter(r.get("verdict") for r in results))
        summary["suspicious"] = [
            {"id": r["id"], "margin": r.get("margin"),
             "prediction_name": r.get("prediction_name"),
             "query_id": (r.get("query") or {}).get("id"),
             "counterexample_id": ((r.get("query") or {}).get("counterexample") or {})
             .get("id")} for r in results if r.get("verdict") == "suspicious"]
    print(json.dumps(summary))
    return EXIT_OK
