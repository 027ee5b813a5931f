import numpy as np
import pytest
import tensorflow as tf

from cincer_service import influence, reference
from cincer_service.models import Classifier
from cincer_service.state import ModelState


@pytest.fixture(scope="module")
def small_model(noisy_data):
    ds, y, _ = noisy_data("wine")
    clf = Classifier("fc", ds.input_shape, ds.n_classes, seed=0, max_epochs=20)
    clf.fit(ds.X_train[:60], y[:60])
    return clf, ds.X_train[:60], y[:60], ds


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


def test_closed_form_gradients_match_gradient_tape(small_model):
    clf, X, y, _ = small_model
    state = ModelState.build(clf, X, y)
    closed = influence.gradients(state.residuals, state.h_aug).numpy()
    naive = reference.top_gradients(clf, X, y)
    assert closed.shape == naive.shape == (60, 3 * 33)
    assert rel_err(closed, naive) < 1e-5


def test_gradient_dot_products_match_naive(small_model):
    clf, X, y, _ = small_model
    state = ModelState.build(clf, X, y)
    naive = reference.top_gradients(clf, X, y)
    closed = influence.gradient_dot(state.residuals, state.h_aug, state.residuals, state.h_aug)
    assert rel_err(closed, naive @ naive.T) < 1e-5
    norms = influence.gradient_norms(state.residuals, state.h_aug)
    assert rel_err(norms, np.linalg.norm(naive, axis=1)) < 1e-5


def test_top_fisher_matches_expected_outer_products(small_model):
    clf, X, _, _ = small_model
    state = ModelState.build(clf, X[:25], np.zeros(25, np.int64))
    closed = influence.top_fisher(state.probs, state.h_aug, damping=0.0).numpy()
    naive = reference.top_fisher(clf, X[:25])
    assert rel_err(closed, naive) < 1e-5
    # chunked accumulation gives the same matrix
    chunked = influence.top_fisher(state.probs, state.h_aug, damping=0.0, chunk_size=7).numpy()
    assert rel_err(chunked, closed) < 1e-10


def test_counterexample_scores_match_dense_solve(small_model):
    clf, X, y, ds = small_model
    damping = 1e-3
    state = ModelState.build(clf, X, y, damping=damping)
    x_t, label_t = ds.X_test[0], int(ds.y_test[0])
    h_t, p_t = state.query(x_t)
    r_t = influence.residuals(p_t[None], [label_t])[0]
    V = influence.query_vector(state.top_fisher_factor, r_t, h_t)
    closed = influence.counterexample_scores(V, state.residuals, state.h_aug).numpy()
    naive = reference.counterexample_scores(clf, X, y, x_t, label_t, damping)
    assert rel_err(closed, naive) < 1e-5
    assert np.argmax(closed) == np.argmax(naive)


def test_self_influence_matches_dense_quadratic_form(small_model):
    clf, X, y, _ = small_model
    state = ModelState.build(clf, X, y, damping=1e-2)
    G = influence.gradients(state.residuals, state.h_aug).numpy()
    F = influence.top_fisher(state.probs, state.h_aug, 1e-2).numpy()
    naive = np.einsum("ij,ij->i", G, np.linalg.solve(F, G.T).T)
    fast = influence.self_influence(state.top_fisher_factor, state.residuals, state.h_aug,
                                    chunk_size=16).numpy()
    assert rel_err(fast, naive) < 1e-6


def test_margin_is_gap_between_prediction_and_label():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_allclose(influence.margin(p, [1, 2]).numpy(), [0.5, 0.0])


def test_non_positive_definite_matrix_is_refused():
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        influence.fisher_factor(-np.eye(3))


def _random_top(n, c, d1, seed):
    rng = np.random.default_rng(seed)
    h = np.abs(rng.standard_normal((n, d1)))
    h[:, -1] = 1.0
    logits = rng.standard_normal((n, c)) * 3
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), h


@pytest.mark.parametrize("c", [2, 3, 10])
def test_float32_top_fisher_equals_the_float64_one(c):
    """Off-diagonal blocks only, float32 chunks on two threads: ``top_fisher_np`` to 1e-5."""
    p, h = _random_top(3000, c, 9, seed=c)
    exact = influence.top_fisher_np(p, h, 1e-3)
    fast = influence.weighted_top_fisher_np(p.astype(np.float32), h.astype(np.float32),
                                            damping=1e-3, chunk_size=256, threads=2)
    assert rel_err(fast, exact) < 1e-5
    np.testing.assert_array_equal(fast, fast.T)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(p))
    weighted = influence.weighted_top_fisher_np(p, h, w, 1e-3, chunk_size=512)
    naive = influence.top_fisher_np(p, h * np.sqrt(w)[:, None], 0.0) * len(p) / w.sum()
    assert rel_err(weighted - 1e-3 * np.eye(len(weighted)), naive) < 1e-5
