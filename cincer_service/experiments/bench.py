"""Speed of the counter-example path, the Fisher factor and the cleaning loop.

``run_bench`` returns the JSON document of ``cincer-service bench``: median milliseconds
per counter-example query and seconds per Top-Fisher factorization on breast/fc and on
synthetic cached features (128 features, 10 classes, so the top-layer algebra itself is
timed), seconds per cleaning iteration, a closed-form vs ``GradientTape`` check, the
detectors' timings from ``bench_detectors`` and the service's lease latency with a backlog
right after a retrain (``bench_service``), the verdict inside an ingest request
(``bench_verdicts``) and, over 1M examples, the columnar state (``bench_scale``: its cold
load, the partition scan, the factor estimate and its agreement with the exact one).
"""
from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from .. import influence, reference
from ..counterexamples import get_strategy
from ..datasets import inject_noise, load_dataset
from ..models import Classifier
from ..spec import DEFAULT_SCHEDULE
from ..state import ModelState
from .bench_consensus import consensus_benchmarks
from .bench_detectors import detector_benchmarks
from .bench_scale import scale_benchmarks
from .bench_service import bench_lease_after_retrain
from .bench_verdicts import verdict_benchmarks
from .config import SimulationConfig
from .simulate import Experiment, run_cleaning


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (tracing, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def _breast_state(seed: int = 0, damping: float = 1e-3):
    ds = load_dataset("breast", seed=0)
    noisy, _ = inject_noise(ds.y_train, ds.n_classes, 0.2, "random", seed)
    clf = Classifier("fc", ds.input_shape, ds.n_classes, seed=seed)
    clf.fit(ds.X_train, noisy)
    return ds, clf, ModelState.build(clf, ds.X_train, noisy, damping=damping)


def bench_breast(repeats: int = 50) -> tuple[float, float, float]:
    """``(counterexample_ms, fisher_factor_seconds, reference max relative error)`` on breast/fc."""
    ds, clf, state = _breast_state()
    start = time.perf_counter()
    _ = state.top_fisher_factor
    factor_seconds = time.perf_counter() - start
    strategy = get_strategy("top_fisher")
    queries = iter(np.resize(np.arange(len(ds.X_test)), repeats + 1))

    def one_query():
        i = next(queries)
        strategy.select(state, ds.X_test[i], int(1 - ds.y_test[i]))
    ce_ms = _median_ms(one_query, repeats)

    # closed form vs one GradientTape per example, on a slice of the same model
    X, y = ds.X_train[:40], state.y[:40]
    small = ModelState.build(clf, X, y, damping=state.damping)
    errors = []
    closed_g = influence.gradients(small.residuals, small.h_aug).numpy()
    naive_g = reference.top_gradients(clf, X, y)
    errors.append(np.abs(closed_g - naive_g).max() / np.abs(naive_g).max())
    for i in range(3):
        x_t, label = ds.X_test[i], int(ds.y_test[i])
        h_t, p_t = small.query(x_t)
        V = influence.query_vector(small.top_fisher_factor,
                                   influence.residuals(p_t[None], [label])[0], h_t)
        closed = influence.counterexample_scores(V, small.residuals, small.h_aug).numpy()
        naive = reference.counterexample_scores(clf, X, y, x_t, label, small.damping)
        errors.append(np.abs(closed - naive).max() / np.abs(naive).max())
    return ce_ms, factor_seconds, float(max(errors))


def synthetic_cached(n: int, d: int = 128, c: int = 10, seed: int = 0):
    """Cached ``(ĥ, p, y)`` of ``n`` synthetic examples: features, softmax outputs, labels,
    as float64 tensors (``bench_scale.synthetic_arrays``' numbers)."""
    from .bench_scale import synthetic_arrays
    h_aug, p, y = synthetic_arrays(n, d, c, seed)
    return tf.constant(h_aug, tf.float64), tf.constant(p, tf.float64), y


def bench_synthetic(n: int, repeats: int = 30, damping: float = 1e-3) -> tuple[float, float]:
    """``(counterexample_ms, fisher_factor_seconds)`` over ``n`` cached examples."""
    h_aug, probs, y = synthetic_cached(n)
    r = influence.residuals(probs, y)
    start = time.perf_counter()
    L = influence.fisher_factor(influence.top_fisher(probs, h_aug, damping))
    factor_seconds = time.perf_counter() - start
    by_class = [tf.constant(np.flatnonzero(y == k)) for k in range(probs.shape[1])]
    rng = np.random.default_rng(1)
    h_q, p_q, _ = synthetic_cached(repeats + 1, seed=2)

    state = {"i": 0}

    def one_query():
        i = state["i"] % (repeats + 1)
        state["i"] += 1
        prediction = int(np.argmax(p_q[i]))
        label = int((prediction + rng.integers(1, p_q.shape[1])) % p_q.shape[1])
        V = influence.query_vector(L, influence.residuals(p_q[i][None], [label])[0], h_q[i])
        idx = by_class[prediction]
        scores = influence.counterexample_scores(V, tf.gather(r, idx), tf.gather(h_aug, idx))
        int(idx[int(tf.argmax(scores))])
    return _median_ms(one_query, repeats), factor_seconds


def bench_iterations(iterations: int = 20, schedule: str = DEFAULT_SCHEDULE) -> dict:
    """Median seconds of one cleaning iteration on breast/fc, warm and scratch retraining."""
    out = {}
    for mode in ("warm", "scratch"):
        config = SimulationConfig(dataset="breast", model="fc", strategies=["top_fisher"],
                                  iterations=iterations, seeds=[0], retrain=mode,
                                  schedule=schedule)
        result = run_cleaning(Experiment(config, 0), "top_fisher")
        out[f"breast_fc_{mode}"] = result.seconds_per_iteration
    return out


def bench_in_loop(dataset: str, iterations: int = 100, seeds=(0, 1, 2)) -> dict:
    """Inside the cleaning loop (scratch retrains, fc): median ms from a new model version
    to its first counter-example (model state and Fisher factor built anew), and from the
    built state to the counter-example."""
    config = SimulationConfig(dataset=dataset, model="fc", strategies=["top_fisher"],
                              iterations=iterations, seeds=list(seeds), retrain="scratch")
    runs = [run_cleaning(Experiment(config, seed), "top_fisher") for seed in seeds]
    return {"version_to_counterexample_ms": float(np.median(
                [r.version_to_counterexample_ms for r in runs])),
            "counterexample_ms": float(np.median([r.counterexample_ms for r in runs])),
            "iterations": iterations, "seeds": list(seeds)}


def run_bench(quick: bool = False, detectors: bool = True) -> dict:
    """Every benchmark; ``quick`` skips the 1M-example case."""
    ce_ms, factor_s, max_rel = bench_breast()
    doc = {"counterexample_ms": {"breast_fc": ce_ms},
           "fisher_factor_seconds": {"breast_fc": factor_s}}
    for name, n in (("synthetic_100k", 100_000), ("synthetic_1m", 1_000_000)):
        if quick and n > 100_000:
            continue
        # the per-row path (float64 tensors, a gather of the candidates): the "before"
        key = name if n <= 100_000 else f"{name}_rowwise"
        doc["counterexample_ms"][key], doc["fisher_factor_seconds"][key] = bench_synthetic(n)
    if not quick:       # the columnar state: state_load, partition scan, factor agreement
        for section, values in scale_benchmarks().items():
            doc.setdefault(section, {}).update(values)
    doc["iteration_seconds"] = bench_iterations()
    doc["in_loop_ms"] = {"breast_fc": bench_in_loop("breast", 40 if quick else 100,
                                                    (0,) if quick else (0, 1, 2))}
    if not quick:
        doc["in_loop_ms"]["digits_fc"] = bench_in_loop("digits", 100, (0,))
    doc["service_lease_after_retrain"] = {
        name: bench_lease_after_retrain(name) for name in
        (("breast",) if quick else ("breast", "digits"))}
    doc["service_verdicts"] = verdict_benchmarks(quick)
    doc.update(consensus_benchmarks(quick))     # consensus_update_ms, crowdlab
    doc["reference_check"] = {"max_rel_error": max_rel}
    if detectors:
        doc["detectors"] = detector_benchmarks(quick)
    doc["device"] = [d.name for d in tf.config.list_logical_devices()]
    return doc
