"""Many small projects in one worker: RSS and cold-load time of the model cache.

Fills a ``ModelCache`` (no budget limit) with ``N`` model versions of a small assistant-sized
project (``--features`` inputs, ``--classes`` classes, the ``fc`` model), as a worker that
served N projects would hold them, and prints JSON: the process RSS before and after, the
RSS per entry against ``entry_bytes``'s estimate, the cold-load milliseconds per entry
(classifier built and weights set: what a cold project's first verdict pays before
screening), and how many entries the default budget (CINCER_MODEL_CACHE_MB=512) keeps.
Model states (built when a counter-example is searched) are not included.

    .venv/bin/python docs/dev/many_projects_cache.py --n 300
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    import numpy as np

    from cincer_service.service.model_cache import (
        DEFAULT_CACHE_BYTES,
        ModelCache,
        new_classifier,
        weights_to_bytes,
    )
    from cincer_service.service.store import ModelVersion, Project
    project = Project(name="p", classes=[str(c) for c in range(args.classes)],
                      input_shape=[args.features], input_kind="tabular",
                      model={"kind": "fc", "seed": 0})
    blob = weights_to_bytes(new_classifier(project).get_weights())
    stamp = datetime(2024, 1, 1, tzinfo=timezone.utc)
    cache = ModelCache(max_bytes=2**50)
    cache.entry(project, ModelVersion(id=0, created_at=stamp, weights=blob))   # warm TF
    before, times = rss_mib(), []
    for i in range(1, args.n + 1):
        started = time.perf_counter()
        entry = cache.entry(project, ModelVersion(id=i, created_at=stamp, weights=blob))
        entry["classifier"].predict_proba(np.zeros((1, args.features), np.float32))
        times.append((time.perf_counter() - started) * 1e3)
    after = rss_mib()
    estimate = cache.total_bytes / len(cache)
    per_entry = (after - before) * 2**20 / args.n
    print(json.dumps({
        "entries": args.n, "features": args.features, "classes": args.classes,
        "weights_bytes": len(blob), "rss_mib_before": round(before, 1),
        "rss_mib_after": round(after, 1), "rss_kib_per_entry": round(per_entry / 1024, 1),
        "estimate_kib_per_entry": round(estimate / 1024, 1),
        "cold_load_ms": {"p50": round(float(np.percentile(times, 50)), 2),
                         "p99": round(float(np.percentile(times, 99)), 2)},
        "entries_in_default_budget": int(DEFAULT_CACHE_BYTES // estimate),
        "rss_mib_for_1000_entries_extrapolated": round(before + per_entry * 1000 / 2**20, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
