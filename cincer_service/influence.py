"""Top-layer influence algebra: small pure functions over residuals ``r`` and features ``ĥ``.

For a softmax top layer ``p = softmax(W h + b)`` the cross-entropy gradient of one
example w.r.t. ``[W; b]`` is the outer product ``g = r ⊗ ĥ`` with ``r = p − e_y`` and
``ĥ = [h; 1]``. Everything here works on that factored form, never on per-example tapes.
Parameters are ordered class-major: ``vec(g)[i * (d + 1) + j] = r_i ĥ_j``.

The ``*_np`` functions are the same algebra in float64 numpy. For a small top layer (a few
hundred parameters, a few hundred known examples) the arithmetic takes microseconds and
TensorFlow's per-op dispatch (tens of µs per eager op) dominates; ``ModelState`` uses
them below a size threshold and the TensorFlow versions above it.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
from scipy.linalg import lapack


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


# -- the same algebra in numpy, for small top layers ----------------------------------------
class _SingleThreadedBlas:
    """Context: BLAS/LAPACK on one thread while any thread is inside (re-entrant, counted).

    For matrices of a few hundred rows OpenBLAS still wakes its worker threads; on a few
    shared cores they compete with TensorFlow's and a 330 × 330 Cholesky that takes 0.5 ms
    alone was measured at 3.6 ms median and 32 ms mean inside the cleaning loop. The first
    thread to enter sets one BLAS thread (``threadpoolctl``), the last to leave restores the
    original setting. Without ``threadpoolctl`` (a scikit-learn dependency) it does nothing.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._limiter = None
        self._controller = None

    def _get_controller(self):
        if self._controller is None:
            try:
                from threadpoolctl import ThreadpoolController
                self._controller = ThreadpoolController()
            except Exception:               # pragma: no cover - optional speed-up only
                self._controller = False
        return self._controller

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                controller = self._get_controller()
                if controller:
                    self._limiter = controller.limit(limits=1, user_api="blas")
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None
        return False


single_threaded_blas = _SingleThreadedBlas()


def residuals_np(p, y) -> np.ndarray:
    """``r = p − e_y`` (numpy, float64)."""
    r = np.array(p, dtype=np.float64)
    r[np.arange(len(r)), np.asarray(y, dtype=np.int64)] -= 1.0
    return r


def augment_np(h) -> np.ndarray:
    """``ĥ = [h; 1]`` (numpy, float64)."""
    h = np.asarray(h)
    out = np.empty((h.shape[0], h.shape[1] + 1), dtype=np.float64)
    out[:, :-1] = h
    out[:, -1] = 1.0
    return out


def top_fisher_np(p, h_aug, damping: float = 1e-3, chunk_size: int = 65536) -> np.ndarray:
    """``top_fisher`` in numpy: ``(1/n) Σ (diag p − p pᵀ) ⊗ ĥĥᵀ + λI``.

    With few classes (``c ≤ 3``) only the off-diagonal class blocks
    ``−Σ_k p_ki p_kj ĥ_k ĥ_kᵀ`` are multiplied out; each diagonal block is minus the sum of
    its row's off-diagonal blocks, since the rows of ``diag p − p pᵀ`` sum to
    ``p_i (1 − Σ_j p_j) = 0`` (to the float32 rounding of ``p``). For binary problems that
    is one ``(d+1) × (d+1)`` product instead of a ``c(d+1)``-square one.
    """
    p, h_aug = np.asarray(p, np.float64), np.asarray(h_aug, np.float64)
    n, c = p.shape
    d1 = h_aug.shape[1]
    size = c * d1
    F = np.zeros((size, size))
    blocks = [slice(i * d1, (i + 1) * d1) for i in range(c)]
    for start in range(0, n, chunk_size):
        pc, hc = p[start:start + chunk_size], h_aug[start:start + chunk_size]
        if c <= 3:
            for i in range(c):
                weighted = hc * pc[:, i:i + 1]
                for j in range(i + 1, c):
                    B = (weighted * pc[:, j:j + 1]).T @ hc
                    F[blocks[i], blocks[j]] -= B
                    F[blocks[j], blocks[i]] -= B.T
                    F[blocks[i], blocks[i]] += B
                    F[blocks[j], blocks[j]] += B
        else:
            q = (pc[:, :, None] * hc[:, None, :]).reshape(len(pc), size)
            F -= q.T @ q
            for i in range(c):              # diag(p) ⊗ ĥĥᵀ: block i is Σ p_i ĥĥᵀ
                F[blocks[i], blocks[i]] += q[:, blocks[i]].T @ hc
    F /= max(n, 1)
    F[np.diag_indices(size)] += damping
    return F


