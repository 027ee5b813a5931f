"""All-parameter derivatives of a ``Classifier``: jacobians, Hessian-vector products, solvers.

Used by the strategies and detectors that look past the top layer (full Fisher,
practical Fisher, influence functions with an iterative inverse-HVP). The Hessian is
never formed: ``hvp`` is forward-over-backward (``ForwardAccumulator`` over a tape).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def _flat(tensors):
    return tf.concat([tf.reshape(tf.cast(t, tf.float64), (-1,)) for t in tensors], axis=0)


def _unflat(vector, variables):
    parts, start = [], 0
    for v in variables:
        size = int(np.prod(v.shape))
        parts.append(tf.cast(tf.reshape(vector[start:start + size], v.shape), v.dtype))
        start += size
    return parts


def log_prob_jacobian(classifier, X, batch_size: int = 256) -> tf.Tensor:
    """``∂ log p(y|x) / ∂θ`` for every class: shape ``(n, c, P)``, float64."""
    variables = classifier.model.trainable_variables
    out = []
    for start in range(0, len(X), batch_size):
        xb = tf.constant(np.asarray(X[start:start + batch_size], np.float32))
        with tf.GradientTape() as tape:
            _, p = classifier.model(xb, training=False)
            logp = tf.math.log(tf.clip_by_value(p, 1e-12, 1.0))
        jac = tape.jacobian(logp, variables, experimental_use_pfor=True)
        n = int(xb.shape[0])
        out.append(tf.concat([tf.reshape(tf.cast(j, tf.float64), (n, logp.shape[1], -1))
                              for j in jac], axis=2))
    return tf.concat(out, axis=0)


def loss_gradients(classifier, X, y, batch_size: int = 256) -> tf.Tensor:
    """Per-example cross-entropy gradients over all parameters: ``(n, P)``, float64."""
    variables = classifier.model.trainable_variables
    out = []
    for start in range(0, len(X), batch_size):
        xb = tf.constant(np.asarray(X[start:start + batch_size], np.float32))
        yb = tf.constant(np.asarray(y[start:start + batch_size], np.int64))
        with tf.GradientTape() as tape:
            _, p = classifier.model(xb, training=False)
            p_y = tf.gather(p, yb, batch_dims=1)
            loss = -tf.math.log(tf.clip_by_value(p_y, 1e-12, 1.0))
        jac = tape.jacobian(loss, variables, experimental_use_pfor=True)
        n = int(xb.shape[0])
        out.append(tf.concat([tf.reshape(tf.cast(j, tf.float64), (n, -1)) for j in jac], axis=1))
    return tf.concat(out, axis=0)


def loss_gradient(classifier, x, label: int) -> tf.Tensor:
    """One example's cross-entropy gradient over all parameters: ``(P,)``, float64.

    ``loss_gradients`` on one row, without its per-example jacobian (whose ``pfor`` graph
    is traced anew on every call)."""
    variables = classifier.model.trainable_variables
    xb = tf.constant(np.asarray(x, np.float32)[None])
    with tf.GradientTape() as tape:
        _, p = classifier.model(xb, training=False)
        loss = -tf.math.log(tf.clip_by_value(p[0, int(label)], 1e-12, 1.0))
    return _flat(tape.gradient(loss, variables))


def hvp(classifier, X, y, vector) -> tf.Tensor:
    """Hessian of the mean training loss times ``vector`` (forward-over-backward), float64."""
    # Keras 3 wraps each tf.Variable; the accumulator must watch the wrapped ones.
    variables = [v.value for v in classifier.model.trainable_variables]
    tangents = _unflat(tf.cast(vector, tf.float64), variables)
    with tf.autodiff.ForwardAccumulator(variables, tangents) as acc:
        with tf.GradientTape() as tape:
            _, p = classifier.model(tf.constant(np.asarray(X, np.float32)), training=False)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
                tf.constant(np.asarray(y, np.int64)), p))
        grads = tape.gradient(loss, variables)
    return _flat(acc.jvp(grads))


def conjugate_gradient(matvec, b, damping: float = 1e-2, max_iter: int = 100,
                       tol: float = 1e-6) -> tf.Tensor:
    """Solve ``(A + λI) x = b`` by conjugate gradients; stops early on negative curvature."""
    b = tf.cast(b, tf.float64)
    x = tf.zeros_like(b)
    r = b
    d = r
    rr = tf.reduce_sum(r * r)
    b_norm = float(tf.norm(b)) or 1.0
    for _ in range(max_iter):
        Ad = matvec(d) + damping * d
        curvature = float(tf.reduce_sum(d * Ad))
        if curvature <= 0:
            break
        alpha = rr / curvature
        x = x + alpha * d
        r = r - alpha * Ad
        rr_new = tf.reduce_sum(r * r)
        if float(tf.sqrt(rr_new)) < tol * b_norm:
            break
        d = r + (rr_new / rr) * d
        rr = rr_new
    return x


def lissa(matvec, b, damping: float = 1e-2, scale: float = 25.0, depth: int = 200) -> tf.Tensor:
    """LiSSA estimate of ``(A + λI)⁻¹ b``: ``x ← b + (1 − λ) x − A x / scale``, then ``x / scale``."""
    b = tf.cast(b, tf.float64)
    x = b
    for _ in range(depth):
        x = b + (1.0 - damping) * x - matvec(x) / scale
    return x / scale


def flat_parameters(classifier) -> tf.Tensor:
    return _flat(classifier.model.trainable_variables)
