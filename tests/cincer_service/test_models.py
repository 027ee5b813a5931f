import numpy as np
import pytest

from cincer_service.datasets import load_dataset
from cincer_service.models import Classifier


@pytest.mark.parametrize("kind,dataset,n_params", [
    ("lr", "iris", 4 * 3 + 3), ("fc", "breast", 30 * 64 + 64 + 64 * 32 + 32 + 32 * 2 + 2)])
def test_architectures_match_the_paper(kind, dataset, n_params):
    ds = load_dataset(dataset)
    clf = Classifier(kind, ds.input_shape, ds.n_classes)
    assert clf.n_params == n_params
    h, p = clf.forward(ds.X_test[:5])
    W, b = clf.top_weights()
    assert h.shape == (5, W.shape[0]) and p.shape == (5, ds.n_classes)
    # the exposed features are exactly the top layer's input
    logits = h @ W + b
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(p, expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_cnn_on_digits_images_learns():
    ds = load_dataset("digits")
    clf = Classifier("cnn", ds.input_shape, 10, seed=0, max_epochs=15)
    report = clf.fit(ds.X_train[:400], ds.y_train[:400])
    assert report.epochs <= 15
    assert (clf.predict(ds.X_test) == ds.y_test).mean() > 0.7


def test_scratch_training_is_deterministic_and_stops_early():
    ds = load_dataset("breast")
    a = Classifier("fc", ds.input_shape, 2, seed=4)
    b = Classifier("fc", ds.input_shape, 2, seed=4)
    ra, rb = a.fit(ds.X_train, ds.y_train), b.fit(ds.X_train, ds.y_train)
    assert ra.epochs == rb.epochs < 100 and ra.train_accuracy >= 0.9
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    # scratch re-initialises: a second scratch fit reproduces the first
    first = [w.copy() for w in a.get_weights()]
    a.fit(ds.X_train, ds.y_train, mode="warm")
    assert not all(np.array_equal(u, v) for u, v in zip(first, a.get_weights()))
    a2 = Classifier("fc", ds.input_shape, 2, seed=4)
    a2.fit(ds.X_train, ds.y_train)
    a2.fit(ds.X_train, ds.y_train, mode="warm")
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), a2.get_weights()))


def test_warm_mode_runs_the_configured_epochs():
    ds = load_dataset("iris")
    clf = Classifier("lr", ds.input_shape, 3, warm_epochs=3)
    assert clf.fit(ds.X_train, ds.y_train, mode="warm").epochs == 3


def test_save_and_load_round_trip(tmp_path):
    ds = load_dataset("wine")
    clf = Classifier("fc", ds.input_shape, 3, seed=1, max_epochs=5)
    clf.fit(ds.X_train, ds.y_train)
    clf.save(tmp_path / "m.npz")
    loaded = Classifier.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict_proba(ds.X_test), clf.predict_proba(ds.X_test))
    assert loaded.config() == clf.config()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown model kind"):
        Classifier("rnn", (4,), 3)
    with pytest.raises(ValueError, match="image"):
        Classifier("cnn", (4,), 3)
    clf = Classifier("lr", (4,), 3)
    with pytest.raises(ValueError, match="empty"):
        clf.fit(np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(ValueError, match="scratch"):
        clf.fit(np.zeros((2, 4)), np.zeros(2), mode="lukewarm")


def test_vector_inputs_are_standardized_with_the_training_statistics():
    from sklearn.preprocessing import StandardScaler

    from cincer_service.models import standardization
    rng = np.random.default_rng(0)
    # raw features of very different ranges, one constant column
    X = np.column_stack([rng.normal(1000, 300, 200), rng.normal(0.01, 0.002, 200),
                         np.full(200, 7.0)]).astype(np.float32)
    y = (X[:, 0] / 300 + X[:, 1] / 0.002 > 1000 / 300 + 5).astype(np.int64)
    mean, inv_scale = standardization(X)
    scaler = StandardScaler().fit(X.astype(np.float64))
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-6)
    np.testing.assert_allclose(1.0 / inv_scale, scaler.scale_, rtol=1e-5)
    assert inv_scale[2] == 1.0                                    # constant: scale 1

    clf = Classifier("fc", (3,), 2, seed=0, schedule="fixed", max_epochs=30)
    assert clf.standardize and clf.model.layers[1].name == "standardize"
    clf.fit(X, y)
    layer = clf.model.get_layer("standardize")
    np.testing.assert_allclose(layer.mean.numpy(), mean)
    assert (clf.predict(X) == y).mean() > 0.9                     # raw ranges still train
    # the numpy fast path applies the same standardization
    h_tf, p_tf = clf.forward(X[:17])
    h_np, p_np = clf.fast_forward(X[:17])
    np.testing.assert_allclose(p_np, p_tf, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h_np, h_tf, rtol=1e-4, atol=1e-5)
    # a warm fit keeps the statistics of the last scratch fit
    clf.fit(X[:50] * 2, y[:50], mode="warm")
    np.testing.assert_allclose(layer.mean.numpy(), mean)
    # images keep their shared pixel scale unless asked; standardize=False is the old model
    assert not Classifier("fc", (8, 8, 1), 10).standardize
    assert not Classifier("cnn", (8, 8, 1), 10, standardize=True).standardize
    assert not Classifier("fc", (3,), 2, standardize=False).standardize


def test_weights_saved_before_standardization_load_as_the_identity():
    ds = load_dataset("breast")
    old = Classifier("fc", ds.input_shape, 2, seed=3, schedule="fixed", max_epochs=5,
                     standardize=False)
    old.fit(ds.X_train[:100], ds.y_train[:100])
    new = Classifier("fc", ds.input_shape, 2, seed=3)
    new.set_weights(old.get_weights())                     # two arrays short
    np.testing.assert_allclose(new.predict_proba(ds.X_test), old.predict_proba(ds.X_test),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.fast_forward(ds.X_test)[1], old.predict_proba(ds.X_test),
                               rtol=1e-4, atol=1e-6)


def test_a_model_saved_before_standardization_loads_as_it_was(tmp_path):
    import json
    ds = load_dataset("breast")
    old = Classifier("fc", ds.input_shape, 2, seed=1, max_epochs=5, standardize=False)
    old.fit(ds.X_train[:100], ds.y_train[:100])
    old.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as data:                 # rewrite as an older file
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays.pop("__config__")))
    for key in ("standardize", "monitor", "refit"):
        config.pop(key)
    np.savez(tmp_path / "old.npz", __config__=np.array(json.dumps(config)), **arrays)
    loaded = Classifier.load(tmp_path / "old.npz")
    assert not loaded.standardize
    np.testing.assert_array_equal(loaded.predict_proba(ds.X_test), old.predict_proba(ds.X_test))
    loaded.fit(ds.X_train[:100], ds.y_train[:100])             # a scratch fit still works
