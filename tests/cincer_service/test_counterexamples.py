import numpy as np
import pytest
import tensorflow as tf

from cincer_service import autodiff
from cincer_service.counterexamples import STRATEGIES, NoCandidates, get_strategy
from cincer_service.datasets import load_dataset
from cincer_service.models import Classifier
from cincer_service.state import ModelState


@pytest.fixture(scope="module")
def noisy_iris(noisy_data):
    ds, noisy, corrupted = noisy_data("iris", seed=1)
    clf = Classifier("fc", ds.input_shape, ds.n_classes, seed=0, max_epochs=60)
    clf.fit(ds.X_train, noisy)
    return ds, clf, noisy, corrupted


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_a_pertinent_counterexample(noisy_iris, name):
    ds, clf, noisy, _ = noisy_iris
    state = ModelState.build(clf, ds.X_train, noisy)
    strategy = get_strategy(name, **({"max_iter": 10} if name.startswith("influence") else {}))
    x = ds.X_test[0]
    prediction = int(clf.predict(x[None])[0])
    label = (prediction + 1) % ds.n_classes
    ranking = strategy.rank(state, x, label)
    assert ranking.prediction == prediction
    assert np.all(state.y[ranking.indices] == prediction)          # pertinence
    assert set(ranking.indices) == set(np.flatnonzero(state.y == prediction))
    assert np.all(np.diff(ranking.scores) <= 1e-12)                 # best first
    assert strategy.select(state, x, label) == ranking.best


def test_top_fisher_factor_is_cached_per_state(noisy_iris):
    ds, clf, noisy, _ = noisy_iris
    state = ModelState.build(clf, ds.X_train, noisy)
    strategy = get_strategy("top_fisher")
    strategy.select(state, ds.X_test[0], 0)
    factor = state.cache["top_fisher_factor"]
    strategy.select(state, ds.X_test[1], 1)
    state.relabel(0, int(state.y[0]))
    assert state.cache["top_fisher_factor"] is factor   # label-free: kept across relabels
    assert "residuals" not in state.cache


def test_no_candidates_is_reported_not_crashed(noisy_iris):
    ds, clf, _, _ = noisy_iris
    prediction = int(clf.predict(ds.X_test[:1])[0])
    other = (prediction + 1) % ds.n_classes
    y = np.full(len(ds.y_train), other)                   # nobody carries the prediction
    state = ModelState.build(clf, ds.X_train, y)
    strategy = get_strategy("top_fisher")
    with pytest.raises(NoCandidates):
        strategy.rank(state, ds.X_test[0], other)
    assert strategy.select(state, ds.X_test[0], other) is None


def test_full_fisher_refuses_large_models():
    ds = load_dataset("digits")
    clf = Classifier("cnn", ds.input_shape, 10, seed=0)
    state = ModelState.build(clf, ds.X_train[:20], ds.y_train[:20])
    with pytest.raises(ValueError, match="limit"):
        get_strategy("full_fisher").rank(state, ds.X_test[0], 0)


def test_unknown_strategy_has_a_clear_error():
    with pytest.raises(ValueError, match="unknown counter-example strategy"):
        get_strategy("magic")


def test_forward_over_backward_hvp_matches_double_backward(noisy_iris):
    ds, clf, noisy, _ = noisy_iris
    X, y = ds.X_train[:40], noisy[:40]
    v = np.random.default_rng(0).standard_normal(clf.n_params)
    variables = clf.model.trainable_variables
    parts = autodiff._unflat(tf.constant(v), variables)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            _, p = clf.model(X, training=False)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, p))
        g = inner.gradient(loss, variables)
        dot = tf.add_n([tf.reduce_sum(a * b) for a, b in zip(g, parts)])
    expected = autodiff._flat(outer.gradient(dot, variables)).numpy()
    got = autodiff.hvp(clf, X, y, v).numpy()
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-5


def test_iterative_solvers_invert_a_positive_definite_matrix():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 20))
    A = A @ A.T / 20 + np.eye(20)
    b = rng.standard_normal(20)
    matvec = lambda v: tf.linalg.matvec(tf.constant(A), v)  # noqa: E731
    exact = np.linalg.solve(A + 1e-2 * np.eye(20), b)
    np.testing.assert_allclose(autodiff.conjugate_gradient(matvec, b, 1e-2, 200).numpy(), exact, rtol=1e-5)
    scale = float(np.linalg.eigvalsh(A).max()) * 1.5
    approx = autodiff.lissa(matvec, b, 1e-2 / scale, scale=scale, depth=2000).numpy()
    np.testing.assert_allclose(approx, np.linalg.solve(A + 1e-2 * np.eye(20), b), rtol=1e-3)


def test_top_fisher_prefers_the_mislabelled_candidates(noisy_iris):
    """On a clean stream, the top counter-examples of disagreements are mostly corrupted."""
    ds, clf, noisy, corrupted = noisy_iris
    state = ModelState.build(clf, ds.X_train, noisy)
    strategy = get_strategy("top_fisher")
    hits, total = 0, 0
    for x, label in zip(ds.X_test, ds.y_test):
        if int(clf.predict(x[None])[0]) == label:
            continue
        ranking = strategy.rank(state, x, int(label))
        hits += corrupted[ranking.indices[:5]].sum()
        total += 5
    base_rate = corrupted.mean()
    assert total > 0 and hits / total > base_rate


def test_one_example_gradient_matches_the_per_example_jacobian(noisy_iris):
    ds, clf, noisy, _ = noisy_iris
    for i in range(3):
        expected = autodiff.loss_gradients(clf, ds.X_train[i:i + 1], noisy[i:i + 1])[0].numpy()
        got = autodiff.loss_gradient(clf, ds.X_train[i], int(noisy[i])).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def eager_influence_scores(state, x, label, damping=1e-2, max_iter=100):
    """``−g_kᵀ H⁻¹ g_t`` for every known example, with eager Hessian-vector products."""
    clf = state.classifier
    g_t = autodiff.loss_gradients(clf, np.asarray(x)[None], [label])[0]
    s = autodiff.conjugate_gradient(lambda v: autodiff.hvp(clf, state.X, state.y, v), g_t,
                                    damping, max_iter)
    return -tf.linalg.matvec(autodiff.loss_gradients(clf, state.X, state.y), s).numpy()


def test_influence_with_the_compiled_hvp_matches_eager_and_follows_a_relabel(noisy_iris):
    ds, clf, noisy, _ = noisy_iris
    state = ModelState.build(clf, ds.X_train[:60], noisy[:60].copy())
    strategy = get_strategy("influence")
    x = ds.X_test[0]
    label = (int(clf.predict(x[None])[0]) + 1) % ds.n_classes
    for _ in range(2):                       # the graph is traced once, then reused
        ranking = strategy.rank(state, x, label)
        expected = eager_influence_scores(state, x, label)[ranking.indices]
        np.testing.assert_allclose(ranking.scores, expected, rtol=1e-4, atol=1e-8)
    # A relabel changes the Hessian: the cached product must not keep the old labels.
    k = int(ranking.indices[0])
    state.relabel(k, (int(state.y[k]) + 1) % ds.n_classes)
    ranking = strategy.rank(state, x, label)
    expected = eager_influence_scores(state, x, label)[ranking.indices]
    np.testing.assert_allclose(ranking.scores, expected, rtol=1e-4, atol=1e-8)
