"""bench_service: lease latency right after a retrain, on a small backlog."""
from cincer_service.experiments.bench_service import bench_lease_after_retrain


def test_leases_after_a_retrain_are_timed_and_never_stale():
    record = bench_lease_after_retrain("breast", backlog=15)
    assert record["backlog"] >= 15 and record["leases"] == 15
    lease = record["lease_ms"]
    assert 0 < lease["p50"] <= lease["p99"] <= lease["max"]
    assert record["stale_pairs_leased"] == 0
    assert record["seconds_until_every_pair_fresh"] > 0
