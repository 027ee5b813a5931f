"""Speed of the detector algebra on cached synthetic features (``cincer-service bench``).

50,000 examples × 128 features × 10 classes against a 500-example trusted set; features
and probabilities are synthetic and cached, so the timings are the detectors' own algebra
(the shared Top-Fisher factor is timed once, separately, as the service caches it per
model version).
"""
from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from .. import influence
from ..detectors import TrustedSet, get_detector
from ..state import ModelState

PAIRWISE = ("gd", "gc", "if", "tracin", "gd_class", "gc_class", "if_class", "tracin_class",
            "euc", "cos", "dot")


def _cached(n, d, c, seed):
    rng = np.random.default_rng(seed)
    h = np.maximum(rng.standard_normal((n, d)), 0)
    logits = rng.standard_normal((n, c)) * 2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return influence.augment(h), tf.constant(p, tf.float64), rng.integers(0, c, n)


def detector_benchmarks(quick: bool = False, n: int = 50_000, n_features: int = 128,
                        n_classes: int = 10, clean_size: int = 500, checkpoints: int = 5,
                        damping: float = 1e-3) -> dict:
    """Seconds per detector (median of 3 runs, 1 when ``quick``) over cached synthetic data.

    Returns ``{"n", "n_features", "n_classes", "clean_size", "tracin_checkpoints",
    "fisher_factor_seconds", "seconds": {detector: s}}``.
    """
    repeats = 1 if quick else 3
    h_aug, probs, y = _cached(n, n_features, n_classes, 0)
    state = ModelState(classifier=None, X=None, y=y, h_aug=h_aug, probs=probs, damping=damping)
    h_c, p_c, _ = _cached(clean_size, n_features, n_classes, 1)
    y_c = np.arange(clean_size) % n_classes  # balanced, as a curated trusted set would be
    trusted = TrustedSet(y=y_c, h_aug=h_c, probs=p_c)
    start = time.perf_counter()
    _ = state.top_fisher_factor
    _ = state.residuals
    factor_seconds = time.perf_counter() - start
    per_checkpoint = [(*_cached(n, n_features, n_classes, 10 + t)[:2],
                       *_cached(clean_size, n_features, n_classes, 1)[:2])
                      for t in range(checkpoints)]
    seconds = {}
    for name in ("self_influence", *PAIRWISE):
        options = {"checkpoint_features": per_checkpoint} if name.startswith("tracin") else {}
        detector = get_detector(name, **options)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            scores = detector.score(state, trusted)
            times.append(time.perf_counter() - t0)
        if not np.isfinite(scores).all():
            raise RuntimeError(f"{name} produced non-finite scores on the benchmark data")
        seconds[name] = round(float(np.median(times)), 3)
    return {"n": n, "n_features": n_features, "n_classes": n_classes, "clean_size": clean_size,
            "tracin_checkpoints": checkpoints, "fisher_factor_seconds": round(factor_seconds, 3),
            "seconds": seconds}

