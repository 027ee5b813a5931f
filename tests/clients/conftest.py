"""Fixtures for the client and CLI tests: the fake service, with the CLI's environment
pointing at it."""
import pytest

from .fake_service import TOKEN, start_fake_service


@pytest.fixture
def fake(monkeypatch):
    """(service, url) of a running fake service; CINCER_URL/CINCER_TOKEN point at it."""
    server, service, url = start_fake_service()
    monkeypatch.setenv("CINCER_URL", url)
    monkeypatch.setenv("CINCER_TOKEN", TOKEN)
    monkeypatch.delenv("CINCER_PROJECT", raising=False)
    yield service, url
    server.shutdown()
    server.server_close()
