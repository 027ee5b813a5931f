"""Fixtures for the service modules: a noisy breast stream and a context with inline jobs."""
import pytest

from cincer_service.datasets import inject_noise, load_dataset
from tests.support.service import make_context


@pytest.fixture(scope="session")
def stream():
    """breast with 20% random label noise: ``(data, noisy, corrupted)``."""
    data = load_dataset("breast", seed=0)
    noisy, corrupted = inject_noise(data.y_train, 2, 0.2, seed=0)
    return data, noisy, corrupted


@pytest.fixture
def ctx(tmp_path):
    """A context on a temporary SQLite file; jobs run inline inside ``submit``."""
    return make_context(tmp_path)
