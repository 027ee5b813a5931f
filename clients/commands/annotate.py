"""``annotate``: a simulated annotator that answers the project's queries with the true
labels from an oracle file (see ``clients.annotator`` and ``clients.readers.read_oracle``)
and prints a JSON summary."""
from __future__ import annotations

import json
import os
import sys

from tqdm import tqdm

from ..annotator import TruthLookupError, annotate
from ..client import CincerClient
from ..errors import EXIT_OK, EXIT_SERVICE, BadInput
from ..readers import PROJECT_ORACLES, read_oracle


def register(sub, common) -> None:
    """Add the ``annotate`` subcommand."""
    p = sub.add_parser("annotate", parents=[common],
                       help="a simulated annotator answering with the true labels")
    p.add_argument("--oracle", required=True, metavar="TRUTH",
                   help="the true labels, matched by each example's external_id: a .json "
                        "object {external_id: label}, or an example file as ingest reads "
                        "it (.csv, .npz, .jsonl, .txt; its labels taken as the truth), or a "
                        ".npy array of class indices indexed by integer external ids")
    p.add_argument("--max-queries", type=int, default=None)
    p.add_argument("--idle-timeout", type=float, default=3.0,
                   help="stop once no query is open and the service was idle this long")
    p.add_argument("--timeout", type=float, default=None, help="give up after this long")
    p.add_argument("--poll", type=float, default=0.3, help="seconds between polls")
    p.add_argument("--log", default=None, help="write every answer as a JSON line here")
    p.set_defaults(func=cmd_annotate)


def cmd_annotate(client: CincerClient, args) -> int:
    """Answer queries until idle, ``--max-queries`` or ``--timeout`` (then exit status 1)."""
    if args.max_queries is not None and args.max_queries < 0:
        raise BadInput("--max-queries must not be negative")
    project = None
    if os.path.splitext(args.oracle)[1].lower() in PROJECT_ORACLES:
        if not os.path.isfile(args.oracle):         # before any request
            raise BadInput(f"cannot read the oracle {args.oracle}: no such file")
        project = client.get_project(args.project)  # its class names and input shape
    truth = read_oracle(args.oracle, project)
    log = open(args.log, "w") if args.log else None
    try:
        with tqdm(total=args.max_queries, unit="query", desc="annotate", file=sys.stderr,
                  disable=args.quiet) as bar:
            def on_answer(answer):
                bar.update(1)
                if log is not None:
                    log.write(json.dumps(answer.as_dict()) + "\n")
                    log.flush()
            run = annotate(client, args.project, truth, max_queries=args.max_queries,
                           idle_timeout=args.idle_timeout, poll=args.poll,
                           timeout=args.timeout, on_answer=on_answer)
    except TruthLookupError as exc:
        raise BadInput(str(exc)) from None
    finally:
        if log is not None:
            log.close()
    print(json.dumps({
        "project": args.project, "answered": len(run.answers), "stopped": run.stopped,
        "lost_leases": run.lost_leases,
        "relabelled_examples": sum(a.example_label != a.previous_example_label
                                   for a in run.answers),
        "relabelled_counterexamples": sum(
            a.counterexample_label is not None
            and a.counterexample_label != a.previous_counterexample_label
            for a in run.answers),
        "stats": run.stats}))
    return EXIT_SERVICE if run.stopped == "timeout" else EXIT_OK
