"""``cincer-service service-sim``: replay a bundled data set through the real service
(``experiments.service_sim``); the JSON document goes to stdout, a PNG to ``--out``."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..datasets import DATASETS
from ..experiments.crowd_sim import CrowdSimConfig
from ..experiments.service_sim import ServiceSimConfig
from ..spec import MODEL_KINDS, QUEUE_ORDERS, RETRAIN_MODES

DEFAULTS = ServiceSimConfig()
CROWD = CrowdSimConfig()


def register_command(subparsers) -> None:
    p = subparsers.add_parser(
        "service-sim", help="replay a data set with planted noise through the service "
                            "(queue order, question budget): cleaned labels per answer")
    p.add_argument("--dataset", default=DEFAULTS.dataset, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--model", default=DEFAULTS.model, help=f"one of {', '.join(MODEL_KINDS)}")
    p.add_argument("--noise", type=float, default=DEFAULTS.noise, help="label-noise rate")
    p.add_argument("--noise-type", default=DEFAULTS.noise_type, help="random or structured")
    p.add_argument("--bootstrap", type=int, default=DEFAULTS.bootstrap,
                   help="size of the noisy bootstrap set")
    p.add_argument("--stream", type=int, default=DEFAULTS.stream,
                   help="incoming examples after the bootstrap set")
    p.add_argument("--batch", type=int, default=DEFAULTS.batch, help="examples per ingest")
    p.add_argument("--answers-per-batch", type=int, default=DEFAULTS.answers_per_batch,
                   help="answers the simulated annotator gives after each batch")
    p.add_argument("--answers", type=int, default=DEFAULTS.answers, help="answers in all")
    p.add_argument("--ks", default=",".join(map(str, DEFAULTS.ks)),
                   help="report cleaned labels after these numbers of answers")
    p.add_argument("--orders", default=",".join(DEFAULTS.orders),
                   help=f"queue orders to compare: {', '.join(QUEUE_ORDERS)}")
    p.add_argument("--budgets", default="none",
                   help="question budgets (per 100 incoming examples) to compare; "
                        "'none' is the fixed threshold")
    p.add_argument("--threshold", type=float, default=DEFAULTS.threshold,
                   help="the fixed margin threshold τ")
    p.add_argument("--retrain-every", type=int, default=DEFAULTS.retrain_every,
                   help="retrain after this many answers")
    p.add_argument("--retrain", default=DEFAULTS.retrain_mode, help=" or ".join(RETRAIN_MODES))
    p.add_argument("--max-epochs", type=int, default=DEFAULTS.max_epochs)
    p.add_argument("--holdout-share", type=float, default=DEFAULTS.holdout_share,
                   help="share of each bootstrap class held out for the noisy held-out "
                        "metrics")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--out", default=None, help="directory for results.json and "
                                               "service_sim.png")
    p.add_argument("--crowd", action="store_true",
                   help="simulate a crowd (10 annotators, accuracy 0.95..0.60, 2 spammers) "
                        "under the policies single, majority3 and consensus; unless given, "
                        f"--stream {CROWD.base.stream}, --answers {CROWD.base.answers}, "
                        f"--answers-per-batch {CROWD.base.answers_per_batch}, --seeds "
                        f"{','.join(map(str, CROWD.base.seeds))}")
    p.add_argument("--policies", default=",".join(CROWD.policies),
                   help="with --crowd: the policies to compare")
    p.set_defaults(func=_command)


def _budget(text: str):
    return None if text.strip().lower() in ("none", "fixed") else float(text)


def _command(args: argparse.Namespace) -> int:
    from ..cli import UsageError, parse_list
    from ..experiments.service_sim import plot_service_sim, service_sim

    if args.crowd:
        return _crowd(args)
    config = ServiceSimConfig(
        dataset=args.dataset, model=args.model, noise=args.noise, noise_type=args.noise_type,
        bootstrap=args.bootstrap, stream=args.stream, batch=args.batch,
        answers_per_batch=args.answers_per_batch, answers=args.answers,
        ks=parse_list(args.ks, int), orders=parse_list(args.orders),
        budgets=parse_list(args.budgets, _budget), threshold=args.threshold,
        retrain_every=args.retrain_every, retrain_mode=args.retrain,
        max_epochs=args.max_epochs, holdout_share=args.holdout_share,
        seeds=parse_list(args.seeds, int))
    try:
        config.validate()
        document = service_sim(config, log=sys.stderr)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as fh:
            json.dump(document, fh, indent=1)
        plot_service_sim(document, args.out)
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    return 0


def _crowd(args: argparse.Namespace) -> int:
    """``--crowd``: the crowd simulation's JSON document (``experiments.crowd_sim``)."""
    from ..cli import UsageError, parse_list
    from ..experiments.crowd_sim import crowd_sim

    crowd = CROWD.base

    def given(name, parsed, default):
        return default if parsed == getattr(DEFAULTS, name) else parsed

    config = CrowdSimConfig(base=ServiceSimConfig(
        dataset=args.dataset, model=args.model, noise=args.noise, noise_type=args.noise_type,
        bootstrap=args.bootstrap, stream=given("stream", args.stream, crowd.stream),
        batch=args.batch, answers_per_batch=given("answers_per_batch", args.answers_per_batch,
                                                  crowd.answers_per_batch),
        answers=given("answers", args.answers, crowd.answers), orders=["priority"],
        threshold=args.threshold, retrain_every=args.retrain_every,
        retrain_mode=args.retrain, max_epochs=args.max_epochs,
        seeds=crowd.seeds if args.seeds == "0" else parse_list(args.seeds, int)),
        policies=parse_list(args.policies))
    try:
        document = crowd_sim(config, log=sys.stderr)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "crowd.json"), "w") as fh:
            json.dump(document, fh, indent=1)
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    return 0
