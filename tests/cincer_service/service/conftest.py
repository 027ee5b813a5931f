"""Fixtures for the service modules: a noisy breast stream, a context with inline jobs and
seeded gold-check draws."""
import random

import pytest

from cincer_service.service import crowd
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


@pytest.fixture
def seeded_gold_draws(monkeypatch):
    """Gold checks drawn from a seeded generator, so a crowd test sees the same leases on
    every run."""
    monkeypatch.setattr(crowd, "_random", random.Random(0))
