"""The shared integration-test helpers in ``tests/support/services.py``."""
import os
import socket
import sys

import psycopg2
import pytest
import redis
import requests

from tests.support.services import (
    free_port,
    postgres_database,
    process,
    redis_answers,
    start_redis,
    wait_http,
    wait_until,
)


def test_start_redis_serves_a_private_loopback_server(monkeypatch):
    monkeypatch.delenv("CINCER_TEST_REDIS_URL", raising=False)
    with start_redis() as url:
        assert url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        # A second call reuses a given server that answers.
        monkeypatch.setenv("CINCER_TEST_REDIS_URL", url)
        with start_redis() as same:
            assert same == url
    assert not redis_answers(url)


def test_process_and_wait_http_stop_the_whole_group(tmp_path):
    port = free_port()
    log = str(tmp_path / "server.log")
    # The server runs in a grandchild, so only a process-group kill stops it.
    cmd = ["bash", "-c", f"{sys.executable} -m http.server {port} --bind 127.0.0.1; true"]
    with process(cmd, dict(os.environ), log) as proc:
        assert wait_http(f"http://127.0.0.1:{port}/", 30, proc, log).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    with pytest.raises(TimeoutError):
        wait_until(lambda: False, 0.3, 0.1, "never")
    with socket.socket() as sock:       # nothing listens on the port any more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_postgres_database_is_created_and_dropped(monkeypatch):
    if not os.environ.get("CINCER_TEST_POSTGRES_URL"):
        with postgres_database() as url:
            assert url is None
        return
    with postgres_database() as url:
        assert url.startswith("postgresql+psycopg2://")
        name = url.rsplit("/", 1)[1]
        with psycopg2.connect(url.replace("+psycopg2", "")) as conn:
            assert conn.cursor() is not None
    admin = psycopg2.connect(os.environ["CINCER_TEST_POSTGRES_URL"])
    with admin.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert cursor.fetchone()[0] == 0
    admin.close()
