"""Pure pairwise algebra of the clean-set detectors, over factored top-layer gradients.

Gradients are never materialised for the audited set: ``⟨g_i, g_j⟩ = (r_i·r_j)(ĥ_i·ĥ_j)``
gives every pair as two matrix products (``influence.gradient_dot``). A per-group mean of
pair similarities is one more product with an averaging matrix ``A`` (``m × K``, column
``k`` averages group ``k``): ``S A``. The IF similarity ``g_iᵀ F⁻¹ g_j`` is not rank-one,
so its group means are taken on the solved clean gradients first (exact, by linearity).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .. import influence

_TINY = 1e-12


def _t(x):
    return tf.cast(tf.convert_to_tensor(x), tf.float64)


def mean_matrix(m: int) -> tf.Tensor:
    """``(m, 1)`` averaging matrix: the plain mean over the whole clean set."""
    return tf.fill((m, 1), 1.0 / max(m, 1))


def class_mean_matrix(labels, n_classes: int) -> tf.Tensor:
    """``(m, C)`` averaging matrix: column ``k`` is the mean over clean examples of class ``k``.

    A class without clean examples gets an all-zero column (callers check counts first).
    """
    labels = np.asarray(labels, dtype=np.int64)
    onehot = np.eye(n_classes)[labels]
    counts = onehot.sum(axis=0)
    return tf.constant(onehot / np.maximum(counts, 1), tf.float64)


def gradient_similarity(r_a, h_a, r_b, h_b, kind: str = "dot") -> tf.Tensor:
    """All-pairs similarity of factored gradients, ``(n_a, n_b)``.

    ``kind="dot"``: ``⟨g_i, g_j⟩``; ``kind="cos"``: ``⟨g_i, g_j⟩ / (‖g_i‖ ‖g_j‖)``.
    """
    dots = influence.gradient_dot(r_a, h_a, r_b, h_b)
    if kind == "dot":
        return dots
    if kind == "cos":
        na = tf.maximum(influence.gradient_norms(r_a, h_a), _TINY)
        nb = tf.maximum(influence.gradient_norms(r_b, h_b), _TINY)
        return dots / (na[:, None] * nb[None, :])
    raise ValueError(f"unknown gradient similarity {kind!r}")


def group_mean_similarity(r, h_aug, r_clean, h_clean, averaging, kind: str = "dot",
                          chunk_size: int = 8192) -> tf.Tensor:
    """``S A``: mean similarity of each example to each clean group, ``(n, K)``.

    The ``n × m`` pair matrix is built chunk by chunk, so memory is ``O(chunk · m)``.
    """
    r, h_aug, averaging = _t(r), _t(h_aug), _t(averaging)
    out = [tf.matmul(gradient_similarity(r[s:s + chunk_size], h_aug[s:s + chunk_size],
                                         r_clean, h_clean, kind), averaging)
           for s in range(0, int(r.shape[0]), chunk_size)]
    return tf.concat(out, axis=0) if out else tf.zeros((0, averaging.shape[1]), tf.float64)


def influence_similarity(L, r_a, h_a, r_b, h_b) -> tf.Tensor:
    """All-pairs ``g_iᵀ F⁻¹ g_j`` with ``F = L Lᵀ``, ``(n_a, n_b)``; materialises gradients."""
    ga = influence.gradients(r_a, h_a)
    gb = influence.gradients(r_b, h_b)
    return tf.matmul(ga, influence.fisher_solve(L, gb), transpose_b=True)


def group_mean_influence(L, r, h_aug, r_clean, h_clean, averaging,
                         chunk_size: int = 65536) -> tf.Tensor:
    """Mean of ``g_iᵀ F⁻¹ g_j`` over each clean group, ``(n, K)``.

    ``V_k = Σ_j A_jk F⁻¹ g_j`` (``c × (d+1)``) is formed once; then each score is
    ``r_iᵀ V_k ĥ_i``: cost ``O(n K c (d+1))`` instead of ``O(n m c (d+1))``.
    """
    r, h_aug, averaging = _t(r), _t(h_aug), _t(averaging)
    c, d1 = int(r.shape[1]), int(h_aug.shape[1])
    solved = influence.fisher_solve(L, influence.gradients(r_clean, h_clean))   # (m, P)
    V = tf.reshape(tf.matmul(averaging, solved, transpose_a=True), (-1, c, d1))  # (K, c, d1)
    K = int(V.shape[0])
    V_flat = tf.reshape(tf.transpose(V, (1, 0, 2)), (c, K * d1))
    out = []
    for s in range(0, int(r.shape[0]), chunk_size):
        rV = tf.reshape(tf.matmul(r[s:s + chunk_size], V_flat), (-1, K, d1))
        out.append(tf.reduce_sum(rV * h_aug[s:s + chunk_size, None, :], axis=2))
    return tf.concat(out, axis=0) if out else tf.zeros((0, K), tf.float64)


def feature_similarity(h_a, h_b, kind: str) -> tf.Tensor:
    """All-pairs feature similarity: ``dot``, ``cos`` or ``euc`` (negative distance)."""
    h_a, h_b = _t(h_a), _t(h_b)
    dots = tf.matmul(h_a, h_b, transpose_b=True)
    if kind == "dot":
        return dots
    na = tf.reduce_sum(h_a * h_a, axis=1)
    nb = tf.reduce_sum(h_b * h_b, axis=1)
    if kind == "cos":
        return dots / tf.maximum(tf.sqrt(na)[:, None] * tf.sqrt(nb)[None, :], _TINY)
    if kind == "euc":
        return -tf.sqrt(tf.maximum(na[:, None] + nb[None, :] - 2.0 * dots, 0.0))
    raise ValueError(f"unknown feature similarity {kind!r}")


def group_mean_features(h, h_clean, averaging, kind: str, chunk_size: int = 8192) -> tf.Tensor:
    """Mean feature similarity to each clean group, ``(n, K)``, chunked over ``h``."""
    h, averaging = _t(h), _t(averaging)
    out = [tf.matmul(feature_similarity(h[s:s + chunk_size], h_clean, kind), averaging)
           for s in range(0, int(h.shape[0]), chunk_size)]
    return tf.concat(out, axis=0) if out else tf.zeros((0, averaging.shape[1]), tf.float64)


def suspicion(group_means) -> np.ndarray:
    """Higher = more suspicious: ``−min_k s_ik`` (one column: ``−s_i``).

    Seed 004 ranks by the similarity ascending; we negate so every detector sorts the
    same way. With one column (the plain mean) the minimum is that column.
    """
    return -tf.reduce_min(_t(group_means), axis=1).numpy()
