"""Closed-form pairwise algebra vs naive per-pair loops on explicit (GradientTape) gradients."""
import numpy as np
import pytest

from cincer_service import reference
from cincer_service.datasets import load_dataset
from cincer_service.detectors import (
    NotEnoughTrusted,
    TrustedSet,
    get_detector,
    inspection_auc,
    inspection_curve,
    near_duplicates,
    pairwise,
    precision_at,
)
from cincer_service.models import Classifier
from cincer_service.state import ModelState


@pytest.fixture(scope="module")
def tiny(noisy_data):
    """A small fc model on wine, 40 noisy known examples, 18 trusted ones (6 per class)."""
    ds, noisy, _ = noisy_data("wine")
    clf = Classifier("fc", ds.input_shape, ds.n_classes, seed=0, max_epochs=15)
    clf.fit(ds.X_train[:80], noisy[:80])
    state = ModelState.build(clf, ds.X_train[:40], noisy[:40], damping=1e-2)
    idx = np.concatenate([np.flatnonzero(ds.y_test == k)[:6] for k in range(3)])
    trusted = TrustedSet(y=ds.y_test[idx], X=ds.X_test[idx])
    G = reference.top_gradients(clf, state.X, state.y)
    G_clean = reference.top_gradients(clf, trusted.X, trusted.y)
    return state, trusted, G, G_clean


def naive_similarity(G, G_clean, kind, F=None):
    S = np.zeros((len(G), len(G_clean)))
    for i, g in enumerate(G):
        for j, gc in enumerate(G_clean):
            if kind == "dot":
                S[i, j] = g @ gc
            elif kind == "cos":
                S[i, j] = g @ gc / (np.linalg.norm(g) * np.linalg.norm(gc))
            else:
                S[i, j] = g @ np.linalg.solve(F, gc)
    return S


def naive_scores(S, labels, class_based):
    if not class_based:
        return -S.mean(axis=1)
    out = []
    for i in range(S.shape[0]):
        means = [np.mean([S[i, j] for j in range(S.shape[1]) if labels[j] == k])
                 for k in sorted(set(labels))]
        out.append(-min(means))
    return np.array(out)


def close(a, b, tol=1e-5):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) <= tol * max(np.max(np.abs(b)), 1e-12)


@pytest.mark.parametrize("kind", ["dot", "cos"])
def test_factorised_pair_matrix_matches_explicit_gradients(tiny, kind):
    state, trusted, G, G_clean = tiny
    h_c, _ = trusted.features(state)
    S = pairwise.gradient_similarity(state.residuals, state.h_aug, trusted.residuals(state), h_c, kind)
    assert S.shape == (40, 18)
    assert close(S, naive_similarity(G, G_clean, kind))


@pytest.mark.parametrize("name,kind", [("gd", "dot"), ("gc", "cos"), ("if", "if"),
                                       ("gd_class", "dot"), ("gc_class", "cos"), ("if_class", "if")])
def test_detector_scores_match_naive_mean_and_min_over_classes(tiny, name, kind):
    state, trusted, G, G_clean = tiny
    F = reference.top_fisher(state.classifier, state.X, damping=state.damping)
    expected = naive_scores(naive_similarity(G, G_clean, kind, F), trusted.y, name.endswith("_class"))
    scores = get_detector(name).score(state, trusted)
    assert close(scores, expected, tol=1e-4)


def test_class_based_takes_the_minimum_not_the_mean(tiny):
    state, trusted, G, G_clean = tiny
    plain = get_detector("gd").score(state, trusted)
    by_class = get_detector("gd_class").score(state, trusted)
    # −min_k mean_k ≥ −mean over all (equal class sizes), with strict inequality somewhere
    assert np.all(by_class >= plain - 1e-12) and np.any(by_class > plain + 1e-9)


def test_tracin_is_learning_rate_weighted_sum_over_checkpoints(tiny):
    state, trusted, _, _ = tiny
    clf = state.classifier
    final = clf.get_weights()
    tracin = get_detector("tracin", checkpoints=[final, final], learning_rates=[0.5, 0.25])
    assert close(tracin.score(state, trusted), 0.75 * get_detector("gd").score(state, trusted))
    assert all(np.array_equal(a, b) for a, b in zip(clf.get_weights(), final))


