"""Fixtures for the service modules: a noisy breast stream and a context with inline jobs."""
import pytest

from tests.support.service import make_context


@pytest.fixture(scope="session")
def stream(breast):
    """The labelled stream the service tests ingest: ``breast`` (20% random noise) as
    ``(data, noisy, corrupted)``."""
    return breast


@pytest.fixture
def ctx(tmp_path):
    """A context on a temporary SQLite file; jobs run inline inside ``submit``."""
    return make_context(tmp_path)
