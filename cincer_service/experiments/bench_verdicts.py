"""Service-level benchmark: the assistant's loop, a verdict inside the ingest request.

The embedded default deployment (SQLite, the background worker thread), driven through the
use cases the ingest route calls (``examples.ingest``, then ``verdicts.wait_for_verdicts``;
no HTTP, and no Flask: the core stays server-free): a project (digits by default: 64 features,
10 classes, ``fc``) gets its bootstrap set and its first model; then one caller sends the
noisy stream one example per request, sequentially, each with ``Prefer: wait=<wait>`` and a
project admin token (the assistant's), as an assistant does after each user correction;
it answers each pair it gets with the true labels (the user's answer), so retrains (every
10 answers, the default) run in the worker thread meanwhile.
Reported: milliseconds per verdict request (p50/p99/max) over all requests, over the
accepted ones, and over the suspicious answers that came with their counter-example (the
pair leased to the caller); how many of each verdict; how many suspicious answers had no
counter-example within the wait, and how many had none because no candidate was left (the
pair is open with a ``note``).
"""
from __future__ import annotations

import tempfile
import time

import numpy as np

from ..datasets import inject_noise, load_dataset
from ..spec import ProjectSpec


def _percentiles(values: list[float]) -> dict | None:
    if not values:
        return None
    a = np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 2),
            "p99": round(float(np.percentile(a, 99)), 2), "max": round(float(a.max()), 2),
            "n": len(values)}


def bench_verdicts(dataset: str = "digits", requests: int = 400, wait: float = 2.0,
                   bootstrap: int = 100, noise: float = 0.2, seed: int = 0) -> dict:
    """One sequential caller on ``dataset``; the JSON record (see the module docstring)."""
    from ..service import (
        Settings,
        access,
        build_context,
        examples,
        projects,
        queries,
        runner,
        verdicts,
    )
    from ..service.context import latest_version_number
    data = load_dataset(dataset, seed=seed)
    noisy, _ = inject_noise(data.y_train, data.n_classes, noise, "random", seed)
    n = min(len(data.X_train), bootstrap + requests)
    items = [{"external_id": str(i), "x": np.asarray(data.X_train[i]).tolist(),
              "label": int(noisy[i])} for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="cincer-bench-verdicts-") as tmp:
        ctx = build_context(Settings(data_dir=tmp))
        worker = runner.thread_dispatcher(ctx)          # the embedded default
        ctx.set_dispatcher(worker)
        worker.start()
        try:
            pid = projects.create_project(ctx, ProjectSpec.build(
                name=f"bench-verdicts-{dataset}",
                classes=[str(c) for c in range(data.n_classes)],
                input_shape=list(data.input_shape), model={"kind": "fc"},
                bootstrap_size=bootstrap))["id"]
            caller = access.authenticate(
                ctx, access.create_token(ctx, pid, "admin", "assistant")["token"])
            started = time.perf_counter()
            examples.ingest(ctx, pid, items[:bootstrap], actor=caller.name)
            _wait_for_model(ctx, pid, worker)
            first_model_s = time.perf_counter() - started
            latencies, accepted, with_ce, counts, errors = [], [], [], {}, 0
            no_candidates, without_ce, answered = 0, 0, 0
            for item in items[bootstrap:n]:
                began = time.perf_counter()
                try:
                    results = examples.ingest(ctx, pid, [item], actor=caller.name)
                    [answer] = verdicts.wait_for_verdicts(ctx, pid, results, caller, wait)
                except Exception:          # counted: the record says how many failed
                    errors += 1
                    continue
                ms = (time.perf_counter() - began) * 1e3
                latencies.append(ms)
                counts[answer["verdict"]] = counts.get(answer["verdict"], 0) + 1
                if answer["verdict"] == "accepted":
                    accepted.append(ms)
                elif answer["verdict"] == "suspicious":
                    pair = answer["query"]
                    if pair["counterexample"] is not None:
                        with_ce.append(ms)
                        # The user answers (the truth), as the assistant's step 4: the pair
                        # frees its counter-example and counts towards the next retrain.
                        truth = data.y_train
                        queries.answer_query(
                            ctx, pid, pair["id"], int(truth[int(item["external_id"])]),
                            int(truth[int(pair["counterexample"]["external_id"])]), caller)
                        answered += 1
                    elif pair["status"] != "computing":
                        no_candidates += 1      # searched, none left (note says why)
                    else:
                        without_ce += 1         # not found within the wait
            with ctx.store.session() as s:
                models = latest_version_number(s, pid)
        finally:
            worker.stop()
            ctx.store.engine.dispose()
    return {"dataset": dataset, "deployment": "embedded (SQLite, worker thread, the ingest "
                                              "route's use cases in process)",
            "caller": "one, sequential, one example per request",
            "wait_s": wait, "requests": len(latencies) + errors, "errors": errors,
            "verdicts": counts, "verdict_ms": _percentiles(latencies),
            "accepted_ms": _percentiles(accepted),
            "suspicious_with_counterexample_ms": _percentiles(with_ce),
            "suspicious_counterexample_not_in_time": without_ce,
            "suspicious_no_candidate_left": no_candidates, "answered": answered,
            "models_trained": models,
            "first_model_seconds": round(first_model_s, 2)}


def _wait_for_model(ctx, pid: int, worker, timeout: float = 600.0) -> None:
    """Until the project's first model exists and the worker is idle (its bootstrap audit
    done), so the timed requests compete with nothing."""
    from ..service.context import latest_version_number
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctx.store.session() as s:
            ready = latest_version_number(s, pid) is not None
        if ready and worker.idle():
            time.sleep(0.2)
            if worker.idle():
                return
        time.sleep(0.05)
    raise TimeoutError("the first model did not come")


def verdict_benchmarks(quick: bool = False) -> dict:
    """The ``bench`` document's service verdict cases."""
    return {"digits_embedded": bench_verdicts("digits", requests=150 if quick else 400)}
