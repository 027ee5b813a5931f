"""``python -m clients bench``: the labeling service's numbers, measured over HTTP.

* ingest throughput: examples/s over REST in batches of 500 with 64 features, into a project
  created for the run (the server screens them in the background meanwhile);
* ingest-to-query latency: for each of N suspicious examples (a clear member of one class
  ingested with another class's label, one at a time, into a second dedicated project with a
  trained model), the time from sending it to ``queries/next`` leasing its query; each query
  is answered so the next one is the only open query;
* assistants: concurrent callers, each in its own project, each sending corrections one
  at a time with ``Prefer: wait`` (the verdict inside the request), answering the pairs their
  suspicious verdicts lease to them; verdict latency p50/p99 and errors;
* many projects: small projects (50–200 examples each) with their first model, then one
  verdict per project, round robin (cold in the worker's model cache);
* memory: VmRSS of the API and worker processes (and their children), from ``/proc``, for
  the pids given or found in ``deploy/local-cluster.sh``'s pid files.

Run it against a quiet service; it creates two projects named ``bench-*``. Their specs
carry only what the measurement needs (a small quick model, no retrains while timing, the
latency part's bootstrap size); the service applies its own defaults for the rest (threshold,
strategy, ...), and each part reports the settings read back from the created project. The
command-line options are in ``clients.commands.bench``.
"""
from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import numpy as np

from .client import CincerClient

N_CLASSES = 10
LATENCY_BOOTSTRAP = 200          # examples ingested to train the latency project's model
NO_RETRAIN = 10**6               # retrain.every_n_answers: never while timing
REPORTED_SETTINGS = ("threshold", "strategy", "bootstrap_size")


# -- synthetic data ------------------------------------------------------------------------------
def class_centres(n_features: int, seed: int) -> np.ndarray:
    """Well separated class centres, so a model trained on a few examples is confident."""
    return np.random.default_rng(seed).normal(0.0, 3.0, size=(N_CLASSES, n_features))


