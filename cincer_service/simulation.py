"""``cincer-service simulate``: the CINCER paper's experiments on bundled data.

Two protocols:

* ``cleaning`` (paper Q1/Q3): noisy bootstrap set, a stream of incoming noisy examples,
  a perfect (or noisy) oracle, retraining after every example; reports cleaned counts
  and weighted F1 on the clean test split after every iteration.
* ``ce-precision`` (paper Q2): noisy bootstrap set, clean stream, no retraining; every
  disagreement gets a ranked list of counter-examples; reports Pr@5 / Pr@10.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import f1_score
from tqdm import tqdm

from .cleaning import NoisyOracle, PerfectOracle, cincer_step
from .catalog import COUNTEREXAMPLE_DAMPING
from .counterexamples import STRATEGIES, NoCandidates, get_strategy
from .datasets import DATASETS, NOISE_TYPES, inject_noise, load_dataset
from .models import MODEL_KINDS, Classifier
from .state import ModelState

LOOP_VARIANTS = {"no_ce": ("no_ce", None), "drop_ce": ("drop_ce", "top_fisher")}
PROTOCOLS = ("cleaning", "ce-precision")


def strategy_plan(name: str) -> tuple[str, str | None]:
    """Map a ``--strategies`` item to ``(loop variant, counter-example strategy)``."""
    if name in LOOP_VARIANTS:
        return LOOP_VARIANTS[name]
    if name in STRATEGIES:
        return "cincer", name
    raise ValueError(f"unknown strategy {name!r}; choose from "
                     f"{', '.join(sorted([*STRATEGIES, *LOOP_VARIANTS]))}")


@dataclass
class SimulationConfig:
    dataset: str = "breast"
    model: str = "fc"
    noise: float = 0.2
    noise_type: str = "random"
    strategies: list[str] = field(default_factory=lambda: ["top_fisher"])
    threshold: float = 0.2
    bootstrap: int = 100
    iterations: int = 100
    seeds: list[int] = field(default_factory=lambda: [0])
    retrain: str = "scratch"
    protocol: str = "cleaning"
    damping: float = COUNTEREXAMPLE_DAMPING
    oracle_noise: float = 0.0
    skip_confirmed: bool = True        # never show a human-confirmed example as counter-example
    max_epochs: int = 100
    early_stop_accuracy: float | None = None    # None: the model kind's default (0.9, lr 0.7)
    n_samples: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` with a readable message on any bad setting."""
        checks = [
            (self.dataset in DATASETS, f"unknown dataset {self.dataset!r}"),
            (self.model in MODEL_KINDS, f"unknown model {self.model!r}"),
            (self.noise_type in NOISE_TYPES, f"unknown noise type {self.noise_type!r}"),
            (0.0 <= self.noise <= 1.0, "--noise must lie in [0, 1]"),
            (self.retrain in ("scratch", "warm"), "--retrain must be scratch or warm"),
            (self.protocol in PROTOCOLS, f"--protocol must be one of {', '.join(PROTOCOLS)}"),
            (self.bootstrap > 0 and self.iterations >= 0, "--bootstrap must be > 0, --iterations >= 0"),
            (0.0 <= self.oracle_noise < 1.0, "--oracle-noise must lie in [0, 1)"),
            (bool(self.strategies) and bool(self.seeds), "give at least one strategy and one seed"),
            (not (self.model == "cnn" and self.dataset != "digits"), "cnn needs image data (digits)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for name in self.strategies:
            strategy_plan(name)


@dataclass
class RunResult:
    strategy: str
    seed: int
    n_queries: int = 0
    n_cleaned: int | None = None
    n_cleaned_incoming: int | None = None
    n_cleaned_counterexamples: int | None = None
    f1: float | None = None
    f1_trace: list[float] | None = None
    cleaned_trace: list[int] | None = None
    precision_at_5: float | None = None
    precision_at_10: float | None = None
    seconds_per_iteration: float | None = None
    counterexample_ms: float | None = None


def _weighted_f1(clf: Classifier, X, y) -> float:
    return float(f1_score(y, clf.predict(X), average="weighted"))


class Experiment:
    """Data, noise and stream order for one seed, shared by every strategy."""

    def __init__(self, config: SimulationConfig, seed: int):
        self.config, self.seed = config, seed
        self.data = load_dataset(config.dataset, seed=0, n_samples=config.n_samples)
        self.noisy, self.corrupted = inject_noise(
            self.data.y_train, self.data.n_classes, config.noise, config.noise_type, seed)
        order = np.random.default_rng(seed).permutation(len(self.data.y_train))
        need = config.bootstrap + config.iterations
        if need > len(order):
            raise ValueError(f"{config.dataset} has {len(order)} training examples; "
                             f"bootstrap + iterations needs {need}")
        self.bootstrap = order[:config.bootstrap]
        self.stream = order[config.bootstrap:need]

    def new_classifier(self) -> Classifier:
        return Classifier(self.config.model, self.data.input_shape, self.data.n_classes,
                          seed=self.seed, max_epochs=self.config.max_epochs,
                          early_stop_accuracy=self.config.early_stop_accuracy)

    def oracle(self):
        truth = self.data.y_train
        if self.config.oracle_noise > 0:
            return NoisyOracle(truth, self.data.n_classes, self.config.oracle_noise, self.seed)
        return PerfectOracle(truth)


def run_cleaning(exp: Experiment, name: str, progress=None) -> RunResult:
    """Protocol ``cleaning``: Algorithm 1 with retraining after every incoming example."""
    cfg, data = exp.config, exp.data
    variant, strategy_name = strategy_plan(name)
    strategy = get_strategy(strategy_name) if strategy_name else None
    oracle = exp.oracle()
    known = list(exp.bootstrap)                     # indices into the training split
    labels = {int(i): int(exp.noisy[i]) for i in known}
    confirmed: set[int] = set()                    # labels a human has answered for
    clf = exp.new_classifier()
    clf.fit(data.X_train[known], [labels[i] for i in known], mode="scratch")
    result = RunResult(name, exp.seed, n_cleaned=0, n_cleaned_incoming=0,
                       n_cleaned_counterexamples=0, f1_trace=[], cleaned_trace=[])
    iteration_seconds, ce_ms = [], []
    for t in exp.stream:
        t = int(t)
        start = time.perf_counter()
        y_known = np.array([labels[i] for i in known])
        state = ModelState.build(clf, data.X_train[known], y_known, damping=cfg.damping)
        ce_start = time.perf_counter()
        exclude = np.array([i in confirmed for i in known]) if cfg.skip_confirmed else None
        outcome = cincer_step(state, data.X_train[t], int(exp.noisy[t]), t, oracle, strategy,
                              cfg.threshold, variant, known_index=np.asarray(known),
                              exclude=exclude)
        if outcome.counterexample is not None:
            ce_ms.append((time.perf_counter() - ce_start) * 1e3)
        if outcome.suspicious:
            confirmed.add(t)
            result.n_queries += 1
            if exp.corrupted[t] and outcome.example_label == data.y_train[t]:
                result.n_cleaned_incoming += 1
        if outcome.counterexample is not None:
            k = known[outcome.counterexample]
            if outcome.dropped_counterexample:
                known.remove(k)
            elif outcome.counterexample_label is not None:
                if labels[k] != data.y_train[k] and outcome.counterexample_label == data.y_train[k]:
                    result.n_cleaned_counterexamples += 1
                labels[k] = outcome.counterexample_label
                confirmed.add(k)
        known.append(t)
        labels[t] = outcome.example_label
        clf.fit(data.X_train[known], [labels[i] for i in known], mode=cfg.retrain)
        iteration_seconds.append(time.perf_counter() - start)
        result.cleaned_trace.append(result.n_cleaned_incoming + result.n_cleaned_counterexamples)
        result.f1_trace.append(_weighted_f1(clf, data.X_test, data.y_test))
        if progress is not None:
            progress.update(1)
    result.n_cleaned = result.n_cleaned_incoming + result.n_cleaned_counterexamples
    result.f1 = result.f1_trace[-1] if result.f1_trace else _weighted_f1(clf, data.X_test, data.y_test)
    result.seconds_per_iteration = float(np.median(iteration_seconds)) if iteration_seconds else None
    result.counterexample_ms = float(np.median(ce_ms)) if ce_ms else None
    return result


def run_ce_precision(exp: Experiment, name: str, progress=None) -> RunResult:
    """Protocol ``ce-precision``: Pr@5/Pr@10 of ranked counter-examples, no retraining."""
    cfg, data = exp.config, exp.data
    variant, strategy_name = strategy_plan(name)
    result = RunResult(name, exp.seed)
    if strategy_name is None:          # no_ce shows no counter-example: nothing to rank
        if progress is not None:
            progress.update(len(exp.stream))
        return result
    strategy = get_strategy(strategy_name)
    known = exp.bootstrap
    clf = exp.new_classifier()
    clf.fit(data.X_train[known], exp.noisy[known], mode="scratch")
    state = ModelState.build(clf, data.X_train[known], exp.noisy[known], damping=cfg.damping)
    corrupted_known = exp.corrupted[known]
    p5, p10, ce_ms = [], [], []
    predictions = clf.predict(data.X_train[exp.stream])
    for t, prediction in zip(exp.stream, predictions):
        if progress is not None:
            progress.update(1)
        label = int(data.y_train[t])          # the stream is clean
        if prediction == label:
            continue
        start = time.perf_counter()
        try:
            ranking = strategy.rank(state, data.X_train[t], label)
        except NoCandidates:
            continue
        ce_ms.append((time.perf_counter() - start) * 1e3)
        result.n_queries += 1
        p5.append(float(corrupted_known[ranking.indices[:5]].mean()))
        p10.append(float(corrupted_known[ranking.indices[:10]].mean()))
    result.precision_at_5 = float(np.mean(p5)) if p5 else None
    result.precision_at_10 = float(np.mean(p10)) if p10 else None
    result.counterexample_ms = float(np.median(ce_ms)) if ce_ms else None
    result.f1 = _weighted_f1(clf, data.X_test, data.y_test)
    return result


def _mean_se(values) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(np.mean(values)), se


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def summarize(runs: list[RunResult]) -> dict:
    """Per-strategy means, standard errors and medians over seeds."""
    summary = {}
    for name in dict.fromkeys(r.strategy for r in runs):
        rs = [r for r in runs if r.strategy == name]
        cleaned_mean, cleaned_se = _mean_se([r.n_cleaned for r in rs])
        f1_mean, f1_se = _mean_se([r.f1 for r in rs])
        summary[name] = {
            "n_cleaned_mean": cleaned_mean, "n_cleaned_se": cleaned_se,
            "f1_mean": f1_mean, "f1_se": f1_se,
            "n_queries_mean": _mean_se([r.n_queries for r in rs])[0],
            "precision_at_5_mean": _mean_se([r.precision_at_5 for r in rs])[0],
            "precision_at_10_mean": _mean_se([r.precision_at_10 for r in rs])[0],
            "counterexample_ms_median": _median([r.counterexample_ms for r in rs]),
            "seconds_per_iteration_median": _median([r.seconds_per_iteration for r in rs]),
        }
    return summary


def simulate(config: SimulationConfig, show_progress: bool = True) -> dict:
    """Run every (seed, strategy) pair; return the JSON document of ``simulate --json``."""
    config.validate()
    runner = run_cleaning if config.protocol == "cleaning" else run_ce_precision
    total = len(config.seeds) * len(config.strategies) * config.iterations
    runs = []
    with tqdm(total=total, file=sys.stderr, disable=not show_progress,
              desc=f"{config.dataset}/{config.model} {config.protocol}") as progress:
        for seed in config.seeds:
            exp = Experiment(config, seed)
            for name in config.strategies:
                progress.set_postfix(strategy=name, seed=seed)
                runs.append(runner(exp, name, progress))
    return {"config": asdict(config), "runs": [asdict(r) for r in runs], "summary": summarize(runs)}


def plot_traces(document: dict, out_dir: str) -> list[str]:
    """PNG plots of cleaned count and F1 against iteration, mean ± standard error bands."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, ylabel in (("cleaned_trace", "# cleaned examples"), ("f1_trace", "weighted F1 (test)")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in document["summary"]:
            traces = [r[key] for r in document["runs"] if r["strategy"] == name and r[key]]
            if not traces:
                continue
            arr = np.asarray(traces, dtype=float)
            mean = arr.mean(axis=0)
            se = arr.std(axis=0, ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else np.zeros_like(mean)
            steps = np.arange(1, arr.shape[1] + 1)
            ax.plot(steps, mean, label=name)
            ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
        cfg = document["config"]
        ax.set(xlabel="iteration", ylabel=ylabel,
               title=f"{cfg['dataset']}/{cfg['model']}, {cfg['noise']:.0%} {cfg['noise_type']} noise")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, f"{key.replace('_trace', '')}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def register_command(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="reproduce the CINCER experiments on bundled data")
    p.add_argument("--dataset", default="breast", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--model", default="fc", help=f"one of {', '.join(MODEL_KINDS)}")
    p.add_argument("--noise", type=float, default=0.2, help="label-noise rate in [0, 1]")
    p.add_argument("--noise-type", default="random", help="random or structured")
    p.add_argument("--strategies", default="top_fisher,no_ce,drop_ce",
                   help="comma-separated counter-example strategies and loop variants")
    p.add_argument("--threshold", type=float, default=0.2, help="margin threshold τ")
    p.add_argument("--bootstrap", type=int, default=100, help="size of the noisy bootstrap set")
    p.add_argument("--iterations", type=int, default=100, help="incoming examples per run")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--retrain", default="scratch", help="scratch or warm")
    p.add_argument("--protocol", default="cleaning", help="cleaning or ce-precision")
    p.add_argument("--damping", type=float, default=COUNTEREXAMPLE_DAMPING,
                   help=f"Fisher damping λ (default {COUNTEREXAMPLE_DAMPING})")
    p.add_argument("--oracle-noise", type=float, default=0.0,
                   help="probability that the simulated annotator answers wrongly")
    p.add_argument("--show-confirmed", action="store_true",
                   help="allow human-confirmed examples as counter-examples again "
                        "(the paper's loop; by default they are skipped)")
    p.add_argument("--max-epochs", type=int, default=100, help="epochs cap for scratch training")
    p.add_argument("--early-stop-accuracy", type=float, default=None,
                   help="stop scratch training at this running train accuracy "
                        "(default 0.9, 0.7 for lr; above 1 disables early stopping)")
    p.add_argument("--n-samples", type=int, default=None, help="size of the synthetic data set")
    p.add_argument("--out", default=None, help="directory for results.json and PNG plots")
    p.add_argument("--json", action="store_true", help="print the JSON document on stdout")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from .cli import UsageError, parse_list

    config = SimulationConfig(
        dataset=args.dataset, model=args.model, noise=args.noise, noise_type=args.noise_type,
        strategies=parse_list(args.strategies), threshold=args.threshold,
        bootstrap=args.bootstrap, iterations=args.iterations, seeds=parse_list(args.seeds, int),
        retrain=args.retrain, protocol=args.protocol, damping=args.damping,
        oracle_noise=args.oracle_noise, skip_confirmed=not args.show_confirmed,
        max_epochs=args.max_epochs,
        early_stop_accuracy=args.early_stop_accuracy, n_samples=args.n_samples)
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
