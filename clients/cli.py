"""``python -m clients``: the labeling service from the command line, over HTTP only.

    python -m clients [--url URL] [--token TOKEN] PROJECT-ID ingest FILE [--source S]
                      (FILE: .csv, .npz, .jsonl or .txt; see ``ingest -h``)
    python -m clients PROJECT-ID annotate --oracle TRUTH [--max-queries N] [--idle-timeout S]
                      (TRUTH: .json {external_id: label}, an example file, or .npy)
    python -m clients PROJECT-ID export [--format csv|jsonl] [--out FILE]
    python -m clients PROJECT-ID stats
    python -m clients PROJECT-ID wait-idle [--timeout S]
    python -m clients bench [--url URL --token TOKEN] --json
    python -m clients projects create --name N --classes a,b --input-shape 30 | --file SPEC.json
    python -m clients projects list
    python -m clients PROJECT-ID projects show | update [--threshold T ...] | history
    python -m clients PROJECT-ID projects delete --yes
    python -m clients PROJECT-ID tokens create --role ROLE [--name N] | list | revoke TOKEN-ID
    python -m clients PROJECT-ID examples list [--status S] | show EXAMPLE-ID
    python -m clients PROJECT-ID queries list | show Q | next | answer Q --label L
                                         | release Q | correct Q --label L --reason R
    python -m clients PROJECT-ID models list | retrain
    python -m clients PROJECT-ID audits create --detectors a,b | list | show A | enqueue A
    python -m clients PROJECT-ID overview show | compute | cell L P | action ... | progress
    python -m clients PROJECT-ID annotators list | suspend A | restore A
    python -m clients PROJECT-ID gold list | mark ID[,ID...] [--unmark]
    python -m clients PROJECT-ID sources list | apply --source S --from A --to B
    python -m clients PROJECT-ID webhooks create RECEIVER-URL | list | delete W | deliveries W
    python -m clients health | metrics | openapi | workers

Every command prints JSON on stdout (``export`` its CSV/JSON lines, ``metrics`` its text).

This module owns the parser's top level (connection options, the leading PROJECT-ID) and
``main()``: it resolves the URL, token and project, builds the client, runs the command
and maps errors to exit statuses. The subcommands live in ``clients.commands``, the input
file formats in ``clients.readers``.

``--url`` and ``--token`` default to ``$CINCER_URL`` (else http://127.0.0.1:8000) and
``$CINCER_TOKEN``; the project may also be given as ``--project`` or ``$CINCER_PROJECT``.

Exit status: 0 done; 1 the service failed (5xx, unreachable, timed out); 2 bad input (usage,
unreadable or malformed file, or a 4xx answer, printed on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import requests

from .client import ApiError, CincerClient, IngestError
from .commands import register_all
from .errors import EXIT_BAD_INPUT, EXIT_SERVICE, BadInput

PROG = "python -m clients"
DEFAULT_URL = "http://127.0.0.1:8000"
VALUE_OPTIONS = {"--url", "--token", "--project", "--request-timeout"}


def connection_options() -> argparse.ArgumentParser:
    """--url/--token, accepted before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"service root (env CINCER_URL, default {DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS,
                        help="bearer token (env CINCER_TOKEN)")
    common.add_argument("--project", type=int, default=argparse.SUPPRESS,
                        help="project id (or give it before the subcommand; env CINCER_PROJECT)")
    common.add_argument("--request-timeout", type=float, default=argparse.SUPPRESS,
                        help="seconds per HTTP request (default 30)")
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The whole parser: connection options, then every ``clients.commands`` subcommand."""
    common = connection_options()
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common],
        usage=f"{PROG} [--url URL] [--token TOKEN] [PROJECT-ID] COMMAND [options]",
        description="Talk to a cincer-service labeling service over HTTP.",
        epilog="Exit status: 0 done, 1 the service failed, 2 bad input.")
    # ``prog`` names what comes before each subcommand in its usage line; without it
    # argparse repeats the whole top-level usage there.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                prog=f"{PROG} [PROJECT-ID]")
    register_all(sub, common)
    return parser


def split_project(argv: list[str]) -> tuple[list[str], int | None]:
    """Take a leading positional PROJECT-ID out of ``argv`` (it comes before the command)."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return argv, None
        if token.startswith("-"):
            i += 1 if "=" in token or token not in VALUE_OPTIONS else 2
            continue
        if token.isdigit():
            return argv[:i] + argv[i + 1:], int(token)
        return argv, None
    return argv, None


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command; the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, project = split_project(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:                      # argparse: usage errors exit 2
        return int(exc.code or 0)
    args.url = getattr(args, "url", None) or os.environ.get("CINCER_URL") or DEFAULT_URL
    args.token = getattr(args, "token", None) or os.environ.get("CINCER_TOKEN")
    args.quiet = getattr(args, "quiet", False)
    if project is None:
        project = getattr(args, "project", None)
    if project is None and os.environ.get("CINCER_PROJECT", "").isdigit():
        project = int(os.environ["CINCER_PROJECT"])
    args.project = project
    if getattr(args, "needs_project", True) and args.project is None:
        command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        print("error: give the project id before the command (python -m clients PROJECT-ID "
              f"{command} ...), or --project / CINCER_PROJECT", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.token and getattr(args, "needs_token", True):
        print("error: no token: pass --token or set CINCER_TOKEN", file=sys.stderr)
        return EXIT_BAD_INPUT
    client = CincerClient(args.url, args.token,
                          timeout=getattr(args, "request_timeout", None) or 30)
    try:
        return args.func(client, args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ApiError as exc:
        print(f"error: the service answered {exc.status} {exc.code}: {exc.message}",
              file=sys.stderr)
        if exc.details:
            print(f"details: {json.dumps(exc.details)[:2000]}", file=sys.stderr)
        if isinstance(exc, IngestError) and exc.stored:
            print(f"note: {len(exc.stored)} items of earlier batches were stored "
                  f"(ids {exc.stored[0]['id']}..{exc.stored[-1]['id']})", file=sys.stderr)
        return EXIT_BAD_INPUT if 400 <= exc.status < 500 else EXIT_SERVICE
    except (requests.ConnectionError, requests.Timeout) as exc:
        print(f"error: cannot reach the service at {args.url}: {exc}", file=sys.stderr)
        return EXIT_SERVICE