def fisher_factor_np(F) -> np.ndarray:
    """Lower Cholesky factor (numpy); ``ValueError`` when ``F`` is not positive definite."""
    F = np.asarray(F, np.float64)
    if not np.all(np.isfinite(F)):
        raise ValueError("matrix is not positive definite: increase the damping")
    L, info = lapack.dpotrf(F, lower=1, clean=1)
    if info != 0:
        raise ValueError("matrix is not positive definite: increase the damping")
    return L


def fisher_solve_np(L, g) -> np.ndarray:
    """``F⁻¹ g`` for one vector ``(P,)`` or a batch ``(n, P)`` given the Cholesky factor."""
    g = np.asarray(g, np.float64)
    x, info = lapack.dpotrs(L, g if g.ndim == 1 else g.T, lower=1)
    if info != 0:
        raise ValueError(f"Cholesky solve failed (LAPACK info {info})")
    return x if g.ndim == 1 else x.T


def query_vector_np(L, r_t, h_t) -> np.ndarray:
    """``V = reshape(F⁻¹ (r_t ⊗ ĥ_t), (c, d+1))`` (numpy)."""
    r_t, h_t = np.asarray(r_t, np.float64), np.asarray(h_t, np.float64)
    return fisher_solve_np(L, np.outer(r_t, h_t).ravel()).reshape(len(r_t), len(h_t))


def counterexample_scores_np(V, r, h_aug) -> np.ndarray:
    """``−r_kᵀ V ĥ_k`` for every candidate (numpy)."""
    return -np.einsum("kj,kj->k", np.asarray(r, np.float64) @ V, h_aug)


# -- at scale: a stratified Fisher estimate and the fused float32 partition scan -------------
FISHER_CHUNK_ROWS = 2048     # rows per float32 product in ``weighted_top_fisher_np`` (L2-sized)


