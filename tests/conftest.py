"""Shared fixtures: bundled data sets with planted label noise, loaded once per session;
the database a test runs on (``database_url``: SQLite, and PostgreSQL when
``CINCER_TEST_POSTGRES_URL`` answers); and the ``long`` tests (``make test-long``,
``pytest -m long`` or ``CINCER_TEST_LONG=1``), deselected otherwise wherever they live.

``noisy_data(name, noise=0.2, seed=0)`` returns a ``NoisyData(data, noisy, corrupted)``
(cached per arguments, so shared by every test: copy before editing); ``breast`` is
breast cancer at 20% random noise, seed 0.
"""
import os
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pytest

from tests.support.services import DATABASES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

def long_selected(config) -> bool:
    return os.environ.get("CINCER_TEST_LONG") == "1" or "long" in (config.option.markexpr or "")


def pytest_collection_modifyitems(config, items):
    """``long`` tests run only when asked for (make test-long)."""
    if long_selected(config):
        return
    deselected = [item for item in items if item.get_closest_marker("long") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("long") is None]


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    """A database URL per test: a SQLite file, and a fresh PostgreSQL database (dropped
    after) when ``CINCER_TEST_POSTGRES_URL`` is set."""
    from tests.support.services import postgres_database
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cincer.db'}"
        return
    with postgres_database() as url:
        assert url is not None, "CINCER_TEST_POSTGRES_URL is set but PostgreSQL does not answer"
        yield url


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
