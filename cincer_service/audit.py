"""``cincer-service audit``: offline detectors side by side on bundled data with planted noise.

Per seed: split the data set, corrupt a share of the training labels, train the model in
segments (checkpoints for TracIn), take the trusted set from the held-out split (true
labels), score every training example with each detector and measure precision in the top
5/10/20% and the inspection-curve AUC against the planted errors.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .datasets import DATASETS, NOISE_TYPES, inject_noise, load_dataset
from .detectors import (DETECTORS, NotEnoughTrusted, TrustedSet, cleanlab_available,
                        fit_with_checkpoints, get_detector, inspection_auc, inspection_curve,
                        precision_at)
from .models import MODEL_KINDS, Classifier
from .state import ModelState

DEFAULT_DETECTORS = ("self_influence,gd,gc,if,tracin,gd_class,gc_class,if_class,tracin_class,"
                     "euc,cos,dot,margin,mismatch,model_based,cleanlab")
SHARES = {"5pct": 0.05, "10pct": 0.10, "20pct": 0.20}
METRICS = [f"precision_at_{k}" for k in SHARES] + ["roc_auc", "seconds"]


@dataclass
class AuditConfig:
    dataset: str = "digits"
    model: str = "fc"
    noise: float = 0.2
    noise_type: str = "random"
    detectors: list[str] = field(default_factory=lambda: DEFAULT_DETECTORS.split(","))
    clean_size: int = 500
    seeds: list[int] = field(default_factory=lambda: [0])
    segments: int = 10
    epochs_per_segment: int = 10
    damping: float = 1e-3
    min_per_class: int = 5
    n_samples: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` with a readable message for any bad setting."""
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.model not in MODEL_KINDS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_KINDS)}")
        if self.model == "cnn" and self.dataset != "digits":
            raise ValueError("the cnn model needs image inputs: use --dataset digits")
        if self.noise_type not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {self.noise_type!r}; choose one of {', '.join(NOISE_TYPES)}")
        if not 0.0 < self.noise < 1.0:
            raise ValueError("--noise must lie strictly between 0 and 1 (the metrics need planted errors)")
        if not self.detectors:
            raise ValueError("--detectors is empty")
        unknown = [d for d in self.detectors if d not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown detector(s) {', '.join(unknown)}; choose from "
                             f"{', '.join(sorted(DETECTORS))}")
        if len(set(self.detectors)) != len(self.detectors):
            raise ValueError("--detectors lists a detector twice")
        if "cleanlab" in self.detectors and not cleanlab_available():
            raise ValueError("detector 'cleanlab' needs cleanlab: pip install 'cincer-service[bench]'")
        if self.clean_size < 1:
            raise ValueError("--clean-size must be at least 1")
        if not self.seeds:
            raise ValueError("--seeds is empty")
        if self.segments < 1 or self.epochs_per_segment < 1:
            raise ValueError("--segments and --epochs-per-segment must be positive")
        if self.damping <= 0:
            raise ValueError("--damping must be positive")


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
    clf = Classifier(config.model, ds.input_shape, ds.n_classes, seed=seed,
                     max_epochs=config.segments * config.epochs_per_segment)
    checkpoints = fit_with_checkpoints(clf, ds.X_train, noisy, config.segments,
                                       config.epochs_per_segment)
    state = ModelState.build(clf, ds.X_train, noisy, damping=config.damping)
    rng = np.random.default_rng(seed + 12345)
    pool = rng.permutation(len(ds.y_test))[:config.clean_size]
    trusted = TrustedSet(y=ds.y_test[pool], X=ds.X_test[pool])
    return AuditRun(state, trusted, is_error, ds.y_train, checkpoints, seed)


def detector_options(name: str, run: AuditRun, config: AuditConfig) -> dict:
    """Per-run options: TracIn's checkpoints, model_based's simulated annotator, seeds."""
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


def evaluate(scores, is_error) -> dict:
    out = {f"precision_at_{k}": precision_at(scores, is_error, share) for k, share in SHARES.items()}
    out["roc_auc"] = inspection_auc(scores, is_error)
    return out


def summarize(runs: list[dict]) -> dict:
    summary = {}
    for name in dict.fromkeys(r["detector"] for r in runs):
        rows = [r for r in runs if r["detector"] == name]
        entry = {}
        for metric in METRICS:
            values = np.array([r[metric] for r in rows], dtype=np.float64)
            entry[f"{metric}_mean"] = round(float(values.mean()), 4)
            entry[f"{metric}_std"] = round(float(values.std()), 4)
        summary[name] = entry
    return summary


