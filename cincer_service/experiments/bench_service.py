"""Service-level benchmark: lease latency with a backlog right after a retrain.

The embedded default deployment (SQLite, the background worker thread): a project is fed
its bootstrap set and a noisy stream until at least ``backlog`` pairs are open, a retrain
is requested, and as soon as the new model version exists ``backlog`` annotators each
lease a pair while the worker thread refreshes the stale ones. Reported: p50/p99/max lease
milliseconds, how many leases found nothing fresh yet, how long until every open pair was
fresh, and whether any leased pair was stale (built under an older version, or with a side
labelled since).
"""
from __future__ import annotations

import tempfile
import time

import numpy as np

from ..datasets import inject_noise, load_dataset
from ..spec import ProjectSpec


def bench_lease_after_retrain(dataset: str = "breast", backlog: int = 100,
                              seed: int = 0) -> dict:
    """One run on ``dataset``; the JSON record (see the module docstring)."""
    from ..service import (
        Settings,
        access,
        build_context,
        examples,
        freshness,
        projects,
        queries,
        runner,
        training,
    )
    from ..service.store import Query
    data = load_dataset(dataset, seed=seed)
    noisy, _ = inject_noise(data.y_train, data.n_classes, 0.3, "random", seed)
    shape = list(data.input_shape)
    with tempfile.TemporaryDirectory(prefix="cincer-bench-lease-") as tmp:
        ctx = build_context(Settings(data_dir=tmp))
        worker = runner.thread_dispatcher(ctx, interval=1.0)
        ctx.set_dispatcher(worker)
        worker.start()
        try:
            pid = projects.create_project(ctx, ProjectSpec.build(
                name=f"bench-{dataset}", classes=[str(c) for c in range(data.n_classes)],
                input_shape=shape, model={"kind": "fc", "max_epochs": 30},
                bootstrap_size=100, threshold=0.0,
                retrain={"mode": "warm", "every_n_answers": 100000}))["id"]
            items = [{"external_id": str(i), "x": data.X_train[i].tolist(),
                      "label": int(noisy[i])} for i in range(len(data.X_train))]
            start, open_pairs = 0, 0
            while open_pairs < backlog and start < len(items):
                examples.ingest(ctx, pid, items[start:start + 100])
                start += 100
                _wait(worker)
                open_pairs = queries.list_queries(ctx, pid, status="open", limit=1)["total"]
            training.request_retrain(ctx, pid)
            version = len(training.list_models(ctx, pid))
            while len(training.list_models(ctx, pid)) < version + 1:
                time.sleep(0.005)
            retrained = time.perf_counter()
            annotators = [access.authenticate(ctx, access.create_token(
                ctx, pid, "annotator", f"a{i}")["token"]) for i in range(backlog)]
            latencies, empty, stale = [], 0, 0
            newest = version + 1
            for principal in annotators:
                began = time.perf_counter()
                q = queries.lease_next_query(ctx, pid, principal)
                latencies.append((time.perf_counter() - began) * 1e3)
                if q is None:
                    empty += 1
                    continue
                minimum = newest - 1 if time.perf_counter() - retrained \
                    < freshness.GRACE_SECONDS else newest
                with ctx.store.session() as s:
                    row = s.get(Query, q["id"])
                    stale += int(row.model_version < minimum
                                 or row.labels_changed_at is not None)
            _wait(worker)
            all_fresh = time.perf_counter() - retrained
        finally:
            worker.stop()
            ctx.store.engine.dispose()
    a = np.asarray(latencies)
    return {"dataset": dataset, "backlog": open_pairs, "leases": len(latencies),
            "lease_ms": {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
                         "max": float(a.max())},
            "leases_without_a_fresh_pair": empty, "stale_pairs_leased": stale,
            "seconds_until_every_pair_fresh": round(all_fresh, 2)}


def _wait(worker, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    time.sleep(0.05)
    while not worker.idle() and time.monotonic() < deadline:
        time.sleep(0.02)