def sample(centres: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 points around random class centres, and their classes."""
    y = rng.integers(0, len(centres), size=n)
    X = centres[y] + rng.normal(0.0, 0.5, size=(n, centres.shape[1]))
    return X.astype(np.float32), y


def items_of(X: np.ndarray, y: np.ndarray, prefix: str) -> list[dict]:
    """Ingest items with external ids ``{prefix}{row}`` and source ``bench``."""
    return [{"x": X[i].tolist(), "label": int(y[i]), "external_id": f"{prefix}{i}",
             "source": "bench"} for i in range(len(y))]


def project_spec(name: str, n_features: int, every_n_answers: int = NO_RETRAIN,
                 bootstrap: int | None = None) -> dict:
    """A bench project's spec: only what the measurement overrides. A small logistic
    regression keeps training quick; ``bootstrap`` is sent only when given; threshold,
    strategy, damping and the retrain mode are left to the service's defaults."""
    spec = {"name": name, "classes": [str(c) for c in range(N_CLASSES)],
            "input_shape": [n_features], "model": {"kind": "lr", "max_epochs": 30},
            "retrain": {"every_n_answers": every_n_answers}}
    if bootstrap is not None:
        spec["bootstrap_size"] = bootstrap
    return spec


def project_settings(project: dict) -> dict:
    """The cleaning settings the service gave a created project (its JSON), for the report."""
    return {key: project.get(key) for key in REPORTED_SETTINGS}


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values``; ``None`` when there are none."""
    return float(np.percentile(values, q)) if values else None


# -- parts -----------------------------------------------------------------------------------------
def bench_ingest(client: CincerClient, n: int, batch_size: int, n_features: int,
                 seed: int, wait_timeout: float = 300) -> dict:
    """Examples/s over REST, batches sent one after another."""
    rng = np.random.default_rng(seed)
    centres = class_centres(n_features, seed)
    X, y = sample(centres, n, rng)
    items = items_of(X, y, "ingest-")
    project = client.create_project(project_spec(f"bench-ingest-{int(time.time())}",
                                                 n_features))
    batch_seconds = []
    started = time.perf_counter()
    for start in range(0, n, batch_size):
        t0 = time.perf_counter()
        client.ingest_batch(project["id"], items[start:start + batch_size])
        batch_seconds.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    # Let the background screening finish: the latency part wants a quiet worker.
    client.wait_idle(project["id"], timeout=wait_timeout, poll=0.2)
    settled = time.perf_counter() - started
    return {"project": project["id"], "examples": n, "batch_size": batch_size,
            "features": n_features, **project_settings(project),
            "seconds": round(total, 4),
            "examples_per_second": round(n / total, 1),
            "batch_seconds_p50": percentile(batch_seconds, 50),
            "batch_seconds_p99": percentile(batch_seconds, 99),
            "seconds_until_screened": round(settled, 3)}


def bench_latency(client: CincerClient, samples: int, n_features: int, poll: float,
                  wait_timeout: float, seed: int, warmup: int = 1) -> dict:
    """Seconds from POSTing one suspicious example to leasing its query."""
    rng = np.random.default_rng(seed + 1)
    centres = class_centres(n_features, seed)
    project = client.create_project(project_spec(f"bench-latency-{int(time.time())}",
                                                 n_features, bootstrap=LATENCY_BOOTSTRAP))
    pid = project["id"]
    X, y = sample(centres, LATENCY_BOOTSTRAP, rng)
    client.ingest(pid, items_of(X, y, "boot-"))
    client.wait_idle(pid, timeout=wait_timeout, poll=0.2)
    annotator = CincerClient(client.root,
                             client.create_token(pid, "annotator", "bench")["token"],
                             timeout=client.timeout)
    while (stale := annotator.next_query(pid)) is not None:    # none expected; be safe
        annotator.answer_query(pid, stale["id"], stale["example"]["label"])
    latencies, warm, mismatched, not_flagged = [], [], 0, 0
    for i in range(warmup + samples):
        Xs, ys = sample(centres, 1, rng)
        wrong = int((ys[0] + 1 + rng.integers(0, N_CLASSES - 1)) % N_CLASSES)
        started = time.perf_counter()
        item = {"x": Xs[0].tolist(), "label": wrong, "external_id": f"suspect-{i}",
                "source": "bench"}
        eid = client.ingest_batch(pid, [item])[0]["id"]
        deadline = started + wait_timeout
        query = None
        while time.perf_counter() < deadline:
            query = annotator.next_query(pid)
            if query is not None:
                break
            if client.get_example(pid, eid)["status"] == "accepted":
                break                       # the model was not suspicious of it
            time.sleep(poll)
        if query is None:
            not_flagged += 1
            continue
        elapsed = time.perf_counter() - started
        ours = query["example"]["id"] == eid
        if ours:
            (warm if i < warmup else latencies).append(elapsed)
        else:
            mismatched += 1
        ce = query.get("counterexample")
        annotator.answer_query(pid, query["id"],
                               int(ys[0]) if ours else query["example"]["label"],
                               None if ce is None else ce["label"])
    return {"project": pid, **project_settings(project),
            "samples": samples, "timed": len(latencies),
            "warmup_seconds": warm,
            "not_flagged": not_flagged, "other_query_first": mismatched,
            "poll_interval": poll,
            "p50_seconds": percentile(latencies, 50), "p99_seconds": percentile(latencies, 99),
            "max_seconds": max(latencies) if latencies else None}


# -- assistants (Prefer: wait) ---------------------------------------------------------------
def _assistant_project(client: CincerClient, name: str, n_features: int, bootstrap: int,
                       rng: np.random.Generator, centres: np.ndarray,
                       wait_timeout: float) -> tuple[int, CincerClient]:
    """A project with its first model, and a client holding its admin token (the
    assistant's: it may answer the pairs its verdicts lease to it)."""
    project = client.create_project(project_spec(name, n_features, bootstrap=bootstrap))
    pid = project["id"]
    X, y = sample(centres, bootstrap, rng)
    client.ingest(pid, items_of(X, y, "boot-"))
    client.wait_idle(pid, timeout=wait_timeout, poll=0.2)
    token = client.create_token(pid, "admin", "assistant")["token"]
    return pid, CincerClient(client.root, token, timeout=client.timeout)


def _verdict_call(assistant: CincerClient, pid: int, item: dict, truth: int, wait: float,
                  record: dict) -> None:
    """One correction with ``Prefer: wait``: its latency and verdict go into ``record``; a
    suspicious item's leased pair is answered with the truth (the user's answer)."""
    started = time.perf_counter()
    try:
        [answer] = assistant.ingest_batch(pid, [item], wait=wait)
    except Exception as exc:                  # counted, reported: the run goes on
        record["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
        return
    record["ms"].append((time.perf_counter() - started) * 1e3)
    verdict = answer.get("verdict", "none")
    record["verdicts"][verdict] = record["verdicts"].get(verdict, 0) + 1
    pair = answer.get("query")
    if verdict == "suspicious" and pair and pair.get("leased_to_you") \
            and pair.get("counterexample") is not None:
        try:
            assistant.answer_query(pid, pair["id"], truth, pair["counterexample"]["label"])
        except Exception as exc:
            record["errors"].append(f"answer: {type(exc).__name__}: {exc}"[:200])


def _summary(record: dict) -> dict:
    ms = record["ms"]
    return {"requests": len(ms) + len(record["errors"]), "errors": len(record["errors"]),
            "error_examples": record["errors"][:5], "verdicts": record["verdicts"],
            "verdict_ms_p50": percentile(ms, 50), "verdict_ms_p99": percentile(ms, 99),
            "verdict_ms_max": max(ms) if ms else None}


def bench_assistants(client: CincerClient, assistants: int, requests: int, n_features: int,
                     bootstrap: int, wait: float, noise: float, seed: int,
                     wait_timeout: float = 300) -> dict:
    """``assistants`` concurrent callers, each in its own project (one per assistant user),
    each sending ``requests`` corrections one at a time with ``Prefer: wait``; a share
    ``noise`` of them contradicts the model (a wrong label). Verdict latency over all."""
    import threading
    centres = class_centres(n_features, seed)
    rng = np.random.default_rng(seed + 2)
    stamp = int(time.time())
    made = [_assistant_project(client, f"bench-assistant-{stamp}-{k}", n_features, bootstrap,
                               rng, centres, wait_timeout) for k in range(assistants)]
    record = {"ms": [], "errors": [], "verdicts": {}}
    lock = threading.Lock()

    def run(k: int, pid: int, assistant: CincerClient) -> None:
        own = np.random.default_rng(seed + 100 + k)
        for i in range(requests):
            X, y = sample(centres, 1, own)
            label = int(y[0]) if own.random() >= noise else \
                int((y[0] + 1 + own.integers(0, N_CLASSES - 1)) % N_CLASSES)
            mine = {"ms": [], "errors": [], "verdicts": {}}
            _verdict_call(assistant, pid, {"x": X[0].tolist(), "label": label,
                                           "external_id": f"said-{i}"}, int(y[0]), wait, mine)
            with lock:
                record["ms"] += mine["ms"]
                record["errors"] += mine["errors"]
                for v, n in mine["verdicts"].items():
                    record["verdicts"][v] = record["verdicts"].get(v, 0) + n

    threads = [threading.Thread(target=run, args=(k, pid, a)) for k, (pid, a) in enumerate(made)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"assistants": assistants, "requests_each": requests, "wait_s": wait,
            "noise": noise, "bootstrap": bootstrap, "features": n_features,
            "seconds": round(time.perf_counter() - started, 2), **_summary(record)}


def bench_many_projects(client: CincerClient, n_projects: int, n_features: int,
                        sizes: tuple[int, int], wait: float, seed: int,
                        wait_timeout: float = 300) -> dict:
    """``n_projects`` small projects (a bootstrap of ``sizes`` examples each, drawn
    uniformly); once every first model exists, one verdict request per project, round robin,
    so each is cold in the worker's model cache when the projects outnumber it."""
    centres = class_centres(n_features, seed)
    rng = np.random.default_rng(seed + 3)
    stamp, made, started = int(time.time()), [], time.perf_counter()
    for k in range(n_projects):
        size = int(rng.integers(sizes[0], sizes[1] + 1))
        project = client.create_project(project_spec(f"bench-many-{stamp}-{k}", n_features,
                                                     bootstrap=size))
        X, y = sample(centres, size, rng)
        client.ingest(project["id"], items_of(X, y, "boot-"))
        made.append(project["id"])
    for pid in made:
        client.wait_idle(pid, timeout=wait_timeout, poll=0.2)
    built = time.perf_counter() - started
    record = {"ms": [], "errors": [], "verdicts": {}}
    for pid in made:
        X, y = sample(centres, 1, rng)
        _verdict_call(client, pid, {"x": X[0].tolist(), "label": int(y[0]),
                                    "external_id": "first-verdict"}, int(y[0]), wait, record)
    return {"projects": n_projects, "bootstrap_sizes": list(sizes),
            "seconds_to_build": round(built, 1), "cold_first_verdict": _summary(record)}


# -- memory ----------------------------------------------------------------------------------------
def parse_pids(text: str | None) -> list[int]:
    """Pids from a comma-separated list (empty or ``None``: none)."""
    return [int(p) for p in (text or "").replace(" ", "").split(",") if p]


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB, ``None`` when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's children list)."""
    found = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            found += [int(c) for c in Path(path).read_text().split()]
        except OSError:
            pass
    return sorted(set(found))


def process_memory(pid: int) -> dict:
    """RSS of a process and of its children (gunicorn and Celery prefork fork workers)."""
    def name(p):
        try:
            return Path(f"/proc/{p}/comm").read_text().strip()
        except OSError:
            return None
    kids = [{"pid": c, "name": name(c), "rss_mib": _mib(rss_kib(c))} for c in children(pid)]
    own = rss_kib(pid)
    total = (own or 0) + sum(rss_kib(k["pid"]) or 0 for k in kids)
    return {"pid": pid, "name": name(pid), "rss_mib": _mib(own), "children": kids,
            "total_rss_mib": _mib(total) if own is not None else None}


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def cluster_pids(cluster_dir: str) -> dict[str, list[int]]:
    """Pids from ``*.pid`` files, grouped by role guessed from the file name."""
    groups: dict[str, list[int]] = {}
    for path in sorted(glob.glob(os.path.join(cluster_dir, "*.pid"))):
        stem = os.path.basename(path)[:-4].lower()
        role = ("api" if "api" in stem or "gunicorn" in stem else
                "worker" if "worker" in stem or "celery" in stem else
                "redis" if "redis" in stem else stem)
        try:
            groups.setdefault(role, []).append(int(Path(path).read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    return groups


def bench_memory(api: list[int], worker: list[int], cluster_dir: str) -> dict:
    """Memory of the given API and worker pids, else of the cluster's pid files."""
    groups = {"api": api, "worker": worker}
    if not api and not worker:
        groups = cluster_pids(cluster_dir)
    if not any(groups.values()):
        return {"note": f"no pids given (--pids-api, --pids-worker) and no *.pid files "
                        f"under {cluster_dir}"}
    return {role: [process_memory(p) for p in pids] for role, pids in groups.items() if pids}


def run_bench(client: CincerClient, args) -> dict:
    """Every part not skipped, as one JSON-able dict."""
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    report = {"url": client.root, "health": client.healthz()}
    if "ingest" not in skip:
        report["ingest"] = bench_ingest(client, args.examples, args.batch_size, args.features,
                                        args.seed, args.wait_timeout)
    if "latency" not in skip:
        report["latency"] = bench_latency(client, args.latency_samples, args.features,
                                          args.poll_interval, args.wait_timeout, args.seed,
                                          args.warmup)
    if "assistants" not in skip:
        report["assistants"] = bench_assistants(
            client, args.assistants, args.assistant_requests, args.features,
            args.assistant_bootstrap, args.wait, args.noise, args.seed, args.wait_timeout)
    if "projects" not in skip:
        report["projects"] = bench_many_projects(
            client, args.projects, args.features, (50, 200), args.wait, args.seed,
            args.wait_timeout)
    if "memory" not in skip:
        report["memory"] = bench_memory(parse_pids(args.pids_api),
                                        parse_pids(args.pids_worker), args.cluster_dir)
    return report
