"""Shared fixtures: bundled data sets with planted label noise, loaded once per session.

``noisy_data(name, noise=0.2, seed=0)`` returns a ``NoisyData(data, noisy, corrupted)``
(cached per arguments, so shared by every test: copy before editing); ``breast`` is
breast cancer at 20% random noise, seed 0.
"""
import os
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


class NoisyData(NamedTuple):
    data: object              # cincer_service.datasets.Dataset (train/test split)
    noisy: np.ndarray         # training labels after noise
    corrupted: np.ndarray     # True where the training label was flipped


@lru_cache(maxsize=None)
def _noisy_data(name: str, noise: float, seed: int, noise_type: str) -> NoisyData:
    from cincer_service.datasets import inject_noise, load_dataset
    data = load_dataset(name, seed=0)
    noisy, corrupted = inject_noise(data.y_train, data.n_classes, noise, noise_type, seed=seed)
    return NoisyData(data, noisy, corrupted)


@pytest.fixture(scope="session")
def noisy_data():
    """Factory: ``noisy_data(name, noise=0.2, seed=0, noise_type="random")``."""
    def make(name: str, noise: float = 0.2, seed: int = 0, noise_type: str = "random"):
        return _noisy_data(name, noise, seed, noise_type)
    return make


@pytest.fixture(scope="session")
def breast(noisy_data) -> NoisyData:
    """Breast cancer, 20% random label noise (seed 0): ``(data, noisy, corrupted)``."""
    return noisy_data("breast")
