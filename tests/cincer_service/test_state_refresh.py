"""The fast in-loop path (numpy forward, numpy top-layer algebra) against the slow ones.

A new model version needs a new ``ModelState`` and Top-Fisher factor; for small top layers
that runs in numpy. Every quantity is checked against the TensorFlow path of ``influence``
and the counter-example scores against one GradientTape per example (``reference``).
"""
import numpy as np
import pytest
import tensorflow as tf

from cincer_service import influence, reference
from cincer_service import state as state_module
from cincer_service.cleaning import PerfectOracle, cincer_step
from cincer_service.counterexamples import get_strategy
from cincer_service.datasets import inject_noise, load_dataset
from cincer_service.models import Classifier
from cincer_service.state import ModelState


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


@pytest.fixture(scope="module")
def wine():
    ds = load_dataset("wine", seed=0)
    noisy, _ = inject_noise(ds.y_train, ds.n_classes, 0.2, "random", 1)
    clf = Classifier("fc", ds.input_shape, ds.n_classes, seed=0, max_epochs=25)
    clf.fit(ds.X_train[:70], noisy[:70])
    return ds, clf, ds.X_train[:70], noisy[:70]


class TensorFlowOnly:
    """A classifier seen without its numpy forward pass."""

    def __init__(self, classifier):
        self._classifier = classifier

    def __getattr__(self, name):
        if name == "fast_forward":
            raise AttributeError(name)
        return getattr(self._classifier, name)


def slow_state(clf, X, y, damping, monkeypatch):
    """The TensorFlow path: TF forward pass, TF Fisher, TF residuals, TF scores."""
    with monkeypatch.context() as m:
        m.setattr(state_module, "SMALL_TOP_WORK", -1)
        st = ModelState.build(TensorFlowOnly(clf), X, y, damping=damping)
        assert not st.small_top                      # decided once, kept by the state
    return st


