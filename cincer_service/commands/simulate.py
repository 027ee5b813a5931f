"""``cincer-service simulate``: the CINCER paper's experiments (``experiments.simulate``)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..datasets import DATASETS
from ..experiments.config import DEFAULTS_SETS, PROTOCOLS, SimulationConfig
from ..spec import (
    DEFAULT_STRATEGY,
    MODEL_KINDS,
    MONITORS,
    RETRAIN_MODES,
    TRAINING_DEFAULTS,
    TRAINING_SCHEDULES,
)

DEFAULTS = SimulationConfig()


def register_command(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="reproduce the CINCER experiments on bundled data")
    p.add_argument("--dataset", default=DEFAULTS.dataset, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--model", default=DEFAULTS.model, help=f"one of {', '.join(MODEL_KINDS)}")
    p.add_argument("--noise", type=float, default=DEFAULTS.noise, help="label-noise rate in [0, 1]")
    p.add_argument("--noise-type", default=DEFAULTS.noise_type, help="random or structured")
    p.add_argument("--strategies", default=None,
                   help="comma-separated counter-example strategies and loop variants "
                        f"(default {DEFAULT_STRATEGY},no_ce,drop_ce; with --compare-defaults "
                        f"{DEFAULT_STRATEGY})")
    p.add_argument("--threshold", type=float, default=DEFAULTS.threshold, help="margin threshold τ")
    p.add_argument("--bootstrap", type=int, default=DEFAULTS.bootstrap,
                   help="size of the noisy bootstrap set")
    p.add_argument("--iterations", type=int, default=DEFAULTS.iterations,
                   help="incoming examples per run")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--retrain", "--mode", dest="retrain", default=DEFAULTS.retrain,
                   help=" or ".join(RETRAIN_MODES) + " (with --compare-defaults also both, "
                        "comma-separated)")
    p.add_argument("--protocol", default=DEFAULTS.protocol, help=" or ".join(PROTOCOLS))
    p.add_argument("--damping", type=float, default=None,
                   help="Fisher damping λ of the counter-examples (default: the retrain "
                        "mode's, " + _per_mode("damping") + ")")
    p.add_argument("--oracle-noise", type=float, default=DEFAULTS.oracle_noise,
                   help="probability that the simulated annotator answers wrongly")
    p.add_argument("--show-confirmed", action="store_true",
                   help="allow human-confirmed examples as counter-examples again "
                        "(the paper's loop; by default they are skipped)")
    p.add_argument("--max-epochs", type=int, default=DEFAULTS.max_epochs,
                   help="epochs cap for scratch training")
    p.add_argument("--schedule", choices=TRAINING_SCHEDULES, default=None,
                   help="when training stops: validation (held-out loss with patience, then a "
                        "refit on all data), accuracy (at a running train accuracy; with "
                        "--no-standardize --damping 1 the runs of docs/results.md before wave "
                        "2) or fixed (epoch cap); default: the retrain mode's, "
                        + _per_mode("schedule"))
    p.add_argument("--monitor", choices=MONITORS, default=DEFAULTS.monitor,
                   help="with --schedule validation: watch the held-out loss (default) or its "
                        "errors (ties broken by the loss)")
    p.add_argument("--patience", type=int, default=DEFAULTS.patience,
                   help="with --schedule validation: epochs without a held-out improvement "
                        f"before training stops (default {DEFAULTS.patience})")
    p.add_argument("--no-refit", action="store_true",
                   help="with --schedule validation: keep the best epoch's weights instead of "
                        "retraining on all data for that many epochs")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardize the inputs inside the model (--no-standardize: as they "
                        "are, the models of docs/results.md before wave 2); default: the "
                        "retrain mode's for tabular data (" + _per_mode("standardize")
                        + "), never for images and text")
    p.add_argument("--compare-defaults", default=None, metavar="BASE,OTHER[,...]",
                   help="run the same seeds with each set of training defaults (schedule, "
                        f"standardization, damping) and print the table against the first: "
                        f"{', '.join(DEFAULTS_SETS)} (old: the pre-wave-2 flags; new: the "
                        "spec's) or SCHEDULE/std|raw/DAMPING, e.g. old,new")
    p.add_argument("--early-stop-accuracy", type=float, default=None,
                   help="with --schedule accuracy: stop scratch training at this running "
                        "train accuracy (default 0.9, 0.7 for lr; above 1 disables it)")
    p.add_argument("--n-samples", type=int, default=None, help="size of the synthetic data set")
    p.add_argument("--out", default=None, help="directory for results.json and PNG plots")
    p.add_argument("--json", action="store_true", help="print the JSON document on stdout")
    p.set_defaults(func=_command)


def _per_mode(key: str) -> str:
    return ", ".join(f"{mode} {getattr(TRAINING_DEFAULTS[mode], key)}" for mode in RETRAIN_MODES)


def _command(args: argparse.Namespace) -> int:
    from ..cli import UsageError, parse_list

    compare = parse_list(args.compare_defaults) if args.compare_defaults is not None else None
    modes = parse_list(args.retrain)
    strategies = args.strategies or (DEFAULT_STRATEGY if compare is not None
                                      else f"{DEFAULT_STRATEGY},no_ce,drop_ce")
    config = SimulationConfig(
        dataset=args.dataset, model=args.model, noise=args.noise, noise_type=args.noise_type,
        strategies=parse_list(strategies), threshold=args.threshold,
        bootstrap=args.bootstrap, iterations=args.iterations, seeds=parse_list(args.seeds, int),
        retrain=modes[0] if len(modes) == 1 else args.retrain, protocol=args.protocol,
        damping=args.damping, oracle_noise=args.oracle_noise,
        skip_confirmed=not args.show_confirmed, max_epochs=args.max_epochs,
        schedule=args.schedule, early_stop_accuracy=args.early_stop_accuracy,
        n_samples=args.n_samples, monitor=args.monitor, patience=args.patience,
        refit=not args.no_refit, standardize=args.standardize)
    if compare is not None:
        return _compare(args, config, compare, modes)
    from ..experiments.plots import plot_traces
    from ..experiments.simulate import simulate
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


def _compare(args, config: SimulationConfig, sets: list[str], modes: list[str]) -> int:
    """``--compare-defaults``: every set under every mode, the table against the first set."""
    from ..cli import UsageError
    from ..experiments.config import defaults_set
    from ..experiments.simulate import compare_defaults, comparison_table
    given = [flag for flag, value in (("--schedule", args.schedule), ("--damping", args.damping),
                                      ("--standardize", args.standardize)) if value is not None]
    try:
        if given:
            raise ValueError(f"{', '.join(given)} and --compare-defaults exclude each other: "
                             "the sets say how to train")
        if config.protocol != "cleaning":
            raise ValueError("--compare-defaults runs the cleaning protocol")
        for name in sets:
            defaults_set(name, RETRAIN_MODES[0])
        config.retrain = modes[0] if modes and modes[0] in RETRAIN_MODES else config.retrain
        document = compare_defaults(config, sets, modes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "compare.json"), "w") as fh:
            json.dump(document, fh, indent=1)
    if args.json:
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(comparison_table(document))
    return 0
