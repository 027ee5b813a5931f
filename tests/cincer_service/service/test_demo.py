"""The demo's evaluation sets: held-out rows with their true labels, never in the stream;
and its headless loop, whose cleaning curve starts from the bootstrap-only model."""
import numpy as np

from cincer_service.datasets import load_dataset, synthetic_intents
from cincer_service.service import examples, projects, reports
from cincer_service.service.demo import (
    EVALUATION_PREFIX,
    answer_from_truth,
    digits_data,
    same_data_baseline,
    seed_demo,
)
from tests.support.service import make_context


def _all(ctx, pid, status):
    return examples.list_examples(ctx, pid, status=status, limit=500)["items"]


def test_the_demo_ingests_a_clean_evaluation_set(tmp_path):
    ctx = make_context(tmp_path, dispatcher=None)
    digits = seed_demo(ctx, n_examples=200, bootstrap_size=100, n_evaluation=60)
    gold = _all(ctx, digits["id"], "evaluation")
    data = load_dataset("digits")
    assert len(gold) == 60 and all(e["confirmed"] for e in gold)
    assert [e["label"] for e in gold] == data.y_test[:60].tolist()          # the truth
    assert np.allclose([e["x"] for e in gold], data.X_test[:60].reshape(-1, 8, 8))
    assert all(e["external_id"].startswith(EVALUATION_PREFIX) for e in gold)
    stream = examples.list_examples(ctx, digits["id"], limit=500)["items"]
    assert sum(e["status"] != "evaluation" for e in stream) == 200
    intents = next(p for p in projects.list_projects(ctx) if p["name"] == "demo-intents")
    texts = _all(ctx, intents["id"], "evaluation")
    held, truth, names = synthetic_intents(30, seed=1)
    assert [e["text"] for e in texts] == held
    assert [e["label_name"] for e in texts] == [names[y] for y in truth]


def test_the_headless_demo_loop_draws_a_curve(tmp_path):
    ctx = make_context(tmp_path)                         # jobs inline
    digits = seed_demo(ctx, n_examples=160, bootstrap_size=80, n_evaluation=60, text=False)
    pid = digits["id"]
    truth = digits_data(160, n_evaluation=60).truth
    given = answer_from_truth(ctx, pid, truth, max_answers=12)
    assert 0 < given <= 12
    curve = reports.stats(ctx, pid)["cleaning_curve"]
    assert curve[0]["answers"] == 0 and curve[0]["train_size"] == 80
    assert all(p["status"] == "ok" and p["n"] == 60 for p in curve)
    assert [p["answers"] for p in curve] == sorted(p["answers"] for p in curve)
    same = same_data_baseline(ctx, pid)
    assert same["train_size"] == curve[-1]["train_size"]
    assert same["ingested_labels"]["n"] == same["cleaned_labels"]["n"] == 60