@pytest.mark.parametrize("kind,dataset", [("lr", "iris"), ("fc", "breast"), ("fc", "digits")])
def test_numpy_forward_matches_tensorflow(kind, dataset):
    ds = load_dataset(dataset, seed=0)
    clf = Classifier(kind, ds.input_shape, ds.n_classes, seed=3, max_epochs=3)
    assert clf.supports_numpy_forward
    for _ in range(2):              # fresh weights, then after a fit (snapshot refreshed)
        h, p = clf.fast_forward(ds.X_test)
        h_tf, p_tf = clf.forward(ds.X_test)
        assert h.dtype == p.dtype == np.float32 and h.shape == h_tf.shape and p.shape == p_tf.shape
        np.testing.assert_allclose(h, h_tf, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(p, p_tf, rtol=1e-5, atol=1e-6)
        clf.fit(ds.X_train[:80], ds.y_train[:80])


def test_weight_snapshot_follows_set_weights_and_load(tmp_path):
    ds = load_dataset("breast", seed=0)
    a = Classifier("fc", ds.input_shape, 2, seed=0, max_epochs=3)
    b = Classifier("fc", ds.input_shape, 2, seed=1, max_epochs=3)
    b.fit(ds.X_train[:100], ds.y_train[:100])
    version = a.weights_version
    a.set_weights(b.get_weights())
    assert a.weights_version > version
    np.testing.assert_array_equal(a.fast_forward(ds.X_test)[1], b.fast_forward(ds.X_test)[1])
    b.save(tmp_path / "b.npz")
    loaded = Classifier.load(tmp_path / "b.npz")
    np.testing.assert_allclose(loaded.fast_forward(ds.X_test)[1], b.forward(ds.X_test)[1],
                               rtol=1e-5, atol=1e-6)


def test_cnn_keeps_the_tensorflow_forward():
    ds = load_dataset("digits", seed=0)
    clf = Classifier("cnn", ds.input_shape, 10, seed=0)
    assert not clf.supports_numpy_forward
    np.testing.assert_array_equal(clf.fast_forward(ds.X_test[:5])[1], clf.forward(ds.X_test[:5])[1])


@pytest.mark.parametrize("c", [2, 3, 5])
def test_numpy_top_fisher_matches_tensorflow(c):
    rng = np.random.default_rng(c)
    n, d = 57, 6
    logits = rng.standard_normal((n, c))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    h_aug = influence.augment_np(np.abs(rng.standard_normal((n, d))))
    for chunk in (1000, 10):
        F_np = influence.top_fisher_np(p, h_aug, 0.1, chunk_size=chunk)
        F_tf = influence.top_fisher(p, h_aug, 0.1).numpy()
        assert rel_err(F_np, F_tf) < 1e-12
    L = influence.fisher_factor_np(F_np)
    np.testing.assert_allclose(L, influence.fisher_factor(F_tf).numpy(), rtol=1e-9, atol=1e-12)
    g = rng.standard_normal((4, c * (d + 1)))
    np.testing.assert_allclose(influence.fisher_solve_np(L, g), np.linalg.solve(F_tf, g.T).T,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(influence.fisher_solve_np(L, g[0]), np.linalg.solve(F_tf, g[0]),
                               rtol=1e-9, atol=1e-12)
    r = influence.residuals_np(p, rng.integers(0, c, n))
    V = influence.query_vector_np(L, r[0], h_aug[0])
    V_tf = influence.query_vector(tf.constant(L), r[0], h_aug[0]).numpy()
    np.testing.assert_allclose(V, V_tf, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(influence.counterexample_scores_np(V, r, h_aug),
                               influence.counterexample_scores(V_tf, r, h_aug).numpy(),
                               rtol=1e-9, atol=1e-12)


def test_numpy_factor_refuses_an_indefinite_matrix():
    with pytest.raises(ValueError, match="positive definite"):
        influence.fisher_factor_np(-np.eye(3))
    with pytest.raises(ValueError, match="positive definite"):
        influence.fisher_factor_np(np.full((2, 2), np.nan))


def test_fast_state_matches_the_tensorflow_state(wine, monkeypatch):
    ds, clf, X, y = wine
    fast = ModelState.build(clf, X, y, damping=1.0)
    slow = slow_state(clf, X, y, 1.0, monkeypatch)
    assert fast.small_top
    for a, b in ((fast.h_aug, slow.h_aug), (fast.probs, slow.probs),
                 (fast.residuals, slow.residuals), (fast.top_fisher_factor, slow.top_fisher_factor)):
        assert isinstance(a, tf.Tensor) and a.dtype == tf.float64 and a.shape == b.shape
        assert rel_err(a, b) < 1e-5
    assert rel_err(fast.top_fisher_factor_np, slow.top_fisher_factor) < 1e-5
    strategy = get_strategy("top_fisher")
    for i in range(8):
        x, label = ds.X_test[i], int((ds.y_test[i] + 1) % ds.n_classes)
        r_fast, r_slow = strategy.rank(fast, x, label), strategy.rank(slow, x, label)
        assert r_fast.prediction == r_slow.prediction
        assert rel_err(r_fast.scores, r_slow.scores) < 1e-4
        assert r_fast.best == r_slow.best


def test_fast_scores_match_gradient_tapes(wine):
    ds, clf, X, y = wine
    X, y = X[:30], y[:30]
    st = ModelState.build(clf, X, y, damping=0.5)
    assert st.small_top
    strategy = get_strategy("top_fisher")
    for i in range(2):
        x_t, label = ds.X_test[i], int(ds.y_test[i])
        naive = reference.counterexample_scores(clf, X, y, x_t, label, 0.5)
        ranking = strategy.rank(st, x_t, label)
        got = np.empty(len(y))
        got[ranking.indices] = ranking.scores
        assert rel_err(got[ranking.indices], naive[ranking.indices]) < 1e-4
        assert ranking.best == ranking.indices[np.argmax(naive[ranking.indices])]
    closed = influence.gradients(st.residuals, st.h_aug).numpy()
    assert rel_err(closed, reference.top_gradients(clf, X, y)) < 1e-5


def test_one_forward_pass_per_incoming_example_and_refresh_on_new_weights(wine, monkeypatch):
    ds, _, X, y = wine
    clf = Classifier("fc", ds.input_shape, ds.n_classes, seed=1, max_epochs=10)
    clf.fit(X, y)
    st = ModelState.build(clf, X, y, damping=1.0)
    calls = []
    original = clf.fast_forward
    monkeypatch.setattr(clf, "fast_forward", lambda A: calls.append(len(A)) or original(A))
    x = ds.X_test[0]
    prediction = int(np.argmax(st.query_arrays(x)[1]))
    label = (prediction + 1) % ds.n_classes
    outcome = cincer_step(st, x, label, 0, PerfectOracle(np.full(200, label)),
                          get_strategy("top_fisher"), threshold=0.0)
    assert outcome.counterexample is not None
    assert calls == [1]                        # screen and rank shared one forward pass
    h_t, p_t = st.query(x)
    assert st.query(x)[0] is h_t               # memoised tensors too
    np.testing.assert_allclose(p_t.numpy(), clf.forward(x[None])[1][0], rtol=1e-5, atol=1e-6)
    # relabelling keeps label-free work (factor, query memo), drops label-dependent caches
    factor = st.top_fisher_factor_np
    _ = st.residuals_np
    st.relabel(0, int(st.y[0]))
    assert st.top_fisher_factor_np is factor and "residuals_np" not in st.cache
    assert st.query(x)[0] is h_t
    # new weights: the memo does not serve the old model's answer
    clf.fit(X, y, mode="warm", schedule="fixed", epochs=3)
    new_p = st.query_arrays(x)[1]
    assert calls == [1, 1]
    np.testing.assert_allclose(new_p, clf.forward(x[None])[1][0], rtol=1e-5, atol=1e-6)


def test_states_built_from_tensors_still_work():
    """Detectors build states straight from cached tensors (no classifier)."""
    rng = np.random.default_rng(0)
    h_aug = influence.augment(np.abs(rng.standard_normal((40, 5))))
    logits = rng.standard_normal((40, 3))
    probs = tf.constant(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    y = rng.integers(0, 3, 40)
    st = ModelState(classifier=None, X=None, y=y, h_aug=h_aug, probs=probs, damping=0.1)
    F = influence.top_fisher(probs, h_aug, 0.1)
    assert rel_err(st.top_fisher_factor, influence.fisher_factor(F)) < 1e-10
    assert rel_err(st.residuals, influence.residuals(probs, y)) < 1e-12
