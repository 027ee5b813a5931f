"""Detector base classes, the trusted (clean) set and the name registry.

Every registered detector looks at the examples of a ``ModelState`` (the known set under
one model version). Most are ``Detector``s (``output = "scores"``): one number per example,
**higher = more suspicious**. Detectors that compare against a trusted set receive a
``TrustedSet``; class-based ones check that every class has enough trusted examples first.
A ``PairDetector`` (``output = "pairs"``, e.g. ``near_duplicates``) reports pairs of
examples instead. ``finder.find_issues`` dispatches on ``output``.

To add a detector: subclass ``Detector`` (implement ``_score``) or ``PairDetector``
(implement ``_pairs``), decorate it with ``@register("name")``, import its module in
``detectors/__init__.py`` and add the name to ``cincer_service.catalog``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from .. import influence
from ..registry import Registry
from ..state import ModelState

if TYPE_CHECKING:
    from .duplicates import DuplicateReport

DETECTORS = Registry("detector")
register = DETECTORS.register


def get_detector(name: str, **options) -> "Detector":
    """Instantiate a registered detector by name with its options."""
    return DETECTORS.create(name, **options)


class NotEnoughTrusted(ValueError):
    """The trusted set is missing, or some class has fewer trusted examples than required."""


@dataclass
class TrustedSet:
    """Examples whose labels a human confirmed (the clean set ``Z′``).

    Give either inputs ``X`` (features are computed with the state's classifier on first
    use) or cached ``h_aug`` and ``probs`` directly (benchmarks, trusted examples that are
    already part of the known set: see ``from_state``).
    """

    y: np.ndarray
    X: np.ndarray | None = None
    h_aug: tf.Tensor | None = None
    probs: tf.Tensor | None = None
    _by_state: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.y = np.asarray(self.y, dtype=np.int64)
        if self.X is None and (self.h_aug is None or self.probs is None):
            raise ValueError("a trusted set needs inputs X or cached h_aug and probs")

    @classmethod
    def from_state(cls, state: ModelState, indices) -> "TrustedSet":
        """Trusted examples that are rows ``indices`` of the known set (labels as stored)."""
        idx = np.asarray(indices, dtype=np.int64)
        X = None if state.X is None else state.X[idx]
        return cls(y=state.y[idx], X=X, h_aug=tf.gather(state.h_aug, idx),
                   probs=tf.gather(state.probs, idx))

    def __len__(self) -> int:
        return len(self.y)

    def features(self, state: ModelState) -> tuple[tf.Tensor, tf.Tensor]:
        """``(ĥ′, p′)`` under the state's model (given cached features win; else per state)."""
        if self.h_aug is not None and self.probs is not None:
            return self.h_aug, self.probs
        key = id(state)
        if key not in self._by_state:
            h, p = state.classifier.forward(self.X)
            self._by_state = {key: (influence.augment(h), tf.constant(p, tf.float64))}
        return self._by_state[key]

    def residuals(self, state: ModelState) -> tf.Tensor:
        return influence.residuals(self.features(state)[1], self.y)

    def class_counts(self, n_classes: int) -> np.ndarray:
        return np.bincount(self.y, minlength=n_classes)


class Detector:
    """Base class: owns ``score``; each detector implements ``_score``.

    Class attributes
    ----------------
    needs_trusted : the detector compares against a trusted set.
    class_based : the detector takes a minimum over per-class means and needs at least
        ``min_per_class`` trusted examples in every class.
    """

    name = "base"
    output = "scores"
    needs_trusted = False
    class_based = False

    def __init__(self, min_per_class: int = 5):
        self.min_per_class = int(min_per_class)

    def score(self, state: ModelState, trusted: TrustedSet | None = None) -> np.ndarray:
        """One suspicion score per known example (higher = more likely mislabelled).

        Parameters
        ----------
        state : the known set under one model version (features, probabilities, labels).
        trusted : the clean set ``Z′``; required by the clean-set detectors.

        Raises
        ------
        NotEnoughTrusted
            When a trusted set is required but missing or empty, or (class-based
            detectors) when some class has fewer than ``min_per_class`` trusted examples.
        """
        if self.needs_trusted:
            self._check_trusted(state, trusted)
        scores = np.asarray(self._score(state, trusted), dtype=np.float64).reshape(-1)
        if scores.shape[0] != state.n:
            raise RuntimeError(f"{self.name} returned {scores.shape[0]} scores for {state.n} examples")
        return scores

    def _check_trusted(self, state, trusted):
        if trusted is None or len(trusted) == 0:
            raise NotEnoughTrusted(f"detector {self.name!r} needs a non-empty trusted (clean) set")
        if self.class_based:
            n_classes = int(state.probs.shape[1])
            counts = trusted.class_counts(n_classes)
            short = [k for k in range(n_classes) if counts[k] < self.min_per_class]
            if short:
                raise NotEnoughTrusted(
                    f"detector {self.name!r}: not enough trusted examples per class "
                    f"(need {self.min_per_class}; classes {short} have "
                    f"{[int(counts[k]) for k in short]})")

    def _score(self, state: ModelState, trusted: TrustedSet | None):  # pragma: no cover
        raise NotImplementedError


class PairDetector:
    """Base class of detectors that report pairs of examples instead of one score each.

    Owns ``pairs``, which checks the raw inputs; each detector implements ``_pairs``.
    """

    name = "base_pairs"
    output = "pairs"

    def pairs(self, state: ModelState, inputs=None) -> "DuplicateReport":
        """Pairs among the known examples, as rows of ``state``.

        Parameters
        ----------
        state : the known set under one model version (labels and predictions).
        inputs : the raw inputs of the known set, row for row; ``state.X`` when omitted.

        Raises
        ------
        ValueError
            When no inputs are given nor kept by the state, or their count differs.
        """
        X = state.X if inputs is None else inputs
        if X is None:
            raise ValueError(f"detector {self.name!r} needs the raw inputs of the examples")
        X = np.asarray(X)
        if len(X) != state.n:
            raise ValueError(f"detector {self.name!r} got {len(X)} inputs for "
                             f"{state.n} examples")
        return self._pairs(state, X)

    def _pairs(self, state: ModelState, X: np.ndarray) -> "DuplicateReport":  # pragma: no cover
        raise NotImplementedError
