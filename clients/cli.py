"""``python -m clients``: the labeling service from the command line, over HTTP only.

    python -m clients [--url URL] [--token TOKEN] PROJECT-ID ingest FILE.csv|FILE.npz [--source S]
    python -m clients PROJECT-ID annotate --oracle TRUTH.npy [--max-queries N] [--idle-timeout S]
    python -m clients PROJECT-ID export [--format csv|jsonl] [--out FILE]
    python -m clients PROJECT-ID stats
    python -m clients PROJECT-ID wait-idle [--timeout S]
    python -m clients bench [--url URL --token TOKEN] --json

``--url`` and ``--token`` default to ``$CINCER_URL`` (else http://127.0.0.1:8000) and
``$CINCER_TOKEN``; the project may also be given as ``--project`` or ``$CINCER_PROJECT``.

Input files. CSV: a header row, a ``label`` column (class index, or class name when not an
integer), optional ``external_id`` and ``source`` columns, every other column a feature in
file order. NPZ: arrays ``X`` (n x features, or n x input_shape), ``y`` (n class indices),
optional ``ids``. Without ids, an example's ``external_id`` is its row index in the file.
Features are reshaped to the project's ``input_shape``.

Oracle (``annotate``): ``TRUTH.npy`` holds the true class index of every example, indexed by
its integer ``external_id``; see ``clients.annotator``.

Exit status: 0 done; 1 the service failed (5xx, unreachable, timed out); 2 bad input (usage,
unreadable or malformed file, or a 4xx answer, printed on stderr).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter

import numpy as np
import requests
from tqdm import tqdm

from .annotator import TruthLookupError, annotate
from .client import DEFAULT_BATCH_SIZE, ApiError, CincerClient, IngestError

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_OK, EXIT_SERVICE, EXIT_BAD_INPUT = 0, 1, 2
VALUE_OPTIONS = {"--url", "--token", "--project", "--request-timeout"}


class BadInput(Exception):
    """Something the user gave cannot be used; reported on stderr with exit status 2."""


# -- input files --------------------------------------------------------------------------------
def read_csv(path: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(X as n x features, y, external ids or None per row, sources or None per row)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    if not rows:
        raise BadInput(f"{path} is empty: expected a header row with a 'label' column")
    header = [h.strip() for h in rows[0]]
    if "label" not in header:
        raise BadInput(f"{path}: the header has no 'label' column (got {header[:8]})")
    special = {"label", "external_id", "source"}
    feature_columns = [i for i, h in enumerate(header) if h not in special]
    if not feature_columns:
        raise BadInput(f"{path}: no feature columns besides label/external_id/source")
    where = {h: header.index(h) for h in special if h in header}
    X, y, ids, sources = [], [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise BadInput(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        try:
            X.append([float(row[i]) for i in feature_columns])
        except ValueError as exc:
            raise BadInput(f"{path}:{line}: a feature is not a number ({exc})") from None
        y.append(parse_label(row[where["label"]], classes, f"{path}:{line}"))
        ids.append(row[where["external_id"]].strip() or None if "external_id" in where
                   else str(len(ids)))
        sources.append(row[where["source"]].strip() or None if "source" in where else None)
    if not X:
        raise BadInput(f"{path}: no data rows")
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64), ids, sources


def parse_label(text: str, classes: list[str], where: str) -> int:
    """A class index (an integer) or a class name; ``BadInput`` otherwise."""
    text = text.strip()
    try:
        label = int(text)
    except ValueError:
        if text in classes:
            return classes.index(text)
        raise BadInput(f"{where}: label {text!r} is neither a class index nor one of the "
                       f"project's classes {classes}") from None
    if not 0 <= label < len(classes):
        raise BadInput(f"{where}: label {label} is outside [0, {len(classes)})")
    return label


def read_npz(path: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(X, y, external ids, sources) from arrays ``X``, ``y`` and optional ``ids``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"cannot read {path} as .npz: {exc}") from None
    missing = [name for name in ("X", "y") if name not in arrays]
    if missing:
        raise BadInput(f"{path}: missing array(s) {missing}; found {sorted(arrays)}")
    X, y = arrays["X"], arrays["y"]
    if X.ndim < 1 or y.ndim != 1 or len(X) != len(y):
        raise BadInput(f"{path}: X has shape {X.shape} and y {y.shape}; expected one label "
                       "per row of X")
    if not np.issubdtype(X.dtype, np.number):
        raise BadInput(f"{path}: X is not numeric ({X.dtype})")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise BadInput(f"{path}: y must hold integer class indices (got {y.dtype})")
    bad = np.flatnonzero((y < 0) | (y >= len(classes)))
    if len(bad):
        raise BadInput(f"{path}: y[{bad[0]}] = {y[bad[0]]} is outside [0, {len(classes)})")
    if "ids" in arrays:
        if len(arrays["ids"]) != len(y):
            raise BadInput(f"{path}: ids has {len(arrays['ids'])} entries for {len(y)} rows")
        ids = [str(i) for i in arrays["ids"].tolist()]
    else:
        ids = [str(i) for i in range(len(y))]
    return X.astype(np.float64), y.astype(np.int64), ids, [None] * len(y)


def load_items(path: str, project: dict, source: str | None) -> list[dict]:
    """The file's rows as API items, features reshaped to the project's ``input_shape``."""
    classes = [str(c) for c in project["classes"]]
    if path.endswith(".csv"):
        X, y, ids, sources = read_csv(path, classes)
    elif path.endswith(".npz"):
        X, y, ids, sources = read_npz(path, classes)
    else:
        raise BadInput(f"{path}: expected a .csv or .npz file")
    shape = tuple(int(d) for d in project["input_shape"])
    size = int(np.prod(shape))
    if int(np.prod(X.shape[1:])) != size:
        raise BadInput(f"{path}: each row has {int(np.prod(X.shape[1:]))} features; project "
                       f"{project['id']} expects input_shape {list(shape)} ({size} values)")
    if not np.isfinite(X).all():
        row = int(np.flatnonzero(~np.isfinite(X.reshape(len(X), -1)).all(axis=1))[0])
        raise BadInput(f"{path}: row {row} has NaN or infinite features")
    X = X.reshape((len(X),) + shape)
    return [{"x": X[i].tolist(), "label": int(y[i]), "external_id": ids[i],
             "source": source if source is not None else sources[i]}
            for i in range(len(y))]


# -- commands -----------------------------------------------------------------------------------
def cmd_ingest(client: CincerClient, args) -> int:
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


def cmd_annotate(client: CincerClient, args) -> int:
    try:
        truth = np.load(args.oracle, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"cannot read the oracle {args.oracle}: {exc}") from None
    if truth.ndim != 1 or not np.issubdtype(truth.dtype, np.integer):
        raise BadInput(f"{args.oracle}: expected a 1-d array of integer class indices indexed "
                       f"by external_id (got {truth.dtype} of shape {truth.shape})")
    if args.max_queries is not None and args.max_queries < 0:
        raise BadInput("--max-queries must not be negative")
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


def cmd_export(client: CincerClient, args) -> int:
    text = client.export(args.project, args.format)
    if args.out:
        with open(args.out, "w", newline="") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_stats(client: CincerClient, args) -> int:
    print(json.dumps(client.stats(args.project)))
    return EXIT_OK


def cmd_wait_idle(client: CincerClient, args) -> int:
    try:
        stats = client.wait_idle(args.project, timeout=args.timeout, poll=args.poll)
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    print(json.dumps(stats))
    return EXIT_OK


def cmd_bench(client: CincerClient, args) -> int:
    from .bench import run_bench
    report = run_bench(client, args)
    print(json.dumps(report, indent=None if args.json else 2))
    return EXIT_OK


# -- parsing ------------------------------------------------------------------------------------
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
    common = connection_options()
    parser = argparse.ArgumentParser(
        prog="python -m clients", parents=[common],
        usage="python -m clients [--url URL] [--token TOKEN] PROJECT-ID COMMAND [options]",
        description="Talk to a cincer-service labeling service over HTTP.",
        epilog="Exit status: 0 done, 1 the service failed, 2 bad input.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ingest", parents=[common], help="send a .csv or .npz file's examples")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--source", default=None, help="source tag stored with every example")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("annotate", parents=[common],
                       help="a simulated annotator answering with the true labels")
    p.add_argument("--oracle", required=True, metavar="TRUTH.npy",
                   help="true class indices, indexed by each example's integer external_id")
    p.add_argument("--max-queries", type=int, default=None)
    p.add_argument("--idle-timeout", type=float, default=3.0,
                   help="stop once no query is open and the service was idle this long")
    p.add_argument("--timeout", type=float, default=None, help="give up after this long")
    p.add_argument("--poll", type=float, default=0.3, help="seconds between polls")
    p.add_argument("--log", default=None, help="write every answer as a JSON line here")
    p.set_defaults(func=cmd_annotate)

    p = sub.add_parser("export", parents=[common], help="current and original labels")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", default=None, help="file to write (default stdout)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("stats", parents=[common], help="counts per status, model version")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("wait-idle", parents=[common],
                       help="wait until screening, counter-examples and retrains are done")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--poll", type=float, default=0.5)
    p.set_defaults(func=cmd_wait_idle)

    p = sub.add_parser("bench", parents=[common],
                       help="ingest throughput, ingest-to-query latency, process memory")
    from .bench import add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_bench, needs_project=False)
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
        print("error: give the project id before the command (python -m clients PROJECT-ID "
              f"{args.command} ...), or --project / CINCER_PROJECT", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.token:
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
