"""``cincer-service bench``: speed benchmarks as one JSON document (``experiments.bench``)."""
from __future__ import annotations

import argparse
import json
import sys


def register_command(subparsers) -> None:
    p = subparsers.add_parser("bench", help="speed benchmarks (JSON)")
    p.add_argument("--quick", action="store_true", help="skip the 1M-example case")
    p.add_argument("--no-detectors", action="store_true", help="skip the offline detectors")
    p.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    p.add_argument("--scale-only", action="store_true",
                   help="only the columnar-state scale cases (synthetic 1M; 100k with --quick)")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from ..experiments.bench import run_bench

    if args.scale_only:
        from ..experiments.bench_scale import scale_benchmarks
        doc = scale_benchmarks(quick=args.quick)
    else:
        doc = run_bench(quick=args.quick, detectors=not args.no_detectors)
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0
