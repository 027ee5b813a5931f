"""Near-duplicate pairs within label→prediction cells (De-Confusion's similarity errors).

Images are compared with SSIM (scikit-image), tabular rows with cosine similarity. Only
pairs inside the same (label, prediction) cell are compared; pairs whose two members sit
on different sides of the train/validation boundary are reported apart, as leakage.
``near_duplicates`` is the function; ``NearDuplicates`` registers it as the pair detector
``"near_duplicates"`` (cells from the state's labels and predictions).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import PairDetector, register


@dataclass
class DuplicatePair:
    first: int
    second: int
    similarity: float
    label: int
    prediction: int


@dataclass
class DuplicateReport:
    """Near-duplicate pairs; ``leakage`` holds those crossing train/validation."""

    pairs: list[DuplicatePair] = field(default_factory=list)
    leakage: list[DuplicatePair] = field(default_factory=list)
    compared: int = 0


def _is_image(X) -> bool:
    return X.ndim == 3 or (X.ndim == 4 and X.shape[-1] in (1, 3, 4))


def _cosine(Z):
    norms = np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    U = Z / norms
    return U @ U.T


def _ssim(a, b, data_range):
    from skimage.metrics import structural_similarity
    channel_axis = -1 if a.ndim == 3 and a.shape[-1] > 1 else None
    if a.ndim == 3 and a.shape[-1] == 1:
        a, b = a[..., 0], b[..., 0]
    win = min(7, *[s if s % 2 else s - 1 for s in a.shape[:2]])
    return float(structural_similarity(a, b, data_range=data_range, win_size=win,
                                       channel_axis=channel_axis))


def near_duplicates(X, labels, predictions, is_validation=None, threshold: float | None = None,
                    prefilter: float = 0.9) -> DuplicateReport:
    """Find near-duplicate pairs within each (label, prediction) cell.

    Parameters
    ----------
    X : inputs; images ``(n, H, W)`` / ``(n, H, W, C)`` use SSIM, other shapes cosine.
    labels, predictions : given label and model prediction per example (the cells).
    is_validation : optional boolean per example; pairs mixing both sides go to ``leakage``.
    threshold : SSIM ≥ 0.95 for images, cosine ≥ 0.99 for tabular by default.
    prefilter : images only: SSIM is computed just for pairs whose pixel cosine reaches
        this value (all cell pairs' cosines are one matrix product), which keeps the
        per-pair SSIM calls few.
    """
    X = np.asarray(X, dtype=np.float64)
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    image = _is_image(X)
    threshold = (0.95 if image else 0.99) if threshold is None else float(threshold)
    data_range = float(X.max() - X.min()) or 1.0
    flat = X.reshape(len(X), -1)
    report = DuplicateReport()
    for label, prediction in sorted(set(zip(labels.tolist(), predictions.tolist()))):
        members = np.flatnonzero((labels == label) & (predictions == prediction))
        if len(members) < 2:
            continue
        cos = _cosine(flat[members])
        rows, cols = np.triu_indices(len(members), k=1)
        keep = cos[rows, cols] >= (prefilter if image else threshold)
        for a, b in zip(rows[keep], cols[keep]):
            i, j = int(members[a]), int(members[b])
            similarity = _ssim(X[i], X[j], data_range) if image else float(cos[a, b])
            report.compared += 1
            if similarity < threshold:
                continue
            pair = DuplicatePair(i, j, similarity, int(label), int(prediction))
            crosses = is_validation is not None and bool(is_validation[i]) != bool(is_validation[j])
            (report.leakage if crosses else report.pairs).append(pair)
    return report


@register("near_duplicates")
class NearDuplicates(PairDetector):
    """Near-duplicate pairs within the state's (label, prediction) cells."""

    def __init__(self, threshold: float | None = None, prefilter: float = 0.9):
        self.threshold, self.prefilter = threshold, prefilter

    def _pairs(self, state, X):
        predictions = np.asarray(np.argmax(state.probs, axis=1))
        return near_duplicates(X, state.y, predictions, threshold=self.threshold,
                               prefilter=self.prefilter)
