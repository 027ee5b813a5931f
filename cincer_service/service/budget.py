"""The question budget: a threshold τ that follows a target rate of questions.

By default a project screens with its fixed τ (CINCER's margin threshold): how many
questions that asks depends on the noise and on the model. A project may instead set a
budget ``query_budget = q``: at most about ``q`` questions per 100 incoming (screened)
examples. τ then follows the ``1 − q/100`` quantile of the margins μ of the last
``BUDGET_WINDOW`` screened examples, stored on the project (``Project.recent_margins``,
kept up to date by every screening, budget or not). A screening batch counts its own
margins in the window before τ is read, so the rate holds from the first batch on; with
fewer than ``BUDGET_MIN_MARGINS`` margins known the fixed τ applies (``budget_warmup``).

The budget is a ceiling, not a quota: an example is suspicious only where the model
disagrees with its label (``cleaning.screen``), so when fewer than ``q`` % of recent
examples disagree at all the quantile is 0 and every disagreement is asked about. Queries
of the bootstrap audit are not screened and do not count. Two screenings of one project
running at once may each drop the other's margins from the window (last write wins); the
window is a statistic, so this only delays it by one batch.

Pure numpy; no TensorFlow.
"""
from __future__ import annotations

import numpy as np

from ..spec import BUDGET_MIN_MARGINS, BUDGET_WINDOW

MODES = ("fixed", "budget", "budget_warmup")


def margins(probabilities, labels) -> np.ndarray:
    """CINCER's margins ``μ = p(ŷ|x) − p(ỹ|x)`` of a batch (``cleaning.margin`` per row)."""
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return p.max(axis=1) - p[np.arange(len(p)), labels]


def budget_threshold(window, budget: float) -> float:
    """τ such that about ``budget`` % of the margins in ``window`` are at least τ."""
    level = min(max(1.0 - float(budget) / 100.0, 0.0), 1.0)
    return float(np.quantile(np.asarray(window, dtype=np.float64), level))


def screen_threshold(fixed: float, budget: float | None, window, new_margins=(),
                     size: int = BUDGET_WINDOW,
                     min_margins: int = BUDGET_MIN_MARGINS) -> tuple[float, str, list]:
    """``(τ, mode, window)`` for screening a batch with ``new_margins``: the window after
    the batch (the last ``size`` margins) and the τ it gives (mode ``budget``), or the
    fixed τ (``fixed`` without a budget, ``budget_warmup`` while the window is short)."""
    combined = [*(window or []), *(round(float(m), 4) for m in new_margins)][-size:]
    if budget is None:
        return float(fixed), "fixed", combined
    if len(combined) < min_margins:
        return float(fixed), "budget_warmup", combined
    return budget_threshold(combined, budget), "budget", combined


def threshold_view(project) -> dict:
    """The project's screening rule as ``/stats`` and the project show it: ``mode``, the
    fixed τ, the budget (questions per 100 examples, or ``None``), the τ the next screening
    would start from (``effective``) and how many margins the window holds."""
    budget = getattr(project, "query_budget", None)
    window = getattr(project, "recent_margins", None) or []
    tau, mode, _ = screen_threshold(project.threshold, budget, window)
    return {"mode": mode, "fixed": float(project.threshold), "budget": budget,
            "effective": tau, "window": len(window)}
