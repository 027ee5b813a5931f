"""clients.bench helpers that need no service: memory from /proc, pid files, percentiles."""
import os
import subprocess
import sys

import numpy as np

from clients.bench import (bench_memory, class_centres, cluster_pids, percentile,
                           process_memory, sample)


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
