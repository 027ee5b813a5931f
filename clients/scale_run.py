"""The end-to-end scale run of ``deploy/bench-cluster.sh --examples N``, over HTTP only.

Creates a project (``--features`` inputs, 10 classes, an fc model), ingests ``N`` synthetic
examples (class centres plus noise, ``--noise`` of the labels flipped to another class) in
batches of ``--batch-size`` from ``--threads`` concurrent senders, and reports: ingest
throughput, the time from the first batch to the first open query (the first model trained
on the bootstrap set, then screening), the time until every example is screened, the
counter-example backlog (watched for ``--counterexample-seconds``), then,
with ``--retrain``, the time to a model over the whole stream and its counter-examples;
counter-example latency as the workers logged it, RSS per process of the cluster (its pid
files) and the service's health. The database size is added by the shell script.

    python -m clients.scale_run --url URL --token ADMIN --examples 1000000 --cluster-dir DIR
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .bench import N_CLASSES, NO_RETRAIN, bench_memory, class_centres, percentile, sample
from .client import CincerClient

CE_LOG = re.compile(r"query \d+: counter-example \S+ in ([0-9.]+) ms")


def batch_items(b: int, size: int, centres: np.ndarray, noise: float, seed: int) -> list[dict]:
    """Batch ``b`` of the stream (deterministic per batch: senders need no shared state)."""
    rng = np.random.default_rng([seed, b])
    X, y = sample(centres, size, rng)
    flip = rng.random(size) < noise
    noisy = np.where(flip, (y + rng.integers(1, N_CLASSES, size)) % N_CLASSES, y)
    return [{"x": X[i].tolist(), "label": int(noisy[i]), "external_id": f"s{b}-{i}"}
            for i in range(size)]


def logged_counterexample_ms(cluster_dir: str | None, since_bytes: dict | None = None) -> list:
    """Counter-example milliseconds from the workers' logs under ``cluster_dir``."""
    out = []
    for path in sorted(glob.glob(os.path.join(cluster_dir or "", "*.log"))):
        with open(path, errors="replace") as f:
            f.seek((since_bytes or {}).get(path, 0))
            out += [float(m.group(1)) for m in CE_LOG.finditer(f.read())]
    return out


def log_sizes(cluster_dir: str | None) -> dict:
    return {p: os.path.getsize(p) for p in glob.glob(os.path.join(cluster_dir or "", "*.log"))}


def open_queries(client: CincerClient, pid: int) -> int:
    return int(client.stats(pid).get("queries", {}).get("open", 0))


