"""A model version evaluated on the known (training) set, with its cached factors.

Small top layers (``n · c(d+1)`` up to ``SMALL_TOP_WORK``, e.g. breast/fc: 200 × 66, digits/fc:
200 × 330) take a numpy path: features come from ``Classifier.fast_forward`` (a numpy pass
through Dense chains), and the Top-Fisher factor, residuals, query vector and scores are
float64 numpy (``influence.*_np``). The TensorFlow tensors of the public API (``h_aug``,
``probs``, ``residuals``, ``top_fisher_factor``, ``query``) hold the same numbers, so
detectors and strategies that use them are unaffected. Larger layers use TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from . import influence

# Fishers take the expectation over the model's own labels, so relabelling keeps them;
# features, probabilities and query results do not depend on the labels either.
LABEL_FREE = {"top_fisher_factor", "full_fisher_factor", "log_prob_jacobian",
              "top_fisher_factor_np", "arrays", "queries", "small_top"}
SMALL_TOP_WORK = 4_000_000      # n · c(d+1) up to which the top-layer algebra runs in numpy
QUERY_MEMO = 16                 # incoming examples remembered per state (screen, then rank)


def _forward(classifier, X):
    fast = getattr(classifier, "fast_forward", None)
    return fast(X) if fast is not None else classifier.forward(X)


@dataclass
class ModelState:
    """Features, probabilities and labels of the known set under one model version.

    Built once per model version; every expensive quantity (the damped Top-Fisher
    Cholesky factor, all-parameter gradients, ...) is computed on first use and cached
    in ``cache`` so queries against the same version never recompute it. ``query``
    results are memoised per incoming example (screening and ranking the same example
    run one forward pass).
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
        h, p = _forward(classifier, X)
        h_aug, probs = influence.augment_np(h), np.asarray(p, dtype=np.float64)
        state = cls(classifier, X, np.asarray(y, dtype=np.int64), tf.constant(h_aug),
                    tf.constant(probs), damping)
        state.cache["arrays"] = (h_aug, probs)
        return state

    @property
    def n(self) -> int:
        return len(self.y)

    # -- numpy views ----------------------------------------------------------------------
    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ĥ, p)`` of the known set as float64 numpy arrays."""
        if "arrays" not in self.cache:
            self.cache["arrays"] = (np.asarray(self.h_aug, np.float64),
                                    np.asarray(self.probs, np.float64))
        return self.cache["arrays"]

    @property
    def small_top(self) -> bool:
        """Whether the top-layer algebra runs in numpy (see ``SMALL_TOP_WORK``); decided once."""
        if "small_top" not in self.cache:
            c, d1 = int(self.probs.shape[1]), int(self.h_aug.shape[1])
            self.cache["small_top"] = self.n * c * d1 <= SMALL_TOP_WORK and c * d1 <= 4096
        return self.cache["small_top"]

    @property
    def residuals_np(self) -> np.ndarray:
        if "residuals_np" not in self.cache:
            self.cache["residuals_np"] = influence.residuals_np(self.arrays[1], self.y)
        return self.cache["residuals_np"]

    @property
    def top_fisher_factor_np(self) -> np.ndarray:
        """The damped Top-Fisher Cholesky factor as a numpy array (cached)."""
        if "top_fisher_factor_np" not in self.cache:
            if self.small_top:
                h_aug, probs = self.arrays
                with influence.single_threaded_blas:
                    L = influence.fisher_factor_np(
                        influence.top_fisher_np(probs, h_aug, self.damping))
                self.cache["top_fisher_factor"] = tf.constant(L)   # the same factor, for TF users
            else:
                L = self.top_fisher_factor.numpy()
            self.cache["top_fisher_factor_np"] = L
        return self.cache["top_fisher_factor_np"]

    # -- TensorFlow API -------------------------------------------------------------------
    @property
    def residuals(self) -> tf.Tensor:
        if "residuals" not in self.cache:
            if self.small_top:
                self.cache["residuals"] = tf.constant(self.residuals_np)
            else:
                self.cache["residuals"] = influence.residuals(self.probs, self.y)
        return self.cache["residuals"]

    @property
    def top_fisher_factor(self) -> tf.Tensor:
        """Cholesky factor of the damped Top Fisher over the known set (cached)."""
        if "top_fisher_factor" not in self.cache:
            if self.small_top:
                L = self.top_fisher_factor_np      # also caches the TensorFlow copy
                self.cache.setdefault("top_fisher_factor", tf.constant(L))
            else:
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

    # -- incoming examples ----------------------------------------------------------------
    def _query_entry(self, x) -> list:
        x = np.asarray(x, np.float32)
        key = (getattr(self.classifier, "weights_version", None), x.shape, x.tobytes())
        memo = self.cache.setdefault("queries", {})
        entry = memo.get(key)
        if entry is None:
            h, p = _forward(self.classifier, x[None])
            entry = [influence.augment_np(h)[0], np.asarray(p[0], np.float64), None]
            if len(memo) >= QUERY_MEMO:
                memo.pop(next(iter(memo)))
            memo[key] = entry
        return entry

    def query_arrays(self, x) -> tuple[np.ndarray, np.ndarray]:
        """``(ĥ_t, p_t)`` for one incoming example as float64 numpy arrays (memoised)."""
        entry = self._query_entry(x)
        return entry[0], entry[1]

    def query(self, x) -> tuple[tf.Tensor, tf.Tensor]:
        """``(ĥ_t, p_t)`` for one incoming example (memoised)."""
        entry = self._query_entry(x)
        if entry[2] is None:
            entry[2] = (tf.constant(entry[0]), tf.constant(entry[1]))
        return entry[2]
