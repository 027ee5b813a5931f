"""``cincer-service simulate``: the CINCER paper's experiments (``experiments.simulate``)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..catalog import COUNTEREXAMPLE_DAMPING
from ..datasets import DATASETS
from ..experiments.config import PROTOCOLS, SimulationConfig
from ..spec import DEFAULT_STRATEGY, MODEL_KINDS, MONITORS, RETRAIN_MODES, TRAINING_SCHEDULES

DEFAULTS = SimulationConfig()


def register_command(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="reproduce the CINCER experiments on bundled data")
    p.add_argument("--dataset", default=DEFAULTS.dataset, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--model", default=DEFAULTS.model, help=f"one of {', '.join(MODEL_KINDS)}")
    p.add_argument("--noise", type=float, default=DEFAULTS.noise, help="label-noise rate in [0, 1]")
    p.add_argument("--noise-type", default=DEFAULTS.noise_type, help="random or structured")
    p.add_argument("--strategies", default=f"{DEFAULT_STRATEGY},no_ce,drop_ce",
                   help="comma-separated counter-example strategies and loop variants")
    p.add_argument("--threshold", type=float, default=DEFAULTS.threshold, help="margin threshold τ")
    p.add_argument("--bootstrap", type=int, default=DEFAULTS.bootstrap,
                   help="size of the noisy bootstrap set")
    p.add_argument("--iterations", type=int, default=DEFAULTS.iterations,
                   help="incoming examples per run")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--retrain", default=DEFAULTS.retrain, help=" or ".join(RETRAIN_MODES))
    p.add_argument("--protocol", default=DEFAULTS.protocol, help=" or ".join(PROTOCOLS))
    p.add_argument("--damping", type=float, default=DEFAULTS.damping,
                   help=f"Fisher damping λ (default {COUNTEREXAMPLE_DAMPING})")
    p.add_argument("--oracle-noise", type=float, default=DEFAULTS.oracle_noise,
                   help="probability that the simulated annotator answers wrongly")
    p.add_argument("--show-confirmed", action="store_true",
                   help="allow human-confirmed examples as counter-examples again "
                        "(the paper's loop; by default they are skipped)")
    p.add_argument("--max-epochs", type=int, default=DEFAULTS.max_epochs,
                   help="epochs cap for scratch training")
    p.add_argument("--schedule", choices=TRAINING_SCHEDULES, default=DEFAULTS.schedule,
                   help="when training stops: validation (held-out loss with patience, then a "
                        "refit on all data; the default), accuracy (at a running train "
                        "accuracy; with --no-standardize --damping 1 the runs of docs/results.md "
                        "before wave 2) or fixed (epoch cap)")
    p.add_argument("--monitor", choices=MONITORS, default=DEFAULTS.monitor,
                   help="with --schedule validation: watch the held-out loss (default) or its "
                        "errors (ties broken by the loss)")
    p.add_argument("--patience", type=int, default=DEFAULTS.patience,
                   help="with --schedule validation: epochs without a held-out improvement "
                        f"before training stops (default {DEFAULTS.patience})")
    p.add_argument("--no-refit", action="store_true",
                   help="with --schedule validation: keep the best epoch's weights instead of "
                        "retraining on all data for that many epochs")
    p.add_argument("--no-standardize", action="store_true",
                   help="feed inputs to the model as they are (the models of docs/results.md "
                        "before wave 2); by default vector inputs are standardized")
    p.add_argument("--early-stop-accuracy", type=float, default=None,
                   help="with --schedule accuracy: stop scratch training at this running "
                        "train accuracy (default 0.9, 0.7 for lr; above 1 disables it)")
    p.add_argument("--n-samples", type=int, default=None, help="size of the synthetic data set")
    p.add_argument("--out", default=None, help="directory for results.json and PNG plots")
    p.add_argument("--json", action="store_true", help="print the JSON document on stdout")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from ..cli import UsageError, parse_list
    from ..experiments.plots import plot_traces
    from ..experiments.simulate import simulate

    config = SimulationConfig(
        dataset=args.dataset, model=args.model, noise=args.noise, noise_type=args.noise_type,
        strategies=parse_list(args.strategies), threshold=args.threshold,
        bootstrap=args.bootstrap, iterations=args.iterations, seeds=parse_list(args.seeds, int),
        retrain=args.retrain, protocol=args.protocol, damping=args.damping,
        oracle_noise=args.oracle_noise, skip_confirmed=not args.show_confirmed,
        max_epochs=args.max_epochs, schedule=args.schedule,
        early_stop_accuracy=args.early_stop_accuracy, n_samples=args.n_samples,
        monitor=args.monitor, patience=args.patience, refit=not args.no_refit,
        standardize=False if args.no_standardize else None)
    try:
        config.validate()
        document = simulate(config)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as fh:
            json.dump(document, fh, indent=1)
        if config.protocol == "cleaning":
            plot_traces(document, args.out)
    if args.json:
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    else:
        for name, s in document["summary"].items():
            print(f"{name:18s} cleaned {s['n_cleaned_mean']}  F1 {s['f1_mean']}  "
                  f"Pr@5 {s['precision_at_5_mean']}  Pr@10 {s['precision_at_10_mean']}")
    return 0
