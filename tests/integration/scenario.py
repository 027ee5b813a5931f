"""The issue's end-to-end scenario, driven only through ``clients`` (HTTP):

300 digits examples with 20% random label noise are ingested with the CLI, a simulated
annotator (the CLI's ``annotate`` with the true labels as oracle) answers every query, and
then: at least one retrain happened, every label history is exact, every query was answered,
fewer labels are wrong, and a model trained on the cleaned labels scores a higher F1 on a
clean held-out split than one trained on the noisy labels.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from clients.client import ApiError, CincerClient

N_STREAM = 300
N_TEST = 500
NOISE = 0.2
SEED = 7
BOOTSTRAP = 100
EVERY_N_ANSWERS = 5
CLI_TIMEOUT = 240          # seconds any one CLI call may take
IDLE_TIMEOUT = 180         # seconds the background work may take to settle


@dataclass
class DigitsSplit:
    X: np.ndarray           # stream examples, (300, 64) in [0, 1]
    truth: np.ndarray       # their true labels
    noisy: np.ndarray       # the labels ingested
    X_test: np.ndarray      # clean held-out split
    y_test: np.ndarray


def digits_split(seed: int = SEED) -> DigitsSplit:
    """scikit-learn's bundled digits: a stream with random label noise, a clean test split."""
    digits = load_digits()
    X, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    stream, test = order[:N_STREAM], order[N_STREAM:N_STREAM + N_TEST]
    truth = y[stream]
    noisy = truth.copy()
    flip = rng.random(N_STREAM) < NOISE
    noisy[flip] = (truth[flip] + rng.integers(1, 10, flip.sum())) % 10   # always another class
    return DigitsSplit(X[stream], truth, noisy, X[test], y[test])


def macro_f1(X, labels, X_test, y_test) -> float:
    model = LogisticRegression(max_iter=2000).fit(X, labels)
    return float(f1_score(y_test, model.predict(X_test), average="macro"))


