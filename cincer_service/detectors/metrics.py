"""Ranking metrics for error detection: precision in the top share, inspection curve and AUC."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def ranking(scores) -> np.ndarray:
    """Indices from most to least suspicious (ties keep index order)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def precision_at(scores, is_error, share: float) -> float:
    """Share of truly corrupted examples among the top ``share`` of the ranking (seed 004 Tab. 2)."""
    is_error = np.asarray(is_error, dtype=bool)
    k = max(1, int(round(share * len(is_error))))
    return float(is_error[ranking(scores)[:k]].mean())


def inspection_curve(scores, is_error) -> tuple[np.ndarray, np.ndarray]:
    """``(share inspected, share of errors found)`` going down the ranking, from ``(0, 0)``."""
    is_error = np.asarray(is_error, dtype=bool)
    found = np.concatenate([[0], np.cumsum(is_error[ranking(scores)])]) / max(is_error.sum(), 1)
    inspected = np.arange(len(is_error) + 1) / max(len(is_error), 1)
    return inspected, found


def inspection_auc(scores, is_error) -> float:
    """Area under "share of errors found vs share inspected" (seed 001's ROC); random = 0.5.

    Computed from the tie-aware ROC-AUC: with error rate ``π`` the inspection curve's area
    is ``π/2 + (1 − π) AUC_ROC`` (perfect ranking: ``1 − π/2``).
    """
    is_error = np.asarray(is_error, dtype=bool)
    if is_error.all() or not is_error.any():
        raise ValueError("the inspection AUC needs both corrupted and clean examples")
    pi = is_error.mean()
    return float(pi / 2 + (1 - pi) * roc_auc_score(is_error, np.asarray(scores, np.float64)))
