"""bench_scale on a small synthetic set: the figures are there and consistent."""
from cincer_service.experiments.bench_scale import affinity_builds, bench_columnar


def test_bench_columnar_small(tmp_path):
    run = bench_columnar(4000, repeats=3, agreement_queries=20, sample_rows=(4000, 1000),
                         root=str(tmp_path), d=8)
    assert run["state_load_seconds"] > 0 and run["counterexample_ms"] > 0
    full, sampled = run["factor_estimates"]
    assert full["top1_agreement"] == 1.0          # the "sample" of every row is exact
    assert 0 <= sampled["top1_agreement"] <= 1
    assert run["rss_mib"]["loaded"]["VmRSS"] > 0
    assert not list(tmp_path.iterdir())             # the files are removed


def test_affinity_builds_one_factor_per_version():
    builds = affinity_builds(n_workers=3, projects=10, versions=2, jobs_per_version=10)
    assert builds["with_affinity"] == 1.0
    assert builds["without_affinity"] > 2.5
    assert 1.0 < builds["with_affinity_one_stop"] < 1.5