def run_audit(config: AuditConfig, progress=None) -> tuple[dict, dict]:
    """Run every detector on every seed; return ``(document, curves)``.

    ``document`` has the CLI's JSON shape; ``curves[detector]`` lists each seed's
    inspection curve for the plot.
    """
    config.validate()
    runs, curves = [], {}
    for seed in config.seeds:
        run = prepare_run(config, seed)
        for name in config.detectors:
            detector = get_detector(name, **detector_options(name, run, config))
            start = time.perf_counter()
            try:
                scores = detector.score(run.state, run.trusted)
            except NotEnoughTrusted as exc:
                raise ValueError(f"{exc} (raise --clean-size or lower --min-per-class)") from None
            seconds = time.perf_counter() - start
            runs.append({"detector": name, "seed": seed, **{k: round(v, 4) for k, v in
                         evaluate(scores, run.is_error).items()}, "seconds": round(seconds, 3)})
            curves.setdefault(name, []).append(inspection_curve(scores, run.is_error))
            if progress is not None:
                progress.update(1)
    document = {"config": {**asdict(config), "clean_size_used": len(run.trusted),
                           "n_audited": int(run.state.n)},
                "runs": runs, "summary": summarize(runs)}
    return document, curves


def markdown_table(document: dict) -> str:
    """Mean ± std per detector, seed 004 Table 2 columns plus AUC and seconds."""
    lines = ["| detector | top 5% | top 10% | top 20% | inspection AUC | seconds |",
             "|---|---|---|---|---|---|"]
    for name, s in document["summary"].items():
        cells = [f"{100 * s[f'{m}_mean']:.1f} ± {100 * s[f'{m}_std']:.1f}"
                 for m in ("precision_at_5pct", "precision_at_10pct", "precision_at_20pct")]
        cells.append(f"{s['roc_auc_mean']:.3f} ± {s['roc_auc_std']:.3f}")
        cells.append(f"{s['seconds_mean']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_inspection(curves: dict, path: str, title: str) -> None:
    """Mean "share of errors found vs share inspected" per detector, with the random line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(7, 5))
    colors = plt.get_cmap("tab20").colors
    for i, (name, per_seed) in enumerate(curves.items()):
        mean = np.mean([np.interp(grid, x, y) for x, y in per_seed], axis=0)
        ax.plot(grid, mean, label=name, lw=1.2, color=colors[i % len(colors)],
                linestyle=("-", "--", ":")[(i // len(colors)) % 3])
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="random")
    ax.set_xlabel("share of the data set inspected")
    ax.set_ylabel("share of planted errors found")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def register_command(subparsers) -> None:
    p = subparsers.add_parser("audit", help="compare offline mislabel detectors on bundled data")
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--model", default="fc", help=f"one of {', '.join(MODEL_KINDS)}")
    p.add_argument("--noise", type=float, default=0.2, help="share of training labels corrupted")
    p.add_argument("--noise-type", default="random", help="random or structured")
    p.add_argument("--detectors", default=DEFAULT_DETECTORS, help="comma-separated detector names")
    p.add_argument("--clean-size", type=int, default=500,
                   help="trusted-set size, drawn from the held-out split (capped at its size)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--segments", type=int, default=10, help="training segments (TracIn checkpoints)")
    p.add_argument("--epochs-per-segment", type=int, default=10, help="epochs per training segment")
    p.add_argument("--damping", type=float, default=1e-3, help="Hessian/Fisher damping λ")
    p.add_argument("--min-per-class", type=int, default=5,
                   help="class-based detectors refuse to run below this many trusted examples per class")
    p.add_argument("--n-samples", type=int, default=None, help="size of the synthetic data set")
    p.add_argument("--out", default=None, help="directory for audit.json, audit-table.md, audit-roc.png")
    p.add_argument("--json", action="store_true", help="print the JSON document on stdout")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .cli import UsageError, parse_list

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
    with tqdm(total=len(config.seeds) * len(config.detectors), desc="audit", unit="run",
              file=sys.stderr) as bar:
        try:
            document, curves = run_audit(config, progress=bar)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    table = markdown_table(document)
    if args.out:
        with open(os.path.join(args.out, "audit.json"), "w") as fh:
            json.dump(document, fh, indent=1)
        with open(os.path.join(args.out, "audit-table.md"), "w") as fh:
            fh.write(f"{config.dataset}/{config.model}, {config.noise:.0%} {config.noise_type} noise, "
                     f"seeds {','.join(map(str, config.seeds))}\n\n{table}")
        plot_inspection(curves, os.path.join(args.out, "audit-roc.png"),
                        f"{config.dataset}/{config.model}, {config.noise:.0%} {config.noise_type} noise")
    if args.json:
        json.dump(document, sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(table)
    return 0
