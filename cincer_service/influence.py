"""Top-layer influence algebra: small pure functions over residuals ``r`` and features ``ĥ``.

For a softmax top layer ``p = softmax(W h + b)`` the cross-entropy gradient of one
example w.r.t. ``[W; b]`` is the outer product ``g = r ⊗ ĥ`` with ``r = p − e_y`` and
``ĥ = [h; 1]``. Everything here works on that factored form, never on per-example tapes.
Parameters are ordered class-major: ``vec(g)[i * (d + 1) + j] = r_i ĥ_j``.
"""
from __future__ import annotations

import tensorflow as tf


def _t(x, dtype=tf.float64):
    return tf.cast(tf.convert_to_tensor(x), dtype)


def augment(h):
    """``ĥ = [h; 1]`` for a batch of features ``h`` of shape ``(n, d)``."""
    h = _t(h)
    return tf.concat([h, tf.ones_like(h[:, :1])], axis=1)


def residuals(p, y):
    """``r = p − e_y`` for probabilities ``(n, c)`` and integer labels ``(n,)``."""
    p = _t(p)
    return p - tf.one_hot(tf.cast(y, tf.int64), tf.shape(p)[1], dtype=p.dtype)


def margin(p, y):
    """CINCER margin ``μ = p(ŷ|x) − p(ỹ|x)`` per example (0 when the label is predicted)."""
    p = _t(p)
    p_label = tf.gather(p, tf.cast(y, tf.int64), batch_dims=1)
    return tf.reduce_max(p, axis=1) - p_label


def gradients(r, h_aug):
    """Flattened per-example top-layer gradients ``r ⊗ ĥ``, shape ``(n, c (d + 1))``.

    Materialises ``n × c(d+1)`` numbers: use it for small batches (a query, a clean set).
    """
    r, h_aug = _t(r), _t(h_aug)
    g = r[:, :, None] * h_aug[:, None, :]
    return tf.reshape(g, (tf.shape(r)[0], -1))


def gradient_dot(r_a, h_a, r_b, h_b):
    """All-pairs gradient inner products ``⟨g_i, g_j⟩ = (r_i · r_j)(ĥ_i · ĥ_j)``, ``(n_a, n_b)``."""
    return tf.matmul(_t(r_a), _t(r_b), transpose_b=True) * tf.matmul(_t(h_a), _t(h_b), transpose_b=True)


def gradient_norms(r, h_aug):
    """``‖g_i‖ = ‖r_i‖ ‖ĥ_i‖`` per example."""
    return tf.norm(_t(r), axis=1) * tf.norm(_t(h_aug), axis=1)


def top_fisher(p, h_aug, damping: float = 1e-3, chunk_size: int = 65536):
    """Damped Top Fisher ``(1/n) Σ (diag p − p pᵀ) ⊗ ĥĥᵀ + λI`` of shape ``(c(d+1), c(d+1))``.

    Accumulated over chunks of ``chunk_size`` examples so memory stays
    ``O(chunk · c(d+1))``. For softmax cross-entropy this is also the exact top-layer Hessian.
    """
    p, h_aug = _t(p), _t(h_aug)
    n = int(p.shape[0])
    c, d1 = int(p.shape[1]), int(h_aug.shape[1])
    size = c * d1
    diag_blocks = tf.zeros((c, d1, d1), tf.float64)
    outer = tf.zeros((size, size), tf.float64)
    for start in range(0, n, chunk_size):
        pc, hc = p[start:start + chunk_size], h_aug[start:start + chunk_size]
        diag_blocks += tf.einsum("ki,kj,km->ijm", pc, hc, hc)
        q = tf.reshape(pc[:, :, None] * hc[:, None, :], (-1, size))
        outer += tf.matmul(q, q, transpose_a=True)
    block_diag = tf.linalg.LinearOperatorBlockDiag(
        [tf.linalg.LinearOperatorFullMatrix(diag_blocks[i]) for i in range(c)]).to_dense()
    return (block_diag - outer) / max(n, 1) + damping * tf.eye(size, dtype=tf.float64)


def fisher_factor(F):
    """Cholesky factor of a damped (positive definite) Fisher or Hessian matrix."""
    L = tf.linalg.cholesky(_t(F))
    if not bool(tf.reduce_all(tf.math.is_finite(L))):
        raise ValueError("matrix is not positive definite: increase the damping")
    return L


def fisher_solve(L, g):
    """``F⁻¹ g`` for one vector ``(P,)`` or a batch ``(n, P)`` given the Cholesky factor ``L``."""
    g = _t(g)
    vector = len(g.shape) == 1
    rhs = g[:, None] if vector else tf.transpose(g)
    sol = tf.linalg.cholesky_solve(L, rhs)
    return sol[:, 0] if vector else tf.transpose(sol)


def query_vector(L, r_t, h_t):
    """``V = reshape(F⁻¹ g_t, (c, d+1))`` for the suspicious example ``(r_t, ĥ_t)``."""
    r_t, h_t = _t(r_t), _t(h_t)
    v = fisher_solve(L, tf.reshape(r_t[:, None] * h_t[None, :], (-1,)))
    return tf.reshape(v, (r_t.shape[0], h_t.shape[0]))


def counterexample_scores(V, r, h_aug):
    """CINCER score ``−g_tᵀ F⁻¹ g_k = −r_kᵀ V ĥ_k`` for every candidate ``k``."""
    return -tf.reduce_sum(tf.matmul(_t(r), _t(V)) * _t(h_aug), axis=1)


def self_influence(L, r, h_aug, chunk_size: int = 8192):
    """Self-influence / Cook's-distance score ``g_iᵀ F⁻¹ g_i`` per example.

    With ``F = L Lᵀ``, ``g_iᵀ F⁻¹ g_i = ‖L⁻¹ g_i‖²``; chunks bound memory.
    """
    r, h_aug = _t(r), _t(h_aug)
    out = []
    for start in range(0, int(r.shape[0]), chunk_size):
        g = gradients(r[start:start + chunk_size], h_aug[start:start + chunk_size])
        z = tf.linalg.triangular_solve(L, tf.transpose(g), lower=True)
        out.append(tf.reduce_sum(z * z, axis=0))
    return tf.concat(out, axis=0) if out else tf.zeros((0,), tf.float64)
