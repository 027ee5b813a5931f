"""The CINCER paper's experiments on bundled data: one runner per protocol.

Two protocols:

* ``cleaning`` (paper Q1/Q3): noisy bootstrap set, a stream of incoming noisy examples,
  a perfect (or noisy) oracle, retraining after every example; reports cleaned counts
  and weighted F1 on the clean test split after every iteration.
* ``ce-precision`` (paper Q2): noisy bootstrap set, clean stream, no retraining; every
  disagreement gets a ranked list of counter-examples; reports Pr@5 / Pr@10.

``simulate(config)`` runs every (seed, strategy) pair and returns the JSON document of
``cincer-service simulate --json``. ``compare_defaults`` runs the same seeds under sets of
training defaults side by side (``simulate --compare-defaults old,new``) and
``comparison_table`` prints its table.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
from sklearn.metrics import f1_score
from tqdm import tqdm

from ..cleaning import NoisyOracle, PerfectOracle, cincer_step
from ..counterexamples import NoCandidates, get_strategy
from ..datasets import inject_noise, load_dataset
from ..models import Classifier
from ..spec import RETRAIN_MODES, TrainingDefaults
from ..state import ModelState
from .config import SimulationConfig, defaults_set, strategy_plan
from .stats import mean_se, summarize_simulation


@dataclass
class RunResult:
    strategy: str
    seed: int
    n_queries: int = 0
    n_cleaned: int | None = None
    n_cleaned_incoming: int | None = None
    n_cleaned_counterexamples: int | None = None
    n_noisy_bootstrap: int | None = None       # planted errors there were to clean
    n_noisy_stream: int | None = None
    f1: float | None = None
    dev_f1: float | None = None          # on the unused part of the training pool (see Experiment)
    f1_trace: list[float] | None = None
    cleaned_trace: list[int] | None = None
    precision_at_5: float | None = None
    precision_at_10: float | None = None
    seconds_per_iteration: float | None = None
    counterexample_ms: float | None = None          # median: state built -> counter-example
    version_to_counterexample_ms: float | None = None   # median: new model -> counter-example


MIN_DEV_SIZE = 20


def _weighted_f1(clf: Classifier, X, y) -> float:
    return float(f1_score(y, clf.predict(X), average="weighted"))


def _dev_f1(exp: "Experiment", clf: Classifier) -> float | None:
    """Weighted F1 on the development set, or ``None`` when it is too small to mean much."""
    if len(exp.dev) < MIN_DEV_SIZE:
        return None
    return _weighted_f1(clf, exp.data.X_train[exp.dev], exp.data.y_train[exp.dev])


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
        # The training examples neither bootstrap nor stream use, with their true labels: the
        # development set on which settings are compared, so the test split is never used.
        self.dev = np.sort(order[need:])

    def new_classifier(self) -> Classifier:
        return Classifier(self.config.model, self.data.input_shape, self.data.n_classes,
                          seed=self.seed, max_epochs=self.config.max_epochs,
                          early_stop_accuracy=self.config.early_stop_accuracy,
                          schedule=self.config.schedule, monitor=self.config.monitor,
                          patience=self.config.patience,
                          refit=self.config.refit, standardize=self.config.standardize)

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
                       n_cleaned_counterexamples=0, f1_trace=[], cleaned_trace=[],
                       n_noisy_bootstrap=int(exp.corrupted[exp.bootstrap].sum()),
                       n_noisy_stream=int(exp.corrupted[exp.stream].sum()))
    iteration_seconds, ce_ms, version_ms = [], [], []
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
            done = time.perf_counter()
            ce_ms.append((done - ce_start) * 1e3)
            version_ms.append((done - start) * 1e3)     # new model -> its counter-example
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
    result.dev_f1 = _dev_f1(exp, clf)
    result.seconds_per_iteration = float(np.median(iteration_seconds)) if iteration_seconds else None
    result.counterexample_ms = float(np.median(ce_ms)) if ce_ms else None
    result.version_to_counterexample_ms = float(np.median(version_ms)) if version_ms else None
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
    result.dev_f1 = _dev_f1(exp, clf)
    return result


def simulate(config: SimulationConfig, show_progress: bool = True) -> dict:
    """Run every (seed, strategy) pair; return the JSON document of ``simulate --json``
    (its ``config`` with the schedule, standardization and damping actually used)."""
    config.validate()
    config = config.resolved()
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
    return {"config": asdict(config), "runs": [asdict(r) for r in runs],
            "summary": summarize_simulation(runs)}


def _compare_row(base: dict, row: dict) -> dict:
    """``row``'s change against the baseline ``base`` on the seeds both ran."""
    seeds = [k for k in row["per_seed"] if k in base["per_seed"]]
    changes = {}
    for key in ("n_cleaned", "f1"):
        mean, paired_se = mean_se([row["per_seed"][k][key] - base["per_seed"][k][key]
                                   for k in seeds])
        changes[f"d_{key}"], changes[f"d_{key}_paired_se"] = mean, paired_se
        # The target: never below the baseline by more than one (baseline) standard error.
        changes[f"within_1se_{key}"] = bool(row[f"{key}_mean"]
                                            >= base[f"{key}_mean"] - base[f"{key}_se"])
    return {"baseline": base["set"], **changes}


