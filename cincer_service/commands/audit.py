"""``cincer-service audit``: offline detectors compared on planted noise (``experiments.audit``)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..datasets import DATASETS
from ..experiments.config import AuditConfig
from ..spec import MODEL_KINDS

DEFAULTS = AuditConfig()


def register_command(subparsers) -> None:
    p = subparsers.add_parser("audit", help="compare offline mislabel detectors on bundled data")
    p.add_argument("--dataset", default=DEFAULTS.dataset, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--model", default=DEFAULTS.model, help=f"one of {', '.join(MODEL_KINDS)}")
    p.add_argument("--noise", type=float, default=DEFAULTS.noise,
                   help="share of training labels corrupted")
    p.add_argument("--noise-type", default=DEFAULTS.noise_type, help="random or structured")
    p.add_argument("--detectors", default=",".join(DEFAULTS.detectors),
                   help="comma-separated detector names (near_duplicates reports pairs)")
    p.add_argument("--clean-size", type=int, default=DEFAULTS.clean_size,
                   help="trusted-set size, drawn from the held-out split (capped at its size)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--segments", type=int, default=DEFAULTS.segments,
                   help="training segments (TracIn checkpoints)")
    p.add_argument("--epochs-per-segment", type=int, default=DEFAULTS.epochs_per_segment,
                   help="epochs per training segment")
    p.add_argument("--damping", type=float, default=DEFAULTS.damping, help="Hessian/Fisher damping λ")
    p.add_argument("--min-per-class", type=int, default=DEFAULTS.min_per_class,
                   help="class-based detectors refuse to run below this many trusted examples per class")
    p.add_argument("--n-samples", type=int, default=None, help="size of the synthetic data set")
    p.add_argument("--out", default=None, help="directory for audit.json, audit-table.md, audit-roc.png")
    p.add_argument("--json", action="store_true", help="print the JSON document on stdout")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..cli import UsageError, parse_list

    config = AuditConfig(dataset=args.dataset, model=args.model, noise=args.noise,
                         noise_type=args.noise_type, detectors=parse_list(args.detectors),
                         clean_size=args.clean_size, seeds=parse_list(args.seeds, int),
                         segments=args.segments, epochs_per_segment=args.epochs_per_segment,
                         damping=args.damping, min_per_class=args.min_per_class,
                         n_samples=args.n_samples)
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create --out directory: {exc}") from None
    from ..experiments.audit import run_audit
    from ..experiments.plots import plot_inspection
    from ..experiments.stats import markdown_table

    with tqdm(total=len(config.seeds) * len(config.detectors), desc="audit", unit="run",
              file=sys.stderr) as bar:
        try:
            document, curves = run_audit(config, progress=bar)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    table = markdown_table(document)
    title = f"{config.dataset}/{config.model}, {config.noise:.0%} {config.noise_type} noise"
    if args.out:
        with open(os.path.join(args.out, "audit.json"), "w") as fh:
            json.dump(document, fh, indent=1)
        with open(os.path.join(args.out, "audit-table.md"), "w") as fh:
            fh.write(f"{title}, seeds {','.join(map(str, config.seeds))}\n\n{table}")
        plot_inspection(curves, os.path.join(args.out, "audit-roc.png"), title)
    if args.json:
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(table)
        for entry in document.get("duplicates", []):
            print(f"seed {entry['seed']}: {len(entry['duplicates'])} near-duplicate pairs")
    return 0
