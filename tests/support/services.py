"""Real servers for integration tests: Redis, a throw-away PostgreSQL database, processes.

Nothing here skips: a missing ``redis-server`` is installed with apt when running as root and
is an error otherwise, so ``make test`` never passes without the integration tests running.

    with start_redis() as redis_url, postgres_database() as pg_url: ...
    with process([...], env, log_path) as proc: wait_http(url + "/healthz", 60)
    with redis_server() as server: server.stop(); ...; server.start()   # same port
    with database_url(tmp_path) as url: ...     # PostgreSQL when it answers, else SQLite
    processes_with_env("CINCER_DATA_DIR", str(tmp_path))   # what a cluster left running
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager

import pytest

# PostgreSQL joins when CI (or you) point CINCER_TEST_POSTGRES_URL at a server.
DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("CINCER_TEST_POSTGRES_URL") else [])
# For the slowest multi-process tests: with PostgreSQL at hand make test runs its variant only
# (the production database) and the SQLite one joins in make test-long; without it, SQLite.
HEAVY_DATABASES = [pytest.param(db, marks=pytest.mark.long)
                   if db == "sqlite" and len(DATABASES) > 1 else db for db in DATABASES]

__all__ = ["DATABASES", "HEAVY_DATABASES", "free_port", "wait_http", "wait_until", "process",
           "log_tail", "start_redis",
           "redis_answers", "postgres_database", "redis_server", "RedisServer",
           "database_url", "kill_group", "child_pids", "pid_alive", "processes_with_env",
           "clean_env"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate()`` until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None,
              log_path: str | None = None):
    """Poll ``url`` until it answers with a status below 500; the response is returned.

    When ``proc`` is given and exits first, fail at once with the tail of ``log_path``.
    """
    import requests

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} "
                               f"answered:\n{log_tail(log_path)}")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code < 500:
                return response
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s (last: {last})"
                       + (f"\n{log_tail(log_path)}" if log_path else ""))


def log_tail(log_path: str | None, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (for failure messages)."""
    if not log_path or not os.path.exists(log_path):
        return "(no log)"
    with open(log_path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


@contextmanager
def process(cmd: list[str], env: dict | None = None, log_path: str | None = None,
            cwd: str | None = None, stop_timeout: float = 10.0):
    """Start ``cmd`` in its own process group (output to ``log_path``); on exit the whole
    group gets SIGTERM, then SIGKILL after ``stop_timeout`` seconds."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        kill_group(proc, stop_timeout)
        if log_path:
            log.close()


def kill_group(proc: subprocess.Popen, timeout: float = 10.0,
               sig: signal.Signals = signal.SIGTERM) -> None:
    """Send ``sig`` to ``proc``'s process group; SIGKILL whatever is left after ``timeout`` s."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()                      # reap the leader so the group can empty
        if not _group_alive(proc.pid):
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


# -- Redis -------------------------------------------------------------------------------------
def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING at ``url``."""
    import redis
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout,
                                      socket_connect_timeout=timeout)
        with client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def redis_server_binary() -> str:
    """Path of ``redis-server``; installed with apt when missing and running as root."""
    path = shutil.which("redis-server")
    if path:
        return path
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            done = subprocess.run(install, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"apt-get install redis-server failed:\n{done.stderr[-2000:]}")
        path = shutil.which("redis-server")
        if path:
            return path
    raise RuntimeError(
        "redis-server is not installed and is needed by the integration tests: install it "
        "(Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: `brew install redis`) "
        "or point CINCER_TEST_REDIS_URL at a running Redis")


@contextmanager
def start_redis(timeout: float = 20.0):
    """Yield the URL of a Redis server for the duration of the block.

    ``CINCER_TEST_REDIS_URL`` is used when set and answering; otherwise a private
    ``redis-server`` runs on a free loopback port (no persistence) and is stopped after.
    """
    given = os.environ.get("CINCER_TEST_REDIS_URL")
    if given and redis_answers(given):
        yield given
        return
    binary = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="cincer-redis-") as workdir:
        for attempt in range(3):          # a port taken between free_port() and bind: retry
            port = free_port()
            url = f"redis://127.0.0.1:{port}/0"
            log_path = os.path.join(workdir, "redis.log")
            cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", workdir, "--logfile", log_path]
            with process(cmd, log_path=None, cwd=workdir) as proc:
                deadline = time.monotonic() + timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    if redis_answers(url, timeout=0.5):
                        break
                    time.sleep(0.05)
                if redis_answers(url, timeout=0.5):
                    yield url
                    return
            if attempt == 2:
                raise RuntimeError(f"redis-server did not start on port {port}:\n"
                                   f"{log_tail(log_path)}")


class RedisServer:
    """A private ``redis-server`` on a fixed loopback port that can be stopped and started
    again on the same port (an outage): ``url``, ``start()``, ``stop(kill=False)``,
    ``running``."""

    def __init__(self, workdir: str, port: int | None = None):
        self.workdir, self.port = workdir, port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = os.path.join(workdir, "redis.log")
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20.0) -> "RedisServer":
        if self.running:
            return self
        cmd = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", self.workdir,
               "--logfile", self.log_path]
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
            while self.proc.poll() is None and time.monotonic() < deadline:
                if redis_answers(self.url, timeout=0.5):
                    return self
                time.sleep(0.05)
            kill_group(self.proc, 2)
            if time.monotonic() > deadline:  # e.g. the port is still held by something else
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n"
                                   f"{log_tail(self.log_path)}")
            time.sleep(0.2)

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its port and connections but answers nothing (a hung
        broker, not a dead one)."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after ``freeze``."""
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL when ``kill``, else SIGTERM); its data is gone."""
        if self.proc is not None:
            kill_group(self.proc, 5, signal.SIGKILL if kill else signal.SIGTERM)
            self.proc = None


@contextmanager
def redis_server(port: int | None = None):
    """A private, restartable ``RedisServer`` (never ``CINCER_TEST_REDIS_URL``: the tests
    that use this one stop it), stopped after the block."""
    with tempfile.TemporaryDirectory(prefix="cincer-redis-") as workdir:
        server = RedisServer(workdir, port)
        try:
            yield server.start()
        finally:
            server.stop()


# -- PostgreSQL --------------------------------------------------------------------------------
@contextmanager
def postgres_database():
    """Yield the URL of a fresh, uniquely named PostgreSQL database (dropped after), or
    ``None`` when ``CINCER_TEST_POSTGRES_URL`` is unset or does not answer (warned)."""
    given = os.environ.get("CINCER_TEST_POSTGRES_URL")
    if not given:
        yield None
        return
    import psycopg2
    from sqlalchemy.engine import make_url

    base = make_url(given)
    params = {"host": base.host or "127.0.0.1", "port": base.port or 5432,
              "user": base.username, "password": base.password,
              "dbname": base.database or "postgres", "connect_timeout": 3}
    try:
        admin = psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        warnings.warn(f"CINCER_TEST_POSTGRES_URL is set but does not answer ({exc}); "
                      "PostgreSQL variants of the tests do not run", stacklevel=3)
        yield None
        return
    admin.autocommit = True
    name = f"cincer_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield base.set(drivername="postgresql+psycopg2", database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@contextmanager
def database_url(tmp_path):
    """PostgreSQL (a scratch database) when ``CINCER_TEST_POSTGRES_URL`` answers, else a
    SQLite file in ``tmp_path``; yields ``(url, kind)`` with kind ``postgresql``/``sqlite``."""
    with postgres_database() as url:
        if url is not None:
            yield url, "postgresql"
        else:
            yield f"sqlite:///{os.path.join(str(tmp_path), 'cincer.db')}", "sqlite"


# -- processes ---------------------------------------------------------------------------------
def clean_env(**cincer) -> dict:
    """This process' environment without any ``CINCER_*`` variable, quiet TensorFlow on the
    CPU, unbuffered Python, plus ``cincer`` (values turned into strings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CINCER_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in cincer.items() if v is not None})
    return env


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def child_pids(pid: int) -> list[int]:
    """The live direct children of ``pid`` (Linux ``/proc``)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry))
    return sorted(children)


def processes_with_env(name: str, value: str) -> list[tuple[int, str]]:
    """``(pid, command line)`` of every live process (of this user) whose environment has
    ``name=value``: what a cluster started with that environment left running."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if wanted in environ and pid_alive(int(entry)):
            found.append((int(entry), cmdline))
    return sorted(found)
