"""The CINCER cleaning step: screen by margin, pair with a counter-example, apply answers.

``margin`` is CINCER's eq. 1 for one example (the service's screening and audit queries
call it too); ``screen`` applies the threshold τ; ``cincer_step`` is one iteration of
Algorithm 1 on an in-memory known set, answered by a simulated oracle.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .counterexamples import CounterexampleStrategy, NoCandidates
from .spec import DEFAULT_THRESHOLD
from .state import ModelState

VARIANTS = ("cincer", "no_ce", "drop_ce")


@dataclass
class Screening:
    """The model's view of one labelled example."""

    prediction: int
    margin: float
    suspicious: bool
    probabilities: np.ndarray


def margin(probabilities, label: int) -> tuple[int, float]:
    """``(ŷ, μ)``: the prediction and CINCER's margin ``μ = p(ŷ|x) − p(ỹ|x)`` (eq. 1).

    ``μ ≥ 0``, and ``μ = 0`` exactly when the label ``ỹ`` is the prediction (or ties it).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    prediction = int(np.argmax(p))
    return prediction, float(p[prediction] - p[int(label)])


def screen(probabilities, label: int, threshold: float = DEFAULT_THRESHOLD) -> Screening:
    """Suspicious iff the prediction differs from the label and ``μ = p(ŷ) − p(ỹ) ≥ τ``."""
    prediction, mu = margin(probabilities, label)
    return Screening(prediction, mu, prediction != int(label) and mu >= threshold,
                     np.asarray(probabilities, dtype=np.float64))


def screen_batch(probabilities, labels, threshold: float = DEFAULT_THRESHOLD) -> list[Screening]:
    return [screen(p, y, threshold) for p, y in zip(probabilities, labels)]


class PerfectOracle:
    """Answers every query with the ground-truth label."""

    def __init__(self, truth):
        self.truth = np.asarray(truth)

    def label(self, index: int, shown_label: int) -> int:
        return int(self.truth[index])


class NoisyOracle(PerfectOracle):
    """Answers wrongly (a uniformly drawn other class) with probability ``q``."""

    def __init__(self, truth, n_classes: int, q: float, seed: int = 0):
        super().__init__(truth)
        self.n_classes, self.q = n_classes, q
        self.rng = np.random.default_rng(seed)

    def label(self, index: int, shown_label: int) -> int:
        true = int(self.truth[index])
        if self.rng.random() < self.q:
            return int((true + self.rng.integers(1, self.n_classes)) % self.n_classes)
        return true


@dataclass
class StepOutcome:
    """What one incoming example did to the known set."""

    suspicious: bool
    margin: float
    prediction: int
    counterexample: int | None = None      # index into the known set before the step
    example_label: int | None = None        # label stored for the incoming example
    counterexample_label: int | None = None
    dropped_counterexample: bool = False
    ranking: object = None


def cincer_step(state: ModelState, x, label: int, index: int, oracle, strategy:
                CounterexampleStrategy | None, threshold: float = DEFAULT_THRESHOLD,
                variant: str = "cincer", known_index: np.ndarray | None = None,
                exclude: np.ndarray | None = None) -> StepOutcome:
    """One iteration of Algorithm 1 on an in-memory known set.

    ``index`` identifies the incoming example for the oracle, ``known_index[k]`` the
    known example ``k``. The caller appends ``(x, outcome.example_label)`` to the known
    set; the counter-example's new label (or its removal, for ``drop_ce``) is applied to
    ``state.y`` here. ``variant="no_ce"`` never looks for a counter-example.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown loop variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    _, p_t = state.query(x)
    s = screen(p_t.numpy(), label, threshold)
    outcome = StepOutcome(s.suspicious, s.margin, s.prediction, example_label=int(label))
    if not s.suspicious:
        return outcome
    outcome.example_label = oracle.label(index, label)
    if variant == "no_ce" or strategy is None:
        return outcome
    try:
        ranking = strategy.rank(state, x, label, exclude)
    except NoCandidates:
        return outcome
    k = ranking.best
    outcome.counterexample, outcome.ranking = k, ranking
    key = int(known_index[k]) if known_index is not None else k
    if variant == "drop_ce":
        outcome.dropped_counterexample = outcome.example_label == int(label)
    else:
        outcome.counterexample_label = oracle.label(key, int(state.y[k]))
    return outcome
