"""A production-shaped cluster of real processes on loopback for the fault tests, and an HTTP
client that records what it saw.

``Cluster``: the API under gunicorn (``deploy/gunicorn.conf.py``), Celery workers
(``cincer-service worker``) and one ``cincer-service beat``, each its own process group with
its own log, on a Redis URL and a database URL the test provides; components can be killed
(SIGKILL, main process or a pool child) and started again. ``Http``: a ``requests`` session
with a token that records every status code, latency and 5xx body. ``synthetic``: a well
separated two-class data set, so that with threshold 0 every example whose label is flipped
becomes a query and none is accepted.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

from tests.support.services import (
    child_pids,
    clean_env,
    free_port,
    kill_group,
    log_tail,
    pid_alive,
    wait_http,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 120             # TensorFlow and Celery imports are slow on 2 shared cores
API = "/api/v1"


class Cluster:
    """API + ``n_workers`` Celery workers + beat, all on ``redis_url`` and ``database_url``.

    ``start()`` starts everything and waits until the API answers and every worker is ready;
    ``close()`` (or the ``with`` block's end) stops every process group.
    """

    def __init__(self, workdir: Path, redis_url: str, database_url: str, *,
                 n_workers: int = 2, api_workers: int = 2, api_threads: int = 4,
                 **cincer):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis_url, self.database_url = redis_url, database_url
        self.admin_token = "fault-admin-" + secrets.token_hex(12)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_workers, self.api_threads = api_workers, api_threads
        self.workers = [f"worker{i + 1}" for i in range(n_workers)]
        settings = dict(CINCER_DATA_DIR=self.workdir / "data", CINCER_REDIS_URL=redis_url,
                        CINCER_DATABASE_URL=database_url, CINCER_ADMIN_TOKEN=self.admin_token,
                        CINCER_RECONCILE_SECONDS=1)
        settings.update(cincer)
        self.env = clean_env(**settings)
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: dict = {}

    # -- processes -----------------------------------------------------------------------
    def command(self, name: str) -> list[str]:
        if name == "api":
            return [str(BIN / "gunicorn"), "-c", str(REPO / "deploy" / "gunicorn.conf.py"),
                    "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.api_workers),
                    "--threads", str(self.api_threads)]
        if name == "beat":
            return [str(BIN / "cincer-service"), "beat", "--loglevel", "info"]
        if name in self.workers:
            return [str(BIN / "cincer-service"), "worker", "--hostname", f"{name}@%h",
                    "--concurrency", "1", "--loglevel", "info"]
        raise ValueError(name)

    def log_path(self, name: str) -> str:
        return str(self.workdir / f"{name}.log")

    def start(self, *names: str, wait: bool = True) -> "Cluster":
        names = names or ("api", *self.workers, "beat")
        marks = {n: self.log_size(n) for n in names}
        for name in names:
            if name in self.procs and self.procs[name].poll() is None:
                continue
            if name in self._logs:
                self._logs.pop(name).close()
            log = open(self.log_path(name), "ab")
            self._logs[name] = log
            cwd = str(REPO) if name == "api" else str(self.workdir)
            self.procs[name] = subprocess.Popen(
                self.command(name), env=self.env, cwd=cwd, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        if wait:
            if "api" in names:
                wait_http(f"{self.url}/healthz", STARTUP_TIMEOUT, self.procs["api"],
                          self.log_path("api"))
            for name in names:
                if name in self.workers:
                    self.wait_log(name, " ready.", STARTUP_TIMEOUT, after=marks[name])
        return self

    def log_size(self, name: str) -> int:
        try:
            return os.path.getsize(self.log_path(name))
        except OSError:
            return 0

    def log_text(self, name: str, after: int = 0) -> str:
        try:
            with open(self.log_path(name), "rb") as handle:
                handle.seek(after)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_log(self, name: str, text: str, timeout: float, after: int = 0) -> None:
        def seen():
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n"
                                   f"{log_tail(self.log_path(name))}")
            return text in self.log_text(name, after)
        try:
            wait_until(seen, timeout, 0.2, f"{text!r} in {name}.log")
        except TimeoutError:
            raise TimeoutError(f"{name} did not log {text!r} within {timeout:.0f} s:\n"
                               f"{log_tail(self.log_path(name))}") from None

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def pool(self, name: str) -> list[int]:
        """The pool (child) processes of worker ``name``."""
        return child_pids(self.pid(name))

    def kill(self, name: str, sig=signal.SIGKILL) -> None:
        """Send ``sig`` to the main process of ``name`` only (its children live on, as after
        an OOM kill of that one process); ``reap`` it."""
        proc = self.procs[name]
        os.kill(proc.pid, sig)
        proc.wait(timeout=10)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group of ``name`` (SIGKILL after ``timeout``)."""
        proc = self.procs.pop(name, None)
        if proc is not None:
            kill_group(proc, timeout)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        # The API first (no new jobs), then beat and the workers, each group as a whole.
        for name in ["api", "beat", *self.workers]:
            self.stop(name, timeout=10)
        for name in list(self.procs):
            self.stop(name, timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def all_alive(self) -> dict:
        return {name: proc.poll() is None for name, proc in self.procs.items()}

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"----- {name}.log -----\n{log_tail(self.log_path(name), lines)}"
                         for name in ["api", *self.workers, "beat"])

    # -- database (read-only checks) -------------------------------------------------------
    def context(self):
        """A service context on the cluster's database (no dispatcher), for checks."""
        from cincer_service.service import Settings, build_context
        return build_context(Settings(data_dir=str(self.workdir / "checks"),
                                      database_url=self.database_url))

    def admin(self, **kwargs) -> "Http":
        return Http(self.url, self.admin_token, **kwargs)


@dataclass
class Stats:
    """What an ``Http`` client (or several sharing this object) saw."""

    statuses: Counter = field(default_factory=Counter)
    latencies: dict = field(default_factory=lambda: defaultdict(list))
    server_errors: list = field(default_factory=list)
    connection_errors: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, method: str, path: str, status: int | None, seconds: float,
               body=None, response=None) -> None:
        with self.lock:
            if status is None:
                self.connection_errors.append((kind, method, path, repr(body)[:300]))
                return
            self.statuses[status] += 1
            self.latencies[kind].append(seconds)
            if status >= 500:
                self.server_errors.append({
                    "kind": kind, "method": method, "path": path, "status": status,
                    "retry_after": response.headers.get("Retry-After") if response else None,
                    "response": response.text[:1000] if response is not None else None,
                    "request": repr(body)[:500]})

    def count(self, predicate) -> int:
        return sum(n for status, n in self.statuses.items() if predicate(status))


