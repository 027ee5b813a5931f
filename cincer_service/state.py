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


def forward_rows(classifier, X, rows: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """``(ĥ, p)`` of ``X`` as float32 arrays, ``rows`` at a time (bounded memory)."""
    h_parts, p_parts = [], []
    for start in range(0, len(X), rows):
        h, p = _forward(classifier, X[start:start + rows])
        h_parts.append(influence.augment_np(h).astype(np.float32))
        p_parts.append(np.asarray(p, np.float32))
    if not h_parts:
        raise ValueError("no rows")
    return np.concatenate(h_parts), np.concatenate(p_parts)


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

    def probabilities_of(self, index: int) -> np.ndarray:
        """The probabilities of known example ``index``."""
        if "arrays" in self.cache:
            return self.cache["arrays"][1][index]
        return np.asarray(self.probs[index])

    def candidates(self, label: int, exclude=None) -> np.ndarray:
        """Indices of the known examples whose current label is ``label``, less ``exclude``
        (a boolean mask over the known set): CINCER's pertinent candidates."""
        pertinent = self.y == label
        if exclude is not None:
            pertinent &= ~np.asarray(exclude, dtype=bool)
        return np.flatnonzero(pertinent)

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


# -- columnar state (``columnar.Columns``): a version's files, mapped ------------------------
# Past this many rows a CPU worker estimates the Top Fisher from a stratified sample of
# FISHER_SAMPLE_ROWS rows (``influence.stratified_sample``); a GPU always computes it exactly.
FISHER_EXACT_MAX_ROWS = 2_000_000
FISHER_SAMPLE_ROWS = 200_000


def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU (read once)."""
    global _GPU
    if _GPU is None:
        _GPU = bool(tf.config.list_logical_devices("GPU"))
    return _GPU


_GPU = None


class ColumnarState(ModelState):
    """A ``ModelState`` over a version's columnar files (``columnar.Columns``).

    Rows are in *partition order* (by the label they had when the files were written), so
    the known examples of class ``k`` are mostly one contiguous slice. ``y`` holds the
    *current* labels: a row relabelled since then stays in its old slice and is found
    through ``moved`` (the overlay), which ``candidates`` reads; nothing is rewritten.
    ``ĥ`` and ``p`` stay float32 maps; the TensorFlow tensors of ``ModelState``'s API are
    made (float64) only if a strategy other than the partition scan asks for them.
    """

    def __init__(self, classifier, columns, y=None, damping: float = 1e-3,
                 fisher_sample_rows: int | None = None):
        self.classifier, self.columns, self.damping, self.cache = classifier, columns, damping, {}
        self.y = np.array(columns.labels if y is None else y, dtype=np.int64)
        self.fisher_sample_rows = fisher_sample_rows

    def __repr__(self) -> str:
        return f"ColumnarState(n={self.n}, path={self.columns.path!r})"

    @property
    def X(self):
        return self.columns.features

    @property
    def h_aug(self) -> tf.Tensor:
        return self.cached("h_aug_tf", lambda: tf.constant(np.asarray(self.columns.h, np.float64)))

    @property
    def probs(self) -> tf.Tensor:
        return self.cached("probs_tf", lambda: tf.constant(np.asarray(self.columns.p, np.float64)))

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.cached("arrays", lambda: (np.asarray(self.columns.h, np.float64),
                                              np.asarray(self.columns.p, np.float64)))

    @property
    def small_top(self) -> bool:
        if "small_top" not in self.cache:
            n, c, d1 = self.n, self.columns.n_classes, int(self.columns.h.shape[1])
            self.cache["small_top"] = n * c * d1 <= SMALL_TOP_WORK and c * d1 <= 4096
        return self.cache["small_top"]

    def probabilities_of(self, index: int) -> np.ndarray:
        return np.asarray(self.columns.p[index], np.float64)

    # -- the overlay ---------------------------------------------------------------------
    @property
    def moved(self) -> np.ndarray:
        """Rows whose current label differs from the one they were partitioned by."""
        return self.cached("moved", lambda: np.flatnonzero(self.y != self.columns.labels))

    def relabel(self, index: int, label: int) -> None:
        self.y[index] = label
        for key in list(self.cache):
            if key not in LABEL_FREE:      # "moved" goes too
                self.cache.pop(key)

    def candidates(self, label: int, exclude=None) -> np.ndarray:
        start, stop = self.columns.partition(label)
        moved = self.moved
        inside = np.arange(start, stop)
        if len(moved):
            inside = inside[self.y[start:stop] == label]
            outside = moved[(self.y[moved] == label) & ((moved < start) | (moved >= stop))]
            inside = np.concatenate([inside, outside])
        if exclude is not None:
            inside = inside[~np.asarray(exclude, dtype=bool)[inside]]
        return inside

    # -- the factor ----------------------------------------------------------------------
    @property
    def top_fisher_factor_np(self) -> np.ndarray:
        if "top_fisher_factor_np" not in self.cache:
            if self.small_top:
                return ModelState.top_fisher_factor_np.fget(self)
            self.cache["top_fisher_factor_np"] = self.fisher_factor()
        return self.cache["top_fisher_factor_np"]

    @property
    def top_fisher_factor(self) -> tf.Tensor:
        if "top_fisher_factor" not in self.cache:
            self.cache["top_fisher_factor"] = tf.constant(self.top_fisher_factor_np)
        return self.cache["top_fisher_factor"]

    def fisher_factor(self, sample_rows: int | None = None) -> np.ndarray:
        """The damped Top-Fisher factor: exact on a GPU or up to ``FISHER_EXACT_MAX_ROWS``
        rows, past that (on CPU) from a stratified sample of ``sample_rows`` (by default
        ``FISHER_SAMPLE_ROWS``) over the (predicted class, label) strata."""
        h, p = self.columns.h, self.columns.p
        if gpu_available():
            F = influence.top_fisher(p, h, self.damping)
            return influence.fisher_factor(F).numpy()
        rows = sample_rows or self.fisher_sample_rows
        if rows is None and self.n > FISHER_EXACT_MAX_ROWS:
            rows = FISHER_SAMPLE_ROWS
        if rows is None or rows >= self.n:
            F = influence.weighted_top_fisher_np(p, h, None, self.damping)
        else:
            strata = np.argmax(p, axis=1) * self.columns.n_classes + self.y
            idx, w = influence.stratified_sample(strata, rows)
            F = influence.weighted_top_fisher_np(p[idx], h[idx], w, self.damping)
        return influence.fisher_factor_np(F)

    # -- the partition scan --------------------------------------------------------------
    def partition_scores(self, V, label: int, candidates: np.ndarray) -> np.ndarray:
        """``−r_kᵀ V ĥ_k`` (float32) for ``candidates`` (all with current label ``label``):
        one fused pass over the partition's slice, then the few moved-in rows."""
        start, stop = self.columns.partition(label)
        inside = (candidates >= start) & (candidates < stop)
        out = np.empty(len(candidates), np.float32)
        if inside.any():
            out[inside] = self._scan(V, label)[candidates[inside] - start]
        if not inside.all():                 # moved in from other partitions (the overlay)
            rows = candidates[~inside]
            out[~inside] = influence.partition_scores_f32(V, self.columns.h[rows],
                                                          self.columns.p[rows], label)
        return out

    def _scan(self, V, label: int) -> np.ndarray:
        """Scores of every row of partition ``label`` (checked on its first read)."""
        h, p = self.columns.rows("h", label), self.columns.rows("p", label)
        if gpu_available():
            h, p = self.cached(("gpu", label), lambda: (tf.constant(h), tf.constant(p)))
            W = tf.matmul(h, tf.constant(np.asarray(V, np.float32)), transpose_b=True)
            return (W[:, label] - tf.reduce_sum(W * p, axis=1)).numpy()
        return influence.partition_scores_f32(V, h, p, label)
