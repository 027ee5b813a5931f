"""The interop tests run against real servers (``make test-interop``), never in ``make test``:
they are collected only when ``CINCER_INTEROP=1``.

``label_studio`` starts the real Label Studio (``label-studio`` 1.23.x from its own
virtualenv, ``LABEL_STUDIO_VENV``, default ``.venv-label-studio``, which ``make
test-interop`` creates) on SQLite under the test's temporary directory, bound to 127.0.0.1
on a free port; ``cincer`` starts ``cincer-service serve`` from this virtualenv the same
way. Every process started here is stopped (its whole process group) at the end.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTEROP = os.environ.get("CINCER_INTEROP") == "1"
collect_ignore_glob = [] if INTEROP else ["test_*.py"]

LS_USER, LS_PASSWORD = "admin@example.com", "interop-password-1"
LS_TOKEN = "cincerinteroptoken0123456789abcdef012345"
ADMIN = "interop-admin-token"
START_TIMEOUT = 240.0          # Label Studio takes 40-50 s here; its first start migrates


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A process in its own group, its log in a file, stopped with SIGTERM then SIGKILL."""

    def __init__(self, name, command, env, log_path, url, health):
        self.name, self.url, self.log_path = name, url, log_path
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.health = url + health

    def wait_ready(self, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}; log tail:\n"
                            + self.tail(), pytrace=False)
            try:
                if requests.get(self.health, timeout=2).status_code == 200:
                    return time.monotonic() - start
            except requests.RequestException:
                pass
            time.sleep(0.5)
        pytest.fail(f"{self.name} did not answer {self.health} within {timeout:.0f} s; log "
                    f"tail:\n{self.tail()}", pytrace=False)

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("interop")


@pytest.fixture(scope="session")
def label_studio(workdir):
    venv = os.environ.get("LABEL_STUDIO_VENV", os.path.join(ROOT, ".venv-label-studio"))
    executable = os.path.join(venv, "bin", "label-studio")
    if not os.path.exists(executable):
        pytest.fail(f"no Label Studio at {executable}: run `make test-interop` (it creates "
                    "the virtualenv with label-studio 1.23.x)", pytrace=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = workdir / "label-studio-data"
    data.mkdir()
    env = {**os.environ, "LATEST_VERSION_CHECK": "false", "USE_DEFAULT_BANNED_SUBNETS": "false",
           "LABEL_STUDIO_BASE_DATA_DIR": str(data), "LABEL_STUDIO_HOST": url,
           "SENTRY_DSN": "", "SENTRY_RATE": "0", "FRONTEND_SENTRY_DSN": "",
           "COLLECT_ANALYTICS": "false", "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    server = Server("Label Studio", [
        executable, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
        "--username", LS_USER, "--password", LS_PASSWORD, "--user-token", LS_TOKEN,
        "--enable-legacy-api-token"], env, workdir / "label-studio.log", url, "/health")
    try:
        server.started_in = server.wait_ready(START_TIMEOUT)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cincer(workdir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CINCER_ADMIN_TOKEN": ADMIN, "CINCER_RECONCILE_SECONDS": "2",
           "PYTHONUNBUFFERED": "1"}
    env.pop("CINCER_DATABASE_URL", None)
    env.pop("CINCER_REDIS_URL", None)
    command = [sys.executable, "-m", "cincer_service.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--data-dir", str(workdir / "cincer-data"), "--no-demo"]
    server = Server("cincer-service", command, env, workdir / "cincer.log", url, "/healthz")
    try:
        server.started_in = server.wait_ready(120)
        yield server
    finally:
        server.stop()
