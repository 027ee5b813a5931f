import numpy as np
import pytest

from cincer_service.cleaning import NoisyOracle, PerfectOracle, cincer_step, margin, screen
from cincer_service.counterexamples import get_strategy
from cincer_service.models import Classifier
from cincer_service.state import ModelState


def test_margin_is_prediction_minus_label_probability():
    prediction, mu = margin([0.1, 0.6, 0.3], label=2)
    assert prediction == 1 and mu == pytest.approx(0.3)
    assert margin([0.1, 0.6, 0.3], label=1) == (1, 0.0)


def test_screen_uses_margin_and_threshold():
    s = screen([0.7, 0.2, 0.1], label=1, threshold=0.2)
    assert s.prediction == 0 and s.margin == pytest.approx(0.5) and s.suspicious
    assert not screen([0.5, 0.4, 0.1], label=1, threshold=0.2).suspicious   # μ = 0.1 < τ
    assert not screen([0.7, 0.2, 0.1], label=0).suspicious                  # label predicted


def test_noisy_oracle_errs_at_its_rate():
    truth = np.zeros(4000, dtype=int)
    oracle = NoisyOracle(truth, n_classes=3, q=0.25, seed=0)
    answers = np.array([oracle.label(i, 0) for i in range(4000)])
    assert abs((answers != 0).mean() - 0.25) < 0.03
    assert PerfectOracle(truth).label(5, 2) == 0


@pytest.fixture(scope="module")
def trained(noisy_data):
    ds, noisy, _ = noisy_data("iris")
    clf = Classifier("fc", ds.input_shape, 3, seed=0, max_epochs=60)
    clf.fit(ds.X_train, noisy)
    return ds, clf, noisy


def _suspicious_test_example(ds, clf):
    p = clf.predict_proba(ds.X_test)
    for i, probs in enumerate(p):
        pred = int(probs.argmax())
        wrong = int(np.argsort(probs)[0])
        if probs[pred] - probs[wrong] >= 0.2:
            return i, wrong
    raise AssertionError("no confident test prediction")


@pytest.mark.parametrize("variant", ["cincer", "no_ce", "drop_ce"])
def test_cincer_step_variants(trained, variant):
    ds, clf, noisy = trained
    state = ModelState.build(clf, ds.X_train, noisy.copy())
    i, wrong_label = _suspicious_test_example(ds, clf)
    truth = np.concatenate([ds.y_train, ds.y_test])
    oracle = PerfectOracle(truth)
    outcome = cincer_step(state, ds.X_test[i], wrong_label, len(ds.y_train) + i, oracle,
                          get_strategy("top_fisher"), 0.2, variant,
                          known_index=np.arange(len(ds.y_train)))
    assert outcome.suspicious and outcome.example_label == ds.y_test[i]
    if variant == "no_ce":
        assert outcome.counterexample is None
    else:
        k = outcome.counterexample
        assert state.y[k] == outcome.prediction
        if variant == "cincer":
            assert outcome.counterexample_label == ds.y_train[k]
        else:
            assert outcome.counterexample_label is None
            assert outcome.dropped_counterexample is False   # the example's label was fixed


def test_unknown_variant_is_refused(trained):
    ds, clf, noisy = trained
    state = ModelState.build(clf, ds.X_train, noisy)
    with pytest.raises(ValueError, match="variant"):
        cincer_step(state, ds.X_test[0], 0, 0, PerfectOracle(ds.y_train), None, variant="maybe")
