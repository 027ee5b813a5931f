"""Fixtures for the client and CLI tests: the fake service, with the CLI's environment
pointing at it, and ``live``, the real API on 127.0.0.1."""
import threading

import pytest
from werkzeug.serving import make_server

from .fake_service import TOKEN, start_fake_service

LIVE_ADMIN = "admin-secret-for-live-cli-tests"


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


@pytest.fixture
def live(tmp_path, monkeypatch):
    """A ``CincerClient`` (admin token) of the real API in a thread, over temporary SQLite
    with jobs run inline; CINCER_URL/CINCER_TOKEN point at it."""
    from api import create_app
    from cincer_service.service import Settings, access, build_context, runner
    from clients import CincerClient

    ctx = build_context(Settings(data_dir=str(tmp_path / "live-data"), admin_token=LIVE_ADMIN))
    ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    access.ensure_admin_token(ctx, LIVE_ADMIN)
    app = create_app(service=ctx, config={"TESTING": True})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{http.server_port}"
    monkeypatch.setenv("CINCER_URL", url)
    monkeypatch.setenv("CINCER_TOKEN", LIVE_ADMIN)
    monkeypatch.delenv("CINCER_PROJECT", raising=False)
    yield CincerClient(url, LIVE_ADMIN)
    http.shutdown()
    thread.join(10)
