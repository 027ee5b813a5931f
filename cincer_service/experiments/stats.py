"""Statistics over experiment runs: means, standard errors and medians over seeds.

``summarize_simulation`` turns ``simulate`` runs into per-strategy summaries;
``detection_metrics`` scores one detector's ranking against the planted errors (precision
in the top 5/10/20%, inspection AUC), ``summarize_audit`` averages those per detector and
``markdown_table`` prints them as the audit's table.
"""
from __future__ import annotations

import numpy as np

from ..detectors.metrics import inspection_auc, precision_at

SHARES = {"5pct": 0.05, "10pct": 0.10, "20pct": 0.20}
AUDIT_METRICS = [f"precision_at_{k}" for k in SHARES] + ["roc_auc", "seconds"]


def mean_se(values) -> tuple[float | None, float | None]:
    """Mean and standard error of the non-``None`` values (``(None, None)`` when none)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(np.mean(values)), se


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def summarize_simulation(runs) -> dict:
    """Per-strategy means, standard errors and medians over seeds of ``RunResult``s."""
    summary = {}
    for name in dict.fromkeys(r.strategy for r in runs):
        rs = [r for r in runs if r.strategy == name]
        cleaned_mean, cleaned_se = mean_se([r.n_cleaned for r in rs])
        f1_mean, f1_se = mean_se([r.f1 for r in rs])
        dev_f1_mean, dev_f1_se = mean_se([r.dev_f1 for r in rs])
        summary[name] = {
            "n_cleaned_mean": cleaned_mean, "n_cleaned_se": cleaned_se,
            "f1_mean": f1_mean, "f1_se": f1_se,
            "dev_f1_mean": dev_f1_mean, "dev_f1_se": dev_f1_se,
            "n_queries_mean": mean_se([r.n_queries for r in rs])[0],
            "n_cleaned_incoming_mean": mean_se([r.n_cleaned_incoming for r in rs])[0],
            "n_cleaned_counterexamples_mean": mean_se([r.n_cleaned_counterexamples for r in rs])[0],
            "n_noisy_mean": mean_se([None if r.n_noisy_bootstrap is None
                                     else r.n_noisy_bootstrap + r.n_noisy_stream for r in rs])[0],
            "precision_at_5_mean": mean_se([r.precision_at_5 for r in rs])[0],
            "precision_at_10_mean": mean_se([r.precision_at_10 for r in rs])[0],
            "counterexample_ms_median": median([r.counterexample_ms for r in rs]),
            "version_to_counterexample_ms_median": median(
                [r.version_to_counterexample_ms for r in rs]),
            "seconds_per_iteration_median": median([r.seconds_per_iteration for r in rs]),
        }
    return summary


def detection_metrics(scores, is_error) -> dict:
    """Precision in the top 5/10/20% and inspection AUC of one ranking."""
    out = {f"precision_at_{k}": precision_at(scores, is_error, share) for k, share in SHARES.items()}
    out["roc_auc"] = inspection_auc(scores, is_error)
    return out


def summarize_audit(runs: list[dict]) -> dict:
    """Per-detector mean and standard deviation of every audit metric over seeds."""
    summary = {}
    for name in dict.fromkeys(r["detector"] for r in runs):
        rows = [r for r in runs if r["detector"] == name]
        entry = {}
        for metric in AUDIT_METRICS:
            values = np.array([r[metric] for r in rows], dtype=np.float64)
            entry[f"{metric}_mean"] = round(float(values.mean()), 4)
            entry[f"{metric}_std"] = round(float(values.std()), 4)
        summary[name] = entry
    return summary


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
