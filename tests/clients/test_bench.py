"""clients.bench: memory from /proc, pid files, percentiles, and the bench projects' specs
(only the benchmark's own overrides; the service's defaults read back from the project)."""
import os
import subprocess
import sys

import numpy as np

from clients.bench import (
    LATENCY_BOOTSTRAP,
    bench_ingest,
    bench_memory,
    class_centres,
    cluster_pids,
    parse_pids,
    percentile,
    process_memory,
    project_spec,
    sample,
)


def test_process_memory_counts_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import time
        time.sleep(0.3)
        report = process_memory(os.getpid())
        assert report["rss_mib"] > 1
        assert child.pid in [c["pid"] for c in report["children"]]
        assert report["total_rss_mib"] >= report["rss_mib"]
    finally:
        child.kill()
        child.wait()


def test_cluster_pid_files_are_grouped_by_role(tmp_path):
    (tmp_path / "api.pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "worker1.pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "worker2.pid").write_text("not a pid\n")
    (tmp_path / "redis.pid").write_text("1\n")
    assert cluster_pids(str(tmp_path)) == {"api": [os.getpid()], "worker": [os.getpid()],
                                           "redis": [1]}
    report = bench_memory([], [], str(tmp_path))
    assert report["api"][0]["pid"] == os.getpid() and report["api"][0]["rss_mib"] > 1
    assert "note" in bench_memory([], [], str(tmp_path / "nothing"))
    gone = bench_memory([2**22 + 12345], [], str(tmp_path))["api"][0]
    assert gone["rss_mib"] is None and gone["total_rss_mib"] is None


def test_synthetic_data_and_percentiles():
    rng = np.random.default_rng(0)
    X, y = sample(class_centres(64, 0), 100, rng)
    assert X.shape == (100, 64) and X.dtype == np.float32 and set(y) <= set(range(10))
    assert percentile([], 50) is None and percentile([1.0, 3.0], 50) == 2.0


def test_parse_pids():
    assert parse_pids(None) == [] and parse_pids("") == []
    assert parse_pids(" 12, 13,,14 ") == [12, 13, 14]


def test_project_spec_sends_only_the_benchmarks_overrides():
    spec = project_spec("b", 8)
    assert set(spec) == {"name", "classes", "input_shape", "model", "retrain"}
    assert spec["input_shape"] == [8] and len(spec["classes"]) == 10
    assert "mode" not in spec["retrain"] and spec["retrain"]["every_n_answers"] >= 10**6
    spec = project_spec("b", 8, bootstrap=LATENCY_BOOTSTRAP)
    assert spec["bootstrap_size"] == LATENCY_BOOTSTRAP
    assert not {"threshold", "strategy", "damping"} & set(spec)


class StubClient:
    """Just enough of CincerClient for ``bench_ingest``; the "service" fills in defaults."""

    root = "http://stub"

    def __init__(self):
        self.specs, self.batches = [], []

    def create_project(self, spec):
        self.specs.append(spec)
        return {"threshold": 0.35, "strategy": "nearest", "bootstrap_size": 77, **spec,
                "id": 5}

    def ingest_batch(self, pid, items):
        self.batches.append((pid, len(items)))
        return [{"id": i, "status": "accepted"} for i in range(len(items))]

    def wait_idle(self, pid, timeout, poll):
        return {}


def test_bench_ingest_reports_the_settings_the_service_chose():
    client = StubClient()
    report = bench_ingest(client, n=25, batch_size=10, n_features=4, seed=0)
    assert "threshold" not in client.specs[0] and "bootstrap_size" not in client.specs[0]
    assert client.batches == [(5, 10), (5, 10), (5, 5)]
    assert (report["threshold"], report["strategy"], report["bootstrap_size"]) == \
        (0.35, "nearest", 77)
    assert report["project"] == 5 and report["examples"] == 25


def test_assistants_and_many_projects_against_the_real_service(live):
    from clients.bench import bench_assistants, bench_many_projects
    report = bench_assistants(live, assistants=2, requests=6, n_features=4, bootstrap=40,
                              wait=5.0, noise=0.5, seed=0, wait_timeout=120)
    assert report["requests"] == 12 and report["errors"] == 0, report
    assert sum(report["verdicts"].values()) == 12
    assert set(report["verdicts"]) <= {"accepted", "suspicious"}     # inline: never pending
    assert report["verdicts"].get("suspicious", 0) > 0
    assert 0 < report["verdict_ms_p50"] <= report["verdict_ms_p99"]
    many = bench_many_projects(live, n_projects=3, n_features=4, sizes=(30, 40), wait=5.0,
                               seed=0, wait_timeout=120)
    first = many["cold_first_verdict"]
    assert first["requests"] == 3 and first["errors"] == 0
    assert sum(first["verdicts"].values()) == 3
    assert set(first["verdicts"]) <= {"accepted", "suspicious"}
