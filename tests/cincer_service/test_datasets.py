import numpy as np
import pytest

from cincer_service.datasets import inject_noise, load_dataset, structured_noise_map


@pytest.mark.parametrize("name,n_classes,shape", [
    ("breast", 2, (30,)), ("digits", 10, (8, 8, 1)), ("wine", 3, (13,)), ("iris", 3, (4,))])
def test_bundled_sets_load_offline_with_80_20_split(name, n_classes, shape):
    ds = load_dataset(name)
    n = len(ds.y_train) + len(ds.y_test)
    assert abs(len(ds.y_test) / n - 0.2) < 0.01
    assert ds.n_classes == n_classes and ds.input_shape == shape
    assert ds.X_train.dtype == np.float32
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0   # MinMax / pixel scaling


def test_synthetic_has_requested_size():
    ds = load_dataset("synthetic", n_samples=500, n_features=16, n_classes=4)
    assert len(ds.y_train) + len(ds.y_test) == 500
    assert ds.input_shape == (16,) and ds.n_classes == 4


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist")


def test_random_noise_flips_exactly_the_rate_to_other_classes():
    y = np.repeat(np.arange(5), 40)
    noisy, corrupted = inject_noise(y, 5, 0.2, "random", seed=3)
    assert corrupted.sum() == 40
    assert np.all(noisy[corrupted] != y[corrupted])
    assert np.array_equal(noisy[~corrupted], y[~corrupted])
    again, _ = inject_noise(y, 5, 0.2, "random", seed=3)
    assert np.array_equal(noisy, again)


def test_structured_noise_follows_a_fixed_derangement():
    mapping = structured_noise_map(10, seed=0)
    assert sorted(mapping) == list(range(10)) and np.all(mapping != np.arange(10))
    y = np.repeat(np.arange(10), 20)
    noisy, corrupted = inject_noise(y, 10, 0.3, "structured", seed=0)
    assert np.array_equal(noisy[corrupted], mapping[y[corrupted]])