def percentile(values, q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class Http:
    """One ``requests`` session with a bearer token, recording into ``stats``."""

    def __init__(self, url: str, token: str, stats: Stats | None = None, timeout: float = 60):
        self.url, self.token, self.timeout = url, token, timeout
        self.stats = stats if stats is not None else Stats()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, kind: str | None = None, json=None,
             headers: dict | None = None, expect: tuple | None = None) -> requests.Response:
        """``method path`` (the full path, e.g. ``/api/v1/projects``), recorded under
        ``kind`` (default the path); ``expect``: the status codes to assert. Connection
        errors are recorded and re-raised."""
        started = time.perf_counter()
        try:
            response = self.session.request(method, self.url + path, json=json,
                                            headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            self.stats.record(kind or path, method, path, None, 0.0, exc)
            raise
        self.stats.record(kind or path, method, path, response.status_code,
                          time.perf_counter() - started, json, response)
        if expect is not None:
            assert response.status_code in expect, \
                f"{method} {path}: HTTP {response.status_code} {response.text[:2000]}"
        return response

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, json=None, **kw):
        return self.call("POST", path, json=json, **kw)

    def close(self) -> None:
        self.session.close()


# -- projects over HTTP --------------------------------------------------------------------
def create_project(admin: Http, **spec) -> int:
    body = {"name": "faults", "classes": ["a", "b"], "input_shape": [DIMENSIONS],
            # The fault tests need a model that separates the synthetic classes from its
            # 30 bootstrap examples (every flipped example is doubted): the validation
            # schedule fits to convergence; warm retraining's default stops at an accuracy.
            "model": {"kind": "lr", "max_epochs": 2000, "warm_epochs": 20,
                      "schedule": "validation"},
            "threshold": 0.0, "strategy": "top_fisher", "bootstrap_size": BOOTSTRAP,
            "retrain": {"mode": "warm", "every_n_answers": 1000}}
    body.update(spec)
    return admin.post(f"{API}/projects", body, expect=(201,)).json()["id"]


def mint(admin: Http, pid: int, role: str, name: str) -> str:
    return admin.post(f"{API}/projects/{pid}/tokens", {"role": role, "name": name},
                      expect=(201,)).json()["token"]


def stats(admin: Http, pid: int) -> dict:
    return admin.get(f"{API}/projects/{pid}/stats", expect=(200,)).json()


def model_versions(admin: Http, pid: int) -> list[int]:
    body = admin.get(f"{API}/projects/{pid}/models", expect=(200,)).json()
    items = body["items"] if isinstance(body, dict) else body
    return [m["version"] for m in items]


# -- data --------------------------------------------------------------------------------------
DIMENSIONS = 20
BOOTSTRAP = 30


@dataclass
class Synthetic:
    X: np.ndarray           # (n, d) float32
    truth: np.ndarray       # true class, 0 or 1

    def item(self, i: int, flipped: bool, prefix: str = "x") -> dict:
        """Example ``i`` with external id ``{prefix}{i}``; the label flipped when asked."""
        label = int(1 - self.truth[i]) if flipped else int(self.truth[i])
        return {"external_id": f"{prefix}{i}", "x": self.X[i].tolist(), "label": label}

    def index(self, external_id: str, prefix: str = "x") -> int:
        return int(external_id[len(prefix):])


def synthetic(n: int, d: int = DIMENSIONS, separation: float = 8.0, seed: int = 0) -> Synthetic:
    """Two Gaussian classes ``separation`` apart along a random direction (in units of the
    noise): a model trained on a few clean examples predicts all of them right, so with
    threshold 0 every flipped label is a confident disagreement."""
    rng = np.random.default_rng(seed)
    truth = (np.arange(n) % 2).astype(np.int64)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    X = rng.normal(size=(n, d)) * 0.5 + np.outer(truth * 2 - 1, direction) * separation / 2
    return Synthetic(X.astype(np.float32), truth)


def answer_body(query: dict, truth_of) -> dict:
    """The true label of the query's example; the counter-example confirmed with its
    current label (or ``not sure`` when it has none to confirm)."""
    body = {"example_label": int(truth_of(query["example"]))}
    if query.get("counterexample") is not None:
        body["counterexample_label"] = int(query["counterexample"]["label"])
    return body


def alive_pids(pids) -> list[int]:
    return [p for p in pids if pid_alive(p)]
