"""A model version evaluated on the known (training) set, with its cached factors."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from . import influence

# Fishers take the expectation over the model's own labels, so relabelling keeps them.
LABEL_FREE = {"top_fisher_factor", "full_fisher_factor", "log_prob_jacobian"}


@dataclass
class ModelState:
    """Features, probabilities and labels of the known set under one model version.

    Built once per model version; every expensive quantity (the damped Top-Fisher
    Cholesky factor, all-parameter gradients, ...) is computed on first use and cached
    in ``cache`` so queries against the same version never recompute it.
    """

    classifier: object
    X: np.ndarray
    y: np.ndarray
    h_aug: tf.Tensor
    probs: tf.Tensor
    damping: float = 1e-3
    cache: dict = field(default_factory=dict)

    @classmethod
    def build(cls, classifier, X, y, damping: float = 1e-3) -> "ModelState":
        X = np.asarray(X, dtype=np.float32)
        h, p = classifier.forward(X)
        return cls(classifier, X, np.asarray(y, dtype=np.int64), influence.augment(h),
                   tf.constant(p, tf.float64), damping)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def residuals(self) -> tf.Tensor:
        if "residuals" not in self.cache:
            self.cache["residuals"] = influence.residuals(self.probs, self.y)
        return self.cache["residuals"]

    @property
    def top_fisher_factor(self) -> tf.Tensor:
        """Cholesky factor of the damped Top Fisher over the known set (cached)."""
        if "top_fisher_factor" not in self.cache:
            F = influence.top_fisher(self.probs, self.h_aug, self.damping)
            self.cache["top_fisher_factor"] = influence.fisher_factor(F)
        return self.cache["top_fisher_factor"]

    def cached(self, key, compute):
        """Return ``cache[key]``, computing it with ``compute()`` the first time."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def relabel(self, index: int, label: int) -> None:
        """Change a known label in place; label-dependent caches are dropped."""
        self.y[index] = label
        for key in list(self.cache):
            if key not in LABEL_FREE:
                self.cache.pop(key)

    def query(self, x) -> tuple[tf.Tensor, tf.Tensor]:
        """``(ĥ_t, p_t)`` for one incoming example."""
        h, p = self.classifier.forward(np.asarray(x, np.float32)[None])
        return influence.augment(h)[0], tf.constant(p[0], tf.float64)