def stratified_sample(strata, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, weights)`` of a proportional stratified sample of about ``m`` rows.

    Stratum ``s`` (``n_s`` rows) gives ``m_s = max(1, round(m n_s / n))`` rows drawn without
    replacement, each weighted ``n_s / m_s``, so the weights sum to ``n`` and a weighted sum
    over the sample is an unbiased estimate of the sum over every row.
    """
    strata = np.asarray(strata)
    n = len(strata)
    rng = np.random.default_rng(seed)
    picked, weights = [], []
    for s in np.unique(strata):
        rows = np.flatnonzero(strata == s)
        take = min(len(rows), max(1, int(round(m * len(rows) / max(n, 1)))))
        chosen = rng.choice(rows, size=take, replace=False) if take < len(rows) else rows
        picked.append(np.sort(chosen))
        weights.append(np.full(take, len(rows) / take))
    if not picked:
        return np.zeros(0, np.int64), np.zeros(0)
    indices, w = np.concatenate(picked), np.concatenate(weights)
    order = np.argsort(indices, kind="stable")    # in row order: sequential reads of a map
    return indices[order].astype(np.int64), w[order]


def weighted_top_fisher_np(p, h_aug, weights=None, damping: float = 1e-3,
                           chunk_size: int = FISHER_CHUNK_ROWS,
                           threads: int | None = None) -> np.ndarray:
    """``(1/Σw) Σ_k w_k (diag p_k − p_k p_kᵀ) ⊗ ĥ_k ĥ_kᵀ + λI`` (float64), multiplied out
    in float32.

    With unit weights (``None``) it is ``top_fisher_np`` to float32 rounding (about 1e-6
    relative); with the weights of ``stratified_sample`` it estimates the Top Fisher of the
    whole set from a sample. ``p`` and ``h_aug`` may be float32 (memory-mapped) arrays.

    Only the ``c(c−1)/2`` off-diagonal class blocks ``B_ij = Σ w p_i p_j ĥĥᵀ`` (``i > j``)
    are multiplied out: each diagonal block is ``Σ_{j≠i} B_ij``, since the rows of
    ``diag p − p pᵀ`` sum to ``p_i (1 − Σ_j p_j) = 0`` (to the float32 rounding of ``p``),
    and no block cancels. ``B_ij`` is symmetric, so with ``ĥ = [ĥ_A ĥ_B]`` (halves) its
    ``(A, B)`` quarter is not computed: the columns of ``q = p ⊗ ĥ`` are laid out as
    ``[p ⊗ ĥ_A | p ⊗ ĥ_B with the classes reversed]``, so that for each ``j`` the rows it
    needs (the ``A`` then ``B`` halves of every class ``i > j``) are one slice of columns.
    That is a third of the flops of ``qᵀq`` at ``c = 10`` (0.61 of its symmetric ``syrk``).
    A chunk's products are float32, summed over chunks in float64; the chunks are shared by
    ``threads`` Python threads (one per core by default), BLAS on one thread each: these
    thin products run about twice as fast as through a woken BLAS pool.
    """
    n, c = p.shape
    d1 = h_aug.shape[1]
    size, a = c * d1, d1 // 2
    b = d1 - a
    w_all = None if weights is None else np.asarray(weights, np.float64)
    total = float(n if w_all is None else w_all.sum())

    def run(lo, hi):
        # for column class j: [(A, A) quarters of B_ij, i = j+1..c-1; (B, A) ones, i = c-1..j+1]
        # and the (B, B) quarters, i = c-1..j+1
        acc = [(np.zeros(((c - 1 - j) * d1, a)), np.zeros(((c - 1 - j) * b, b)))
               for j in range(c - 1)]
        q = np.empty((chunk_size, size), np.float32)
        for start in range(lo, hi, chunk_size):
            stop = min(start + chunk_size, hi)
            k = stop - start
            pc = np.asarray(p[start:stop], np.float32)
            if w_all is not None:
                pc = pc * np.sqrt(w_all[start:stop, None]).astype(np.float32)
            hc = np.asarray(h_aug[start:stop], np.float32)
            qc = q[:k]
            np.multiply(pc[:, :, None], hc[:, None, :a], out=qc[:, :c * a].reshape(k, c, a))
            np.multiply(pc[:, ::-1, None], hc[:, None, a:], out=qc[:, c * a:].reshape(k, c, b))
            for j in range(c - 1):
                bj = c * a + (c - 1 - j) * b             # where class j's B half starts
                acc[j][0][:] += qc[:, (j + 1) * a:bj].T @ qc[:, j * a:(j + 1) * a]
                acc[j][1][:] += qc[:, c * a:bj].T @ qc[:, bj:bj + b]
        return acc

    threads = threads or min(SCAN_THREADS, max(1, n // chunk_size))
    bounds = [min(n, -(-n * t // threads // chunk_size) * chunk_size) for t in range(threads + 1)]
    with single_threaded_blas:
        parts = (list(_scan_pool().map(run, bounds[:-1], bounds[1:])) if threads > 1
                 else [run(0, n)])
    F = np.zeros((size, size))
    B = np.empty((d1, d1))
    for j in range(c - 1):
        bj = slice(j * d1, (j + 1) * d1)
        R1, R2 = (sum(part[j][s] for part in parts) for s in (0, 1))
        for i in range(j + 1, c):
            bi = slice(i * d1, (i + 1) * d1)
            back = (c - 1 - j) * a + (c - 1 - i) * b
            B[:a, :a] = R1[(i - j - 1) * a:(i - j) * a]
            B[a:, :a] = R1[back:back + b]
            B[:a, a:] = B[a:, :a].T
            B[a:, a:] = R2[(c - 1 - i) * b:(c - i) * b]
            S = (B + B.T) / 2                   # symmetric in exact arithmetic
            F[bi, bj] = F[bj, bi] = -S
            F[bi, bi] += S
            F[bj, bj] += S
    F /= max(total, 1e-300)
    F[np.diag_indices(size)] += damping
    return F


def partition_scores_f32(V, h_aug, p, label: int, chunk_size: int = 8192,
                         threads: int | None = None) -> np.ndarray:
    """CINCER scores ``−r_kᵀ V ĥ_k`` of candidates whose current label is ``label``, in
    float32, in one pass over their rows (``h_aug``: ``(n, d+1)``, ``p``: ``(n, c)``).

    With ``r_k = p_k − e_label`` the score is ``(V ĥ_k)_label − p_kᵀ (V ĥ_k)``: one product
    ``ĥ Vᵀ`` per chunk of rows (kept in cache), then a row-wise dot with ``p``; nothing of
    size ``n × c(d+1)`` is formed and only the rows passed in are read. BLAS runs on one
    thread per chunk (waking its pool for a ``8192 × 129 × 10`` product costs more than it
    saves on shared cores); past ``PARALLEL_SCAN_ROWS`` rows the chunks are shared by
    ``threads`` Python threads (numpy releases the GIL), by default one per core.
    """
    Vt = np.ascontiguousarray(np.asarray(V, np.float32).T)
    n = len(h_aug)
    out = np.empty(n, np.float32)

    def run(lo, hi):
        for start in range(lo, hi, chunk_size):
            stop = min(start + chunk_size, hi)
            W = np.asarray(h_aug[start:stop]) @ Vt
            out[start:stop] = W[:, label] - np.einsum("kj,kj->k", W, np.asarray(p[start:stop]))

    threads = threads or min(SCAN_THREADS, max(1, n // PARALLEL_SCAN_ROWS))
    with single_threaded_blas:
        if threads <= 1:
            run(0, n)
        else:
            bounds = np.linspace(0, n, threads + 1).astype(int)
            bounds = [int(-(-b // chunk_size) * chunk_size) if 0 < b < n else int(b)
                      for b in bounds]
            list(_scan_pool().map(run, bounds[:-1], bounds[1:]))
    return out


PARALLEL_SCAN_ROWS = 32_768
SCAN_THREADS = max(1, min(4, os.cpu_count() or 1))
_POOL = None


def _scan_pool():
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=SCAN_THREADS, thread_name_prefix="cincer-scan")
    return _POOL
