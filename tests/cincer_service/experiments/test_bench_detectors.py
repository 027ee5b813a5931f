"""The detector benchmark times every pairwise detector on cached synthetic features."""
from cincer_service.experiments.bench_detectors import detector_benchmarks


def test_detector_benchmark_reports_every_pairwise_detector():
    doc = detector_benchmarks(quick=True, n=2000, clean_size=100, checkpoints=2)
    assert doc["n"] == 2000 and doc["clean_size"] == 100
    assert set(doc["seconds"]) == {"self_influence", "gd", "gc", "if", "tracin", "gd_class",
                                   "gc_class", "if_class", "tracin_class", "euc", "cos", "dot"}
    assert all(s >= 0 for s in doc["seconds"].values())
