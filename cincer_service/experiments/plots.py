"""Matplotlib figures of the experiments, written as PNG files (Agg backend, no display).

``plot_traces`` draws a ``simulate`` document's cleaned-count and F1 traces (mean ±
standard error over seeds per strategy); ``plot_inspection`` draws the audit's inspection
curves (share of planted errors found against share inspected) per detector.
"""
from __future__ import annotations

import os

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_traces(document: dict, out_dir: str) -> list[str]:
    """PNG plots of cleaned count and F1 against iteration, mean ± standard error bands."""
    plt = _pyplot()
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


def plot_inspection(curves: dict, path: str, title: str) -> None:
    """Mean "share of errors found vs share inspected" per detector, with the random line."""
    plt = _pyplot()
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