def compare_defaults(config: SimulationConfig, sets: list[str], modes: list[str],
                     show_progress: bool = True) -> dict:
    """Run ``config`` under every retrain mode with every set of training defaults
    (``config.DEFAULTS_SETS`` names, or ``schedule/std|raw/λ``); the first set is the
    baseline. Returns the JSON document of ``simulate --compare-defaults --json``: a row per
    (mode, set, strategy) with mean ± se over the seeds of the cleaned count and the test
    F1, and the change against the baseline on the same seeds (``within_1se_*``: the mean
    is at least the baseline's mean minus its standard error)."""
    if len(sets) < 2 or len(set(sets)) != len(sets):
        raise ValueError("--compare-defaults needs at least two different sets, the baseline first")
    if not modes or any(m not in RETRAIN_MODES for m in modes) or len(set(modes)) != len(modes):
        raise ValueError("--retrain must be scratch, warm or both (comma-separated)")
    plans = {(mode, name): defaults_set(name, mode) for mode in modes for name in sets}
    config.validate()
    rows, documents = [], []
    for mode in modes:
        for name in sets:
            training = plans[(mode, name)]
            document = simulate(replace(config, retrain=mode).with_training(training),
                                show_progress=show_progress)
            documents.append({"mode": mode, "set": name, **document})
            for strategy in config.strategies:
                per_seed = {r["seed"]: {"n_cleaned": r["n_cleaned"], "f1": r["f1"]}
                            for r in document["runs"] if r["strategy"] == strategy}
                summary = document["summary"][strategy]
                used = document["config"]          # images and text stay unstandardized
                label = TrainingDefaults(used["schedule"], used["standardize"],
                                         used["damping"]).label()
                row = {"dataset": config.dataset, "mode": mode, "set": name,
                       "training": asdict(training), "label": label,
                       "strategy": strategy, "seeds": sorted(per_seed),
                       **{k: summary[k] for k in ("n_cleaned_mean", "n_cleaned_se", "f1_mean",
                                                  "f1_se", "dev_f1_mean", "dev_f1_se")},
                       "per_seed": per_seed}
                if name != sets[0]:
                    base = next(r for r in rows if r["mode"] == mode and r["set"] == sets[0]
                                and r["strategy"] == strategy)
                    row.update(_compare_row(base, row))
                rows.append(row)
    return {"config": asdict(config), "sets": sets, "modes": modes, "rows": rows,
            "runs": documents}


def _fmt(mean, se, digits) -> str:
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def comparison_table(document: dict) -> str:
    """The rows of ``compare_defaults`` as a Markdown table."""
    lines = ["| data | mode | set | schedule/std/λ | strategy | cleaned | F1 | Δ cleaned | Δ F1 "
             "| within 1 se (cleaned, F1) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in document["rows"]:
        if "baseline" in row:
            delta = (f"{row['d_n_cleaned']:+.1f} | {row['d_f1']:+.3f} | "
                     f"{'yes' if row['within_1se_n_cleaned'] else 'NO'}, "
                     f"{'yes' if row['within_1se_f1'] else 'NO'}")
        else:
            delta = "— | — | (baseline)"
        lines.append(f"| {row['dataset']} | {row['mode']} | {row['set']} | {row['label']} | "
                     f"{row['strategy']} | {_fmt(row['n_cleaned_mean'], row['n_cleaned_se'], 1)} | "
                     f"{_fmt(row['f1_mean'], row['f1_se'], 3)} | {delta} |")
    return "\n".join(lines)
