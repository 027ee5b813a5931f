"""Fault, load and fuzz tests against real processes on loopback (see ``cluster.py``).

Every test is bounded in requests and time and stops by itself. Tests marked ``long`` (the
5,000-case fuzz run, the 60 s concurrency run) are deselected unless asked for:
``make test-long``, ``pytest -m long`` (any ``-m`` expression naming ``long``) or
``CINCER_TEST_LONG=1``.

Measured numbers (recovery seconds, request counts, latencies, counters) are printed by each
test (visible with ``-s``), written as JSON under ``<pytest basetemp>/fault-measurements/``
and summed up in a "fault-suite measurements" section at the end of the run.
"""
from __future__ import annotations

import json

import pytest

from tests.support.services import database_url, start_redis

_MEASUREMENTS: list[tuple[str, dict]] = []


def pytest_terminal_summary(terminalreporter):
    if not _MEASUREMENTS:
        return
    terminalreporter.section("fault-suite measurements")
    for name, data in _MEASUREMENTS:
        terminalreporter.write_line(f"{name}: {json.dumps(data, default=str)}")


@pytest.fixture(scope="session")
def measurements_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-measurements", numbered=False)


@pytest.fixture
def record(request, measurements_dir):
    """``record(data)``: print the test's measured numbers, keep them as JSON and in the
    end-of-run summary."""
    def save(data: dict, name: str | None = None) -> str:
        name = name or request.node.name
        path = measurements_dir / f"{name.replace('/', '_')}.json"
        path.write_text(json.dumps(data, indent=2, default=str))
        _MEASUREMENTS.append((name, data))
        print(f"\n[{name}] {json.dumps(data, default=str)}\n(measurements: {path})")
        return str(path)
    return save


@pytest.fixture(scope="session")
def shared_redis():
    with start_redis() as url:
        yield url


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory, shared_redis):
    """One cluster (gunicorn with 3 workers x 4 threads, two Celery workers, beat) for the
    tests that do not break anything (concurrency, replays); PostgreSQL when
    ``CINCER_TEST_POSTGRES_URL`` answers, else a SQLite file. Each test uses its own project."""
    from .cluster import Cluster
    workdir = tmp_path_factory.mktemp("shared-cluster")
    with database_url(workdir) as (url, kind):
        cluster = Cluster(workdir, shared_redis, url, api_workers=3, api_threads=4)
        cluster.database_kind = kind
        try:
            cluster.start()
            yield cluster
        except BaseException:
            print(cluster.logs())
            raise
        finally:
            cluster.close()
