"""Slow, obviously-correct top-layer computations with one GradientTape per example.

Only for checking the closed forms in ``influence`` (tests and ``bench``'s reference check).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def _top_grad(classifier, x, label_fn):
    top = classifier.top_layer
    with tf.GradientTape() as tape:
        _, p = classifier.model(tf.constant(x[None], tf.float32), training=False)
        value = label_fn(p[0])
    gk, gb = tape.gradient(value, [top.kernel, top.bias])
    # kernel is (d, c): parameter (class i, feature j) is kernel[j, i]; the bias is feature d.
    return np.concatenate([gk.numpy().T, gb.numpy()[:, None]], axis=1).astype(np.float64).ravel()


def top_gradients(classifier, X, y) -> np.ndarray:
    """Cross-entropy gradient w.r.t. the top layer, one tape per example: ``(n, c(d+1))``."""
    return np.stack([_top_grad(classifier, x, lambda p, t=int(t): -tf.math.log(p[t]))
                     for x, t in zip(np.asarray(X, np.float32), y)])


def top_fisher(classifier, X, damping: float = 0.0) -> np.ndarray:
    """Eq. 13 on the top layer: ``(1/n) Σ_k Σ_y p_y ∇log p_y ∇log p_yᵀ``, by tapes."""
    X = np.asarray(X, np.float32)
    p_all = classifier.predict_proba(X).astype(np.float64)
    F = None
    for x, p in zip(X, p_all):
        for y in range(len(p)):
            g = _top_grad(classifier, x, lambda q, y=y: tf.math.log(q[y]))
            term = p[y] * np.outer(g, g)
            F = term if F is None else F + term
    F /= len(X)
    return F + damping * np.eye(len(F))


def counterexample_scores(classifier, X_known, y_known, x_t, label_t, damping: float) -> np.ndarray:
    """``−g_tᵀ (F + λI)⁻¹ g_k`` for all known examples with dense numpy algebra."""
    F = top_fisher(classifier, X_known, damping)
    G = top_gradients(classifier, X_known, y_known)
    g_t = top_gradients(classifier, np.asarray(x_t)[None], [label_t])[0]
    return -G @ np.linalg.solve(F, g_t)
