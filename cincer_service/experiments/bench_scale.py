"""Scale benchmarks over a version's columnar state (``columnar``, ``state.ColumnarState``).

On ``n`` synthetic cached examples (128 features, 10 classes; the same generator as
``bench.synthetic_cached``): the time to write a version's files, to load them cold (their
pages dropped from the page cache first with ``posix_fadvise``), one Top-Fisher
counter-example (``V`` solve + the fused float32 scan of the predicted class's partition),
the Fisher factor (exact with float32 products, as a CPU worker builds it up to
``FISHER_EXACT_MAX_ROWS`` rows; the stratified-sample estimate it uses past that; the
float64 reference) and their top-1 agreement with the float64 factor over 1,000 queries,
with the process's resident memory at each step.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

import numpy as np

from .. import columnar, influence
from ..state import FISHER_EXACT_MAX_ROWS, FISHER_SAMPLE_ROWS, ColumnarState


def rss_mib() -> dict:
    """``VmRSS`` and its anonymous and file-backed (mapped files) parts, MiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def synthetic_arrays(n: int, d: int = 128, c: int = 10, seed: int = 0):
    """``(ĥ, p, y)`` of ``n`` synthetic examples as float32/int64 numpy (``bench`` takes
    them as tensors: ``bench.synthetic_cached``)."""
    rng = np.random.default_rng(seed)
    h = np.maximum(rng.standard_normal((n, d), dtype=np.float32), 0)
    logits = rng.standard_normal((n, c), dtype=np.float32) * 2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = rng.integers(0, c, n)
    h_aug = np.empty((n, d + 1), np.float32)
    h_aug[:, :d], h_aug[:, d] = h, 1.0
    return h_aug, p, y


