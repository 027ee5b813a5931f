"""``bench``: the service's ingest throughput, ingest-to-query latency and process memory,
measured over HTTP by ``clients.bench``; needs an admin token and no project id."""
from __future__ import annotations

import json
import os

from ..bench import run_bench
from ..client import CincerClient
from ..errors import EXIT_OK


def register(sub, common) -> None:
    """Add the ``bench`` subcommand."""
    p = sub.add_parser("bench", parents=[common],
                       help="ingest throughput, ingest-to-query latency, process memory")
    add_arguments(p)
    p.set_defaults(func=cmd_bench, needs_project=False)


def add_arguments(parser) -> None:
    """The benchmark's own options."""
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    parser.add_argument("--examples", type=int, default=5000,
                        help="examples sent for the ingest throughput (default 5000)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--latency-samples", type=int, default=50,
                        help="suspicious examples timed from ingest to leasable query")
    parser.add_argument("--warmup", type=int, default=1,
                        help="first suspicious examples reported apart (they build the "
                             "model version's cached Fisher factor)")
    parser.add_argument("--poll-interval", type=float, default=0.02,
                        help="seconds between queries/next polls while timing")
    parser.add_argument("--wait-timeout", type=float, default=300,
                        help="bound on each wait for the service (seconds)")
    parser.add_argument("--pids-api", default=None, help="comma-separated API pids")
    parser.add_argument("--pids-worker", default=None, help="comma-separated worker pids")
    parser.add_argument("--cluster-dir", default=os.path.join("cincer-data", "cluster"),
                        help="where deploy/local-cluster.sh keeps its *.pid files")
    parser.add_argument("--assistants", type=int, default=20,
                        help="concurrent assistants, one project each (default 20)")
    parser.add_argument("--assistant-requests", type=int, default=30,
                        help="corrections each assistant sends with Prefer: wait")
    parser.add_argument("--assistant-bootstrap", type=int, default=100,
                        help="bootstrap size of each assistant's project")
    parser.add_argument("--wait", type=float, default=2.0,
                        help="Prefer: wait=<seconds> of the verdict requests")
    parser.add_argument("--noise", type=float, default=0.2,
                        help="share of corrections that contradict the model")
    parser.add_argument("--projects", type=int, default=1000,
                        help="small projects for the cold first-verdict part (default 1000)")
    parser.add_argument("--skip", default="",
                        help="comma-separated parts to skip: ingest, latency, assistants, "
                             "projects, memory")
    parser.add_argument("--seed", type=int, default=0)


def cmd_bench(client: CincerClient, args) -> int:
    """Run every part not skipped and print the report (indented unless ``--json``)."""
    report = run_bench(client, args)
    print(json.dumps(report, indent=None if args.json else 2))
    return EXIT_OK