def test_self_influence_is_g_inverse_hessian_g(tiny):
    state, _, G, _ = tiny
    F = reference.top_fisher(state.classifier, state.X, damping=state.damping)
    expected = np.einsum("ip,ip->i", G, np.linalg.solve(F, G.T).T)
    assert close(get_detector("self_influence").score(state), expected, tol=1e-4)


def test_all_layer_cg_equals_closed_form_when_the_model_is_one_layer():
    ds = load_dataset("iris", seed=0)
    clf = Classifier("lr", ds.input_shape, ds.n_classes, seed=0, max_epochs=30)
    clf.fit(ds.X_train, ds.y_train)
    state = ModelState.build(clf, ds.X_train[:30], ds.y_train[:30], damping=1e-2)
    closed = get_detector("self_influence").score(state)
    cg = get_detector("self_influence_cg", max_examples=None, hvp_sample=30,
                      damping=1e-2, max_iter=60).score(state)
    assert close(cg, closed, tol=1e-3)


def test_class_based_refuses_too_few_trusted_per_class(tiny):
    state, trusted, _, _ = tiny
    few = TrustedSet(y=trusted.y[:8], X=trusted.X[:8])  # classes 0 (6) and 1 (2), none of 2
    with pytest.raises(NotEnoughTrusted, match="not enough trusted examples per class"):
        get_detector("gd_class", min_per_class=3).score(state, few)
    assert get_detector("gd").score(state, few).shape == (40,)
    with pytest.raises(NotEnoughTrusted):
        get_detector("if").score(state, None)


def test_trusted_set_from_known_rows_uses_cached_features(tiny):
    state, _, G, _ = tiny
    trusted = TrustedSet.from_state(state, [0, 1, 2, 3])
    expected = -np.mean(G @ G[:4].T, axis=1)
    assert close(get_detector("gd").score(state, trusted), expected)


def test_unknown_detector_name_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of .*gd_class"):
        get_detector("nope")


def test_metrics_on_known_rankings():
    is_error = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    perfect = np.arange(10, 0, -1).astype(float)
    assert precision_at(perfect, is_error, 0.2) == 1.0
    assert precision_at(-perfect, is_error, 0.2) == 0.0
    assert inspection_auc(perfect, is_error) == pytest.approx(1 - 0.2 / 2)
    assert inspection_auc(-perfect, is_error) == pytest.approx(0.2 / 2)
    assert inspection_auc(np.zeros(10), is_error) == pytest.approx(0.5)  # all tied = random
    x, found = inspection_curve(perfect, is_error)
    assert (x[0], found[0], x[-1], found[-1], found[2]) == (0, 0, 1, 1, 1)
    # the area of the explicit curve agrees with the closed form
    assert np.trapezoid(found, x) == pytest.approx(inspection_auc(perfect, is_error))


def test_near_duplicates_tabular_and_leakage():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 6))
    X[7] = X[3] * 1.0001          # same cell, both train: a duplicate
    X[20] = X[10] + 1e-4          # same cell, one in validation: leakage
    X[25] = X[5]                  # identical input but a different cell: not searched
    labels = np.zeros(30, int)
    labels[25] = 1
    predictions = labels.copy()
    is_validation = np.zeros(30, bool)
    is_validation[20] = True
    report = near_duplicates(X, labels, predictions, is_validation)
    assert [(p.first, p.second) for p in report.pairs] == [(3, 7)]
    assert [(p.first, p.second) for p in report.leakage] == [(10, 20)]


def test_near_duplicates_on_images_uses_ssim():
    ds = load_dataset("digits", seed=0)
    X = ds.X_train[:60].copy()
    X[40] = np.clip(X[2] + 0.01, 0, 1)   # near copy of image 2
    labels = np.r_[ds.y_train[:60]]
    labels[40] = labels[2]
    report = near_duplicates(X, labels, labels)
    assert (2, 40) in [(p.first, p.second) for p in report.pairs]
    assert all(p.similarity >= 0.95 for p in report.pairs)
    assert report.compared < 60 * 59 // 2