def drop_page_cache(path: str) -> None:
    """Ask the kernel to forget the cached pages of the files in ``path`` (cold reads)."""
    for name in os.listdir(path):
        fd = os.open(os.path.join(path, name), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _queries(count: int, c: int = 10, seed: int = 2, d: int = 128):
    h_q, p_q, _ = synthetic_arrays(count, d=d, seed=seed)
    rng = np.random.default_rng(1)
    preds = np.argmax(p_q, axis=1)
    labels = (preds + rng.integers(1, c, count)) % c
    return h_q.astype(np.float64), p_q.astype(np.float64), preds, labels


def _top1(state: ColumnarState, L, h_t, p_t, prediction: int, label: int,
          candidates: dict) -> int:
    r_t = influence.residuals_np(p_t[None], [label])[0]
    V = influence.query_vector_np(L, r_t, h_t)
    cand = candidates[prediction]
    return int(cand[int(np.argmax(state.partition_scores(V, prediction, cand)))])


def bench_columnar(n: int = 1_000_000, repeats: int = 30, agreement_queries: int = 1000,
                   sample_rows=(FISHER_SAMPLE_ROWS,), damping: float = 1e-3,
                   root: str | None = None, d: int = 128) -> dict:
    """The scale figures over ``n`` examples (see the module docstring)."""
    out = {"n": n, "rss_mib": {"start": rss_mib()}}
    h_aug, p, y = synthetic_arrays(n, d=d)
    ids = np.arange(1, n + 1, dtype=np.int64)
    tmp = tempfile.mkdtemp(prefix="cincer-scale-", dir=root)
    path = os.path.join(tmp, "version")
    try:
        start = time.perf_counter()
        columnar.write(path, ids=ids, labels=y, confirmed=np.zeros(n, bool),
                       x=h_aug[:, :-1], h_aug=h_aug, probs=p, built_at=time.time(),
                       n_classes=p.shape[1])
        out["write_seconds"] = time.perf_counter() - start
        del h_aug, p
        drop_page_cache(path)
        out["rss_mib"]["written"] = rss_mib()
        start = time.perf_counter()
        columns = columnar.load(path)
        state = ColumnarState(None, columns, damping=damping)
        candidates = {k: state.candidates(k) for k in range(columns.n_classes)}
        out["state_load_seconds"] = time.perf_counter() - start
        out["rss_mib"]["loaded"] = rss_mib()

        start, cpu = time.perf_counter(), time.process_time()
        L_exact = state.fisher_factor(sample_rows=n)
        out["fisher_factor_exact_seconds"] = time.perf_counter() - start
        out["fisher_factor_exact_cpu_seconds"] = time.process_time() - cpu
        out["loadavg_after_exact_factor"] = os.getloadavg()
        out["rss_mib"]["exact_factor"] = rss_mib()
        start = time.perf_counter()
        L_ref = influence.fisher_factor_np(float64_top_fisher(columns.p, columns.h, damping))
        out["fisher_factor_float64_seconds"] = time.perf_counter() - start

        h_q, p_q, preds, labels = _queries(max(repeats + 1, agreement_queries), d=d)
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            _top1(state, L_exact, h_q[i], p_q[i], int(preds[i]), int(labels[i]), candidates)
            times.append((time.perf_counter() - t0) * 1e3)
        out["counterexample_ms"] = float(np.median(times[1:]))
        out["rss_mib"]["queried"] = rss_mib()

        exact = [_top1(state, L_ref, h_q[i], p_q[i], int(preds[i]), int(labels[i]),
                       candidates) for i in range(agreement_queries)]
        out["exact_factor_top1_agreement"] = float(np.mean([
            _top1(state, L_exact, h_q[i], p_q[i], int(preds[i]), int(labels[i]), candidates)
            == exact[i] for i in range(agreement_queries)]))
        out["factor_estimates"] = []
        for rows in sample_rows:
            start = time.perf_counter()
            L = state.fisher_factor(sample_rows=int(rows))
            seconds = time.perf_counter() - start
            same = [_top1(state, L, h_q[i], p_q[i], int(preds[i]), int(labels[i]), candidates)
                    == exact[i] for i in range(agreement_queries)]
            out["factor_estimates"].append({"sample_rows": int(rows), "seconds": seconds,
                                            "top1_agreement": float(np.mean(same))})
        out["queries"] = agreement_queries
        out["rss_mib"]["end"] = rss_mib()
        out["bytes_on_disk"] = sum(os.path.getsize(os.path.join(path, f))
                                   for f in os.listdir(path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def float64_top_fisher(p, h_aug, damping: float = 1e-3, chunk_size: int = 65536):
    """The reference Top Fisher, every product in float64 (``influence.top_fisher_np``
    chunk by chunk, so only a chunk is held in float64)."""
    n = len(p)
    F = sum(influence.top_fisher_np(p[s:s + chunk_size], h_aug[s:s + chunk_size], 0.0)
            * len(p[s:s + chunk_size]) for s in range(0, n, chunk_size)) / max(n, 1)
    return F + damping * np.eye(len(F))


def affinity_builds(n_workers: int = 3, projects: int = 30, versions: int = 5,
                    jobs_per_version: int = 20, seed: int = 0) -> dict:
    """Fisher factor builds per (project, model version) with ``n_workers`` compute workers,
    a simulation over the real routing function (``affinity.owner``): each worker process
    keeps its own model cache, so it builds a version's factor the first time one of that
    version's jobs reaches it. Without affinity a job goes to whichever worker takes it from
    the shared queue (uniformly at random: equal load, prefetch 1); with affinity to the
    project's owner. ``with_affinity_one_stop``: one worker stops halfway through the run
    (its projects move to their next owner, which builds their current version again)."""
    from ..service.affinity import owner
    rng = np.random.default_rng(seed)
    names = [f"worker{i + 1}" for i in range(n_workers)]

    def run(route, stop_at=None):
        built = set()
        live = list(names)
        for v in range(versions):
            for j in range(jobs_per_version):
                if stop_at is not None and (v, j) == stop_at:
                    live = live[1:]
                for pid in range(projects):
                    built.add((route(pid, live), pid, v))
        return len(built) / (projects * versions)

    return {"workers": n_workers, "projects": projects, "versions": versions,
            "jobs_per_version": jobs_per_version,
            "without_affinity": run(lambda pid, live: live[int(rng.integers(len(live)))]),
            "with_affinity": run(owner),
            "with_affinity_one_stop": run(owner, stop_at=(versions // 2, jobs_per_version // 2))}


def scale_benchmarks(quick: bool = False) -> dict:
    """The ``bench`` keys of the scale run: ``synthetic_1m`` (``synthetic_100k`` if quick)."""
    n, name = (100_000, "synthetic_100k") if quick else (1_000_000, "synthetic_1m")
    sweep = (FISHER_SAMPLE_ROWS,) if quick else (50_000, 100_000, FISHER_SAMPLE_ROWS, 400_000)
    run = bench_columnar(n, sample_rows=sweep)
    if n <= FISHER_EXACT_MAX_ROWS:         # the factor a CPU worker builds at this size
        chosen = {"seconds": run["fisher_factor_exact_seconds"],
                  "top1_agreement": run["exact_factor_top1_agreement"]}
    else:
        chosen = next(e for e in run["factor_estimates"]
                      if e["sample_rows"] == FISHER_SAMPLE_ROWS)
    return {"counterexample_ms": {name: run["counterexample_ms"]},
            "state_load_seconds": {name: run["state_load_seconds"]},
            "fisher_factor_seconds": {name: chosen["seconds"],
                                      f"{name}_exact": run["fisher_factor_exact_seconds"],
                                      f"{name}_float64": run["fisher_factor_float64_seconds"]},
            "factor_agreement": {name: chosen["top1_agreement"]},
            "factor_builds_per_version": affinity_builds(),
            "scale_runs": {name: run}}


if __name__ == "__main__":      # python -m cincer_service.experiments.bench_scale [n]
    import json
    import sys
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(json.dumps(bench_columnar(n, sample_rows=tuple(
        int(a) for a in sys.argv[2:]) or (FISHER_SAMPLE_ROWS,)), indent=1))


def compare_scan_paths(n: int = 1_000_000, repeats: int = 30, cold_loads: int = 3,
                       sample_rows: int = 20_000) -> dict:
    """Before and after on one machine at the same moment: the per-row path (``bench``'s
    ``bench_synthetic``: float64 tensors, a gather of the candidates) and the partition scan,
    interleaved query by query (so both see the same load from other processes), wall and
    process CPU milliseconds; and ``cold_loads`` cold loads of the state files. Both paths use
    the same factor (a ``sample_rows`` estimate: the scan's cost does not depend on it)."""
    import tensorflow as tf
    h_aug, p, y = synthetic_arrays(n)
    tmp = tempfile.mkdtemp(prefix="cincer-scale-")
    path = os.path.join(tmp, "version")
    out = {"n": n}
    try:
        columnar.write(path, ids=np.arange(1, n + 1, dtype=np.int64), labels=y,
                       confirmed=np.zeros(n, bool), x=h_aug[:, :-1], h_aug=h_aug, probs=p,
                       built_at=time.time(), n_classes=p.shape[1])
        loads = []
        for _ in range(cold_loads):
            drop_page_cache(path)
            t0 = time.perf_counter()
            columns = columnar.load(path)
            state = ColumnarState(None, columns)
            candidates = {k: state.candidates(k) for k in range(columns.n_classes)}
            loads.append(time.perf_counter() - t0)
        out["state_load_seconds_cold"] = loads
        t0 = time.perf_counter()                   # the first scan of a class checks it
        columns.rows("h", 0), columns.rows("p", 0)
        out["first_use_partition_check_seconds_cold"] = time.perf_counter() - t0
        L = state.fisher_factor(sample_rows=sample_rows)
        # the per-row path's inputs, as bench_synthetic holds them
        h_tf, p_tf = tf.constant(h_aug.astype(np.float64)), tf.constant(p.astype(np.float64))
        r_tf = influence.residuals(p_tf, y)
        by_class = [tf.constant(np.flatnonzero(y == k)) for k in range(p.shape[1])]
        L_tf = tf.constant(L)
        h_q, p_q, preds, labels = _queries(repeats + 1)
        rows = {"before": [], "after": []}
        cpu = {"before": [], "after": []}
        same = 0
        for i in range(repeats + 1):
            pred, label = int(preds[i]), int(labels[i])
            w0, c0 = time.perf_counter(), time.process_time()
            V = influence.query_vector(L_tf, influence.residuals(p_q[i][None], [label])[0],
                                       h_q[i])
            idx = by_class[pred]
            scores = influence.counterexample_scores(V, tf.gather(r_tf, idx),
                                                     tf.gather(h_tf, idx))
            before = int(idx[int(tf.argmax(scores))]) + 1                  # an id
            w1, c1 = time.perf_counter(), time.process_time()
            after = int(columns.ids[_top1(state, L, h_q[i], p_q[i], pred, label, candidates)])
            w2, c2 = time.perf_counter(), time.process_time()
            if i:
                rows["before"].append((w1 - w0) * 1e3)
                rows["after"].append((w2 - w1) * 1e3)
                cpu["before"].append((c1 - c0) * 1e3)
                cpu["after"].append((c2 - c1) * 1e3)
            same += before == after
        out.update({f"counterexample_ms_{k}": float(np.median(v)) for k, v in rows.items()})
        out.update({f"counterexample_cpu_ms_{k}": float(np.median(v)) for k, v in cpu.items()})
        out["same_top1"] = f"{same}/{repeats + 1}"
        out["loadavg"] = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def compare_state_load(n: int = 100_000, features: int = 128, root: str | None = None,
                       age_seconds: float = 0.0) -> dict:
    """A version's training state from the database, before and after, on a SQLite file:
    the per-row path (``ModelCache`` without a state directory: ORM rows, ``np.stack``,
    forward pass), the first columnar build (rows read by id chunks, forward, files written)
    and a cold columnar load in a new cache (files mapped; page cache dropped). The rows were
    last changed ``age_seconds`` before: 0 (ingested just before) makes every row part of
    the label overlay's read, which re-reads rows changed within its margin."""
    from datetime import datetime, timedelta, timezone

    from ..service import Settings, build_context, projects
    from ..service.model_cache import ModelCache, new_classifier, weights_to_bytes
    from ..service.store import Example, ModelVersion, Project
    from ..spec import ProjectSpec
    tmp = tempfile.mkdtemp(prefix="cincer-stateload-", dir=root)
    try:
        ctx = build_context(Settings(data_dir=tmp))
        pid = projects.create_project(ctx, ProjectSpec.build(
            name="scale", classes=[str(c) for c in range(10)], input_shape=[features],
            model={"kind": "fc"}))["id"]
        changed = datetime.now(timezone.utc) - timedelta(seconds=age_seconds)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, features), dtype=np.float32)
        y = rng.integers(0, 10, n)
        with ctx.store.session() as s:
            s.execute(Example.__table__.insert(), [
                {"project_id": pid, "x": X[i].tobytes(), "original_label": int(y[i]),
                 "label": int(y[i]), "status": "accepted", "confirmed": False,
                 "created_at": changed, "updated_at": changed}
                for i in range(n)])
            ids = np.array(s.scalars(Example.__table__.select().with_only_columns(
                Example.id).where(Example.project_id == pid).order_by(Example.id)).all(),
                dtype=np.int64)
            project = s.get(Project, pid)
            clf = new_classifier(project)
            s.add(ModelVersion(project_id=pid, version=1, generation=0, mode="scratch",
                               weights=weights_to_bytes(clf.get_weights()),
                               train_ids=ids.tobytes(), train_size=n, metrics={}))
        out = {"n": n, "features": features, "age_seconds": age_seconds}

        def timed(cache):
            with ctx.store.session() as s:
                project = s.get(Project, pid)
                version = s.scalars(ModelVersion.__table__.select().with_only_columns(
                    ModelVersion.id).where(ModelVersion.project_id == pid)).first()
                version = s.get(ModelVersion, version)
                cache.entry(project, version)          # the classifier: not timed
                t0 = time.perf_counter()
                cache.training_state(s, project, version)
                return time.perf_counter() - t0
        try:
            out["per_row_seconds"] = timed(ModelCache())
        except Exception as exc:          # SQLite: one bound variable per id
            out["per_row_error"] = str(exc).splitlines()[0][:200]
        state_dir = os.path.join(tmp, "state")
        out["columnar_first_build_seconds"] = timed(ModelCache(state_dir=state_dir))
        for version_dir in glob_dirs(state_dir):
            drop_page_cache(version_dir)
        out["columnar_cold_load_seconds"] = timed(ModelCache(state_dir=state_dir))
        out["loadavg"] = os.getloadavg()
        ctx.store.engine.dispose()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def glob_dirs(state_dir: str) -> list[str]:
    """The version directories under a state directory."""
    return [os.path.join(root, d) for root, dirs, _ in os.walk(state_dir) for d in dirs
            if d.startswith("version-")]
