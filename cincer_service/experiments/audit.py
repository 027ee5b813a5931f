"""Offline detectors side by side on bundled data with planted label noise.

Per seed: split the data set, corrupt a share of the training labels, train the model in
segments (checkpoints for TracIn), take the trusted set from the held-out split (true
labels), run the detectors through ``detectors.find_issues`` (the same orchestration as
the service's audits) and measure each ranking's precision in the top 5/10/20% and its
inspection-curve AUC against the planted errors. Pair detectors (``near_duplicates``)
report their pairs per seed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..datasets import inject_noise, load_dataset
from ..detectors import (
    DETECTORS,
    NotEnoughTrusted,
    TrustedSet,
    find_issues,
    fit_with_checkpoints,
    inspection_curve,
)
from ..models import Classifier
from ..state import ModelState
from .config import AuditConfig
from .stats import detection_metrics, summarize_audit


@dataclass
class AuditRun:
    """One seed: trained model state, trusted set, planted errors, TracIn checkpoints."""

    state: ModelState
    trusted: TrustedSet
    is_error: np.ndarray
    true_labels: np.ndarray
    checkpoints: list
    seed: int


def prepare_run(config: AuditConfig, seed: int) -> AuditRun:
    """Split, corrupt, train in segments and build the model state for one seed."""
    kwargs = {"n_samples": config.n_samples} if config.dataset == "synthetic" else {}
    ds = load_dataset(config.dataset, seed=seed, **kwargs)
    noisy, is_error = inject_noise(ds.y_train, ds.n_classes, config.noise, config.noise_type, seed)
    # TracIn needs segments of exactly epochs_per_segment: the accuracy schedule's warm
    # segments always run their epochs (the validation schedule may stop early).
    clf = Classifier(config.model, ds.input_shape, ds.n_classes, seed=seed,
                     max_epochs=config.segments * config.epochs_per_segment,
                     schedule="accuracy")
    checkpoints = fit_with_checkpoints(clf, ds.X_train, noisy, config.segments,
                                       config.epochs_per_segment)
    state = ModelState.build(clf, ds.X_train, noisy, damping=config.damping)
    rng = np.random.default_rng(seed + 12345)
    pool = rng.permutation(len(ds.y_test))[:config.clean_size]
    trusted = TrustedSet(y=ds.y_test[pool], X=ds.X_test[pool])
    return AuditRun(state, trusted, is_error, ds.y_train, checkpoints, seed)


def detector_options(name: str, run: AuditRun, config: AuditConfig) -> dict:
    """Per-run options: TracIn's checkpoints, model_based's simulated annotator, seeds."""
    if DETECTORS[name].output != "scores":
        return {}
    options = {"min_per_class": config.min_per_class}
    if name.startswith("tracin"):
        options["checkpoints"] = run.checkpoints
    if name == "model_based":
        options.update(seed=run.seed, annotator=lambda idx: run.true_labels[idx])
    if name in ("cleanlab", "self_influence_cg"):
        options["seed"] = run.seed
    if name == "cleanlab":
        options["max_epochs"] = config.segments * config.epochs_per_segment
    return options


def _refuse_skipped(report) -> None:
    """The experiment compares every detector it was given: a skipped one is an error."""
    if not report.errors:
        return
    exc = next(iter(report.errors.values()))
    hint = " (raise --clean-size or lower --min-per-class)" \
        if isinstance(exc, NotEnoughTrusted) else ""
    raise ValueError(f"{exc}{hint}")


def _ticks(progress, seed: int):
    """A ``find_issues`` progress callback that ticks a tqdm-like bar once per detector."""
    if progress is None:
        return None

    def tick(done, total, name):
        if done > 0:
            progress.update(1)
        progress.set_postfix(detector=name, seed=seed)
    return tick


def run_audit(config: AuditConfig, progress=None) -> tuple[dict, dict]:
    """Run every detector on every seed; return ``(document, curves)``.

    ``document`` has the CLI's JSON shape (plus ``duplicates`` per seed when a pair
    detector ran); ``curves[detector]`` lists each seed's inspection curve for the plot.
    ``progress`` is a tqdm-like bar advanced by one per (seed, detector).
    """
    config.validate()
    pairs_asked = any(DETECTORS[name].output == "pairs" for name in config.detectors)
    runs, curves, duplicates = [], {}, []
    for seed in config.seeds:
        run = prepare_run(config, seed)
        options = {name: detector_options(name, run, config) for name in config.detectors}
        report = find_issues(run.state, config.detectors, trusted=run.trusted, top_k=0,
                             progress=_ticks(progress, seed), options=options)
        if progress is not None:
            progress.update(1)
        _refuse_skipped(report)
        for name, scores in report.scores.items():
            metrics = detection_metrics(scores, run.is_error)
            runs.append({"detector": name, "seed": seed,
                         **{k: round(v, 4) for k, v in metrics.items()},
                         "seconds": round(report.seconds[name], 3)})
            curves.setdefault(name, []).append(inspection_curve(scores, run.is_error))
        if pairs_asked:
            found = report.to_dict()
            duplicates.append({"seed": seed, "duplicates": found["duplicates"],
                               "leakage": found["leakage"]})
    document = {"config": {**asdict(config), "clean_size_used": len(run.trusted),
                           "n_audited": int(run.state.n)},
                "runs": runs, "summary": summarize_audit(runs)}
    if pairs_asked:
        document["duplicates"] = duplicates
    return document, curves