def run_cli(args: list[str], url: str, token: str) -> dict:
    """``python -m clients --url URL --token TOKEN ARGS``; its JSON summary."""
    done = subprocess.run([sys.executable, "-m", "clients", "--url", url, "--token", token,
                           "--quiet", *args], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, (f"python -m clients {' '.join(args)} exited "
                                  f"{done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def run_scenario(url: str, admin_token: str, workdir: str) -> dict:
    """Run the whole scenario against the service at ``url``; returns numbers for the log."""
    data = digits_split()
    admin = CincerClient(url, admin_token, timeout=30)
    assert admin.healthz()

    project = admin.create_project({
        "name": "digits-e2e", "classes": [str(c) for c in range(10)], "input_shape": [64],
        "model": {"kind": "fc", "seed": 0}, "threshold": 0.2, "strategy": "top_fisher",
        "bootstrap_size": BOOTSTRAP,
        "retrain": {"mode": "scratch", "every_n_answers": EVERY_N_ANSWERS}})
    pid = project["id"]
    ingest_token = admin.create_token(pid, "ingest", "e2e-ingest")["token"]
    annotator_token = admin.create_token(pid, "annotator", "e2e-oracle")["token"]

    # A refused batch stores nothing; a token without the role is refused.
    bad = [{"x": data.X[0].tolist(), "label": 0}, {"x": data.X[1].tolist(), "label": 10}]
    try:
        CincerClient(url, ingest_token).ingest(pid, bad)
        raise AssertionError("a batch with an unknown label was accepted")
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.code, exc
    try:
        CincerClient(url, annotator_token).ingest(pid, bad[:1])
        raise AssertionError("an annotator token could ingest")
    except ApiError as exc:
        assert exc.status == 403, exc
    assert admin.list_examples(pid)["total"] == 0

    # Ingest through the CLI: X, noisy y and integer ids that index the oracle's truth.
    stream_file = os.path.join(workdir, "stream.npz")
    np.savez(stream_file, X=data.X, y=data.noisy, ids=np.arange(N_STREAM))
    summary = run_cli([str(pid), "ingest", stream_file, "--source", "digits"], url,
                      ingest_token)
    assert summary["ingested"] == N_STREAM
    assert summary["statuses"].get("accepted") == BOOTSTRAP
    assert summary["statuses"].get("pending") == N_STREAM - BOOTSTRAP
    screened = admin.wait_idle(pid, timeout=IDLE_TIMEOUT)
    assert screened["examples"]["pending"] == 0 and screened["model_version"] >= 1
    assert screened["examples"]["suspicious"] > 0, screened

    # The simulated annotator answers every query with the true labels.
    truth_file = os.path.join(workdir, "truth.npy")
    np.save(truth_file, data.truth)
    answers_file = os.path.join(workdir, "answers.jsonl")
    summary = run_cli([str(pid), "annotate", "--oracle", truth_file, "--idle-timeout", "3",
                       "--timeout", str(CLI_TIMEOUT - 20), "--log", answers_file], url,
                      annotator_token)
    assert summary["stopped"] == "idle", summary
    with open(answers_file) as handle:
        answers = [json.loads(line) for line in handle]
    assert answers and len(answers) == summary["answered"]

    stats = admin.wait_idle(pid, timeout=IDLE_TIMEOUT)
    assert stats["queries"]["answered"] == len(answers), stats
    assert stats["queries"]["open"] == stats["queries"]["leased"] == 0, stats
    assert stats["queries"]["computing"] == 0, stats
    assert stats["examples"]["suspicious"] == 0 and stats["examples"]["pending"] == 0, stats
    assert sum(stats["examples"].values()) == N_STREAM

    models = admin.list_models(pid)
    versions = [m["version"] for m in models]
    assert len(models) >= 2, f"no retrain happened: {models}"
    assert versions == sorted(versions) and len(set(versions)) == len(versions)

    check_histories(admin, pid, data, answers)

    # Cleaner labels: fewer wrong, and a better model on the clean test split.
    rows = [json.loads(line) for line in admin.export(pid, "jsonl").splitlines()]
    assert len(rows) == N_STREAM
    external = np.array([int(r["external_id"]) for r in rows])
    current = np.array([r["label"] for r in rows])
    original = np.array([r["original_label"] for r in rows])
    assert np.array_equal(original, data.noisy[external])
    wrong_before = int(np.sum(data.noisy != data.truth))
    wrong_after = int(np.sum(current != data.truth[external]))
    assert wrong_after < wrong_before, (wrong_before, wrong_after)
    labels = np.empty(N_STREAM, dtype=np.int64)
    labels[external] = current
    f1_noisy = macro_f1(data.X, data.noisy, data.X_test, data.y_test)
    f1_cleaned = macro_f1(data.X, labels, data.X_test, data.y_test)
    assert f1_cleaned > f1_noisy, (f1_cleaned, f1_noisy)
    return {"project": pid, "queries": len(answers), "model_versions": len(models),
            "wrong_before": wrong_before, "wrong_after": wrong_after,
            "f1_noisy": round(f1_noisy, 4), "f1_cleaned": round(f1_cleaned, 4)}


def check_histories(client: CincerClient, pid: int, data: DigitsSplit,
                    answers: list[dict]) -> None:
    """Every example's history: the ingest event, then exactly the oracle's answers that
    touched it, in order, each from the label before to the label answered."""
    expected = defaultdict(list)
    for a in answers:
        expected[a["example_id"]].append(
            (a["query_id"], "answer_example", a["previous_example_label"], a["example_label"]))
        if a["counterexample_id"] is not None:
            expected[a["counterexample_id"]].append(
                (a["query_id"], "answer_counterexample", a["previous_counterexample_label"],
                 a["counterexample_label"]))
    seen = 0
    for listed in client.iter_examples(pid):
        example = client.get_example(pid, listed["id"])
        history = example["history"]
        ext = int(example["external_id"])
        first = history[0]
        assert (first["why"], first["old_label"], first["new_label"]) == \
            ("ingest", None, int(data.noisy[ext])), (example["id"], history)
        for before, after in zip(history, history[1:]):
            assert after["old_label"] == before["new_label"], (example["id"], history)
        got = [(h["query_id"], h["why"], h["old_label"], h["new_label"]) for h in history[1:]]
        assert got == expected.get(example["id"], []), (example["id"], got,
                                                         expected.get(example["id"]))
        assert example["label"] == history[-1]["new_label"]
        assert example["original_label"] == int(data.noisy[ext])
        if got:
            assert example["confirmed"] and example["label"] == int(data.truth[ext])
        seen += 1
    assert seen == N_STREAM