def wait_screened(client: CincerClient, pid: int, timeout: float, poll: float) -> dict:
    """Poll ``stats`` until no example of project ``pid`` waits for screening; the stats.
    ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        stats = client.stats(pid)
        if not stats.get("examples", {}).get("pending", 0):
            return stats
        if time.monotonic() >= deadline:
            raise TimeoutError(f"project {pid}: examples still pending after {timeout:g} s")
        time.sleep(poll)


def counterexample_backlog(client: CincerClient, pid: int, seconds: float,
                           poll: float) -> dict:
    """Watch the queries waiting for their counter-example (``computing``) for at most
    ``seconds``, or until none waits: how many waited at the start and at the end, and how
    many were computed per second meanwhile. Every suspicious example of the stream gets a
    query (20% noise: about 200k at 1M examples), far more than the run can wait for."""
    def waiting() -> int:
        return int(client.stats(pid).get("queries", {}).get("computing", 0))
    t0, first = time.perf_counter(), waiting()
    last = first
    while last and time.perf_counter() - t0 < seconds:
        time.sleep(poll)
        last = waiting()
    elapsed = time.perf_counter() - t0
    return {"waiting_at_start": first, "waiting_at_end": last, "seconds": round(elapsed, 2),
            "per_second": round((first - last) / elapsed, 1) if elapsed > 0 else None}


def scale_run(client: CincerClient, n: int, features: int = 128, batch_size: int = 1000,
              threads: int = 4, noise: float = 0.2, bootstrap: int = 1000, seed: int = 0,
              timeout: float = 7200, retrain: bool = False, cluster_dir: str | None = None,
              poll: float = 1.0, counterexample_seconds: float = 120) -> dict:
    centres = class_centres(features, seed)
    project = client.create_project({
        "name": f"scale-{int(time.time())}", "classes": [str(c) for c in range(N_CLASSES)],
        "input_shape": [features], "model": {"kind": "fc", "max_epochs": 30},
        "bootstrap_size": bootstrap, "retrain": {"every_n_answers": NO_RETRAIN}})
    pid = project["id"]
    batches = [(b, min(batch_size, n - b * batch_size)) for b in range(-(-n // batch_size))]
    first_query: dict = {}
    started = time.perf_counter()
    done = threading.Event()

    def watch():
        while not done.is_set() and "seconds" not in first_query:
            try:
                if open_queries(client, pid) > 0:
                    first_query["seconds"] = time.perf_counter() - started
            except Exception:
                pass
            done.wait(poll)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    batch_seconds = []

    def send(batch):
        b, size = batch
        items = batch_items(b, size, centres, noise, seed)
        t0 = time.perf_counter()
        client.ingest_batch(pid, items)
        batch_seconds.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, batches))
    ingest_seconds = time.perf_counter() - started
    wait_screened(client, pid, timeout, poll)
    screened = time.perf_counter() - started
    backlog = counterexample_backlog(client, pid, counterexample_seconds, poll)
    while "seconds" not in first_query and time.perf_counter() - started < timeout:
        time.sleep(poll)
    done.set()
    report = {"project": pid, "examples": n, "features": features, "batch_size": batch_size,
              "threads": threads, "noise": noise, "bootstrap_size": bootstrap,
              "ingest_seconds": round(ingest_seconds, 2),
              "examples_per_second": round(n / ingest_seconds, 1),
              "batch_seconds_p50": percentile(batch_seconds, 50),
              "batch_seconds_p99": percentile(batch_seconds, 99),
              "seconds_to_first_query": first_query.get("seconds"),
              "seconds_until_screened": round(screened, 2),
              "counterexample_backlog": backlog,
              "stats": client.stats(pid)}
    ce = logged_counterexample_ms(cluster_dir)
    report["counterexample_ms_first_model"] = {"count": len(ce), "p50": percentile(ce, 50),
                                               "p99": percentile(ce, 99)}
    if retrain:
        sizes = log_sizes(cluster_dir)
        t0 = time.perf_counter()
        versions = len(client.list_models(pid))
        client.retrain(pid)
        while len(client.list_models(pid)) <= versions and time.perf_counter() - t0 < timeout:
            time.sleep(poll)
        report["retrain_seconds"] = round(time.perf_counter() - t0, 2)
        wait_screened(client, pid, timeout, poll)
        report["retrain_until_screened_seconds"] = round(time.perf_counter() - t0, 2)
        report["models"] = client.list_models(pid)
        ce = logged_counterexample_ms(cluster_dir, sizes)
        report["counterexample_ms_full_model"] = {"count": len(ce), "p50": percentile(ce, 50),
                                                  "p99": percentile(ce, 99)}
    report["memory"] = bench_memory([], [], cluster_dir) if cluster_dir else None
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m clients.scale_run")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--examples", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--noise", type=float, default=0.2)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--poll", type=float, default=2.0,
                   help="seconds between reads of the project's stats (each counts its rows)")
    p.add_argument("--counterexample-seconds", type=float, default=120,
                   help="how long to watch the counter-example backlog after screening")
    p.add_argument("--cluster-dir", default=None)
    args = p.parse_args(argv)
    if args.examples < 1 or args.batch_size < 1 or args.threads < 1:
        print("--examples, --batch-size and --threads must be positive", file=sys.stderr)
        return 2
    client = CincerClient(args.url, args.token, timeout=120)
    report = scale_run(client, args.examples, args.features, args.batch_size, args.threads,
                       args.noise, args.bootstrap, timeout=args.timeout, retrain=args.retrain,
                       cluster_dir=args.cluster_dir,
                       poll=args.poll, counterexample_seconds=args.counterexample_seconds)
    report["health"] = client.healthz()
    json.dump(report, sys.stdout, indent=1, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
