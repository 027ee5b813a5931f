"""evaluation: held-out metrics of each model version (trusted set, noisy hold-out)."""
import inspect

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import log_loss as sk_log_loss

from cincer_service.service import evaluation as ev
from cincer_service.service import examples, reports, training
from cincer_service.service.store import Example, ModelVersion
from tests.support.service import BOOTSTRAP, annotator, answer_all, items, new_project


def _sk_log_loss(y, probs, n_classes):
    name = "y_proba" if "y_proba" in inspect.signature(sk_log_loss).parameters else "y_pred"
    return sk_log_loss(y, labels=list(range(n_classes)), **{name: probs})


def _fixed_predictions(seed, n=200, c=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, c, size=n)
    return y, probs


def _by_hand(y, probs, n_classes):
    """Accuracy, macro-F1 and log loss written out from their definitions, the reference the
    scikit-learn calls are checked against (the module keeps no metric code of its own)."""
    y_pred = [int(np.argmax(p)) for p in probs]
    accuracy = sum(int(a == b) for a, b in zip(y, y_pred)) / len(y)
    f1s = []
    for c in sorted(set(y) | set(y_pred)):
        tp = sum(1 for a, b in zip(y, y_pred) if a == c and b == c)
        fp = sum(1 for a, b in zip(y, y_pred) if a != c and b == c)
        fn = sum(1 for a, b in zip(y, y_pred) if a == c and b != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    eps = np.finfo(np.float64).eps
    loss = -sum(np.log(min(max(p[c] / sum(p), eps), 1 - eps)) for p, c in zip(probs, y))
    return accuracy, sum(f1s) / len(f1s), loss / len(y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_are_scikit_learns(seed):
    y, probs = _fixed_predictions(seed)
    y_pred = probs.argmax(axis=1)
    m = ev.classification_metrics(y, probs, 4)
    assert m["n"] == len(y)
    assert m["accuracy"] == accuracy_score(y, y_pred)
    assert m["f1_macro"] == f1_score(y, y_pred, average="macro")
    assert m["f1_weighted"] == f1_score(y, y_pred, average="weighted")
    assert m["log_loss"] == pytest.approx(_sk_log_loss(y, probs, 4), rel=1e-12)
    accuracy, f1_macro, loss = _by_hand(y.tolist(), probs.tolist(), 4)
    assert m["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert m["f1_macro"] == pytest.approx(f1_macro, abs=1e-12)
    assert m["log_loss"] == pytest.approx(loss, rel=1e-9)


def test_the_hand_written_metrics_are_gone():
    for name in ("accuracy", "weighted_f1", "log_loss"):
        assert not hasattr(ev, name), name


def test_log_loss_knows_every_class_and_edge_cases_match_scikit_learn():
    # class 2 is never predicted, class 3 never occurs, one probability is exactly 0, and
    # a set holding one class only still needs every class for its log loss
    y = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    probs = np.array([[.9, .1, 0, 0], [.6, .3, .1, 0], [.2, .7, .1, 0], [.5, .4, .1, 0],
                      [.1, .8, .1, 0], [.4, .3, .3, 0], [1., 0, 0, 0], [.25, .25, .25, .25]])
    y_pred = probs.argmax(axis=1)
    m = ev.classification_metrics(y, probs, 4)
    assert m["f1_macro"] == f1_score(y, y_pred, average="macro", zero_division=0)
    assert m["log_loss"] == pytest.approx(_sk_log_loss(y, probs, 4), rel=1e-12)
    assert m["f1_macro"] == pytest.approx(_by_hand(y.tolist(), probs.tolist(), 4)[1])
    one_class = ev.classification_metrics([1, 1], [[.2, .7, .1], [.1, .1, .8]], 3)
    assert one_class["log_loss"] == pytest.approx(-(np.log(.7) + np.log(.1)) / 2)
    assert one_class["accuracy"] == 0.5


def _slow_ece(y, probs, bins=10):
    """ECE the obvious way: for each bin (lo, hi], the gap between accuracy and mean
    confidence of its members, weighted by its share of examples."""
    n, total = len(y), 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = []
        for i in range(n):
            confidence = max(probs[i])
            if (lo < confidence <= hi) or (b == 0 and confidence == 0):
                members.append(i)
        if not members:
            continue
        acc = sum(int(np.argmax(probs[i]) == y[i]) for i in members) / len(members)
        conf = sum(max(probs[i]) for i in members) / len(members)
        total += len(members) / n * abs(acc - conf)
    return total


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ece_matches_a_slow_loop(seed):
    y, probs = _fixed_predictions(seed, n=300, c=3)
    assert ev.expected_calibration_error(y, probs) == pytest.approx(_slow_ece(y, probs),
                                                                    abs=1e-12)


def test_ece_bin_edges_and_perfect_calibration():
    # confidences exactly on the edges 0.3, 0.5, 1.0 go to the bin below the edge
    probs = np.array([[0.3, 0.3, 0.4 - 1e-12], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0],
                      [0.3, 0.35, 0.35]])
    y = np.array([0, 1, 0, 2])
    assert ev.expected_calibration_error(y, probs) == pytest.approx(_slow_ece(y, probs))
    # all confidences 1 and all right: calibrated
    assert ev.expected_calibration_error([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == 0.0


def test_too_few_and_off():
    y = np.array([0] * 6 + [1] * 4)
    assert ev.too_few(y, 2, 5) == {"status": "too_few", "n": 10, "min": 5, "per_class": [6, 4]}
    assert ev.too_few(np.array([0] * 5 + [1] * 5), 2, 5) is None
    report = ev.heldout_report(lambda X: None, 2, (None, np.zeros(0, dtype=int), 0),
                               (None, np.zeros(0, dtype=int)), 0.0)
    assert report["trusted"]["status"] == "too_few" and report["trusted"]["n"] == 0
    assert report["holdout_noisy"] == {"status": "off"}


def test_holdout_choice_is_deterministic_and_stratified():
    rng = np.random.default_rng(0)
    ids = np.arange(100, 200)
    labels = rng.integers(0, 3, size=100)
    xs = [rng.normal(size=4).astype(np.float32).tobytes() for _ in ids]
    digests = [ev.input_digest(x) for x in xs]
    chosen = ev.choose_holdout(ids, labels, digests, 0.2)
    for c in range(3):
        members = ids[labels == c]
        assert np.isin(chosen, members).sum() == int(np.floor(0.2 * len(members)))
    # the same examples in another order give the same hold-out
    perm = rng.permutation(100)
    again = ev.choose_holdout(ids[perm], labels[perm], [digests[i] for i in perm], 0.2)
    assert np.array_equal(chosen, again)
    assert len(ev.choose_holdout(ids, labels, digests, 0.0)) == 0
    assert len(ev.choose_holdout([1], [0], [b"x"], 0.5)) == 0     # a class keeps one


def test_versions_report_heldout_metrics(ctx, stream):
    data, noisy, _ = stream
    share = 0.3
    pid = new_project(ctx, holdout_share=share)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 100))
    labels = noisy[:BOOTSTRAP]
    expected = sum(int(np.floor(share * np.sum(labels == c))) for c in (0, 1))
    with ctx.store.session() as s:
        held = s.query(Example).filter_by(project_id=pid, status="holdout").all()
        v1 = s.query(ModelVersion).filter_by(project_id=pid, version=1).one()
        train_ids = set(np.frombuffer(v1.train_ids, dtype=np.int64).tolist())
    assert len(held) == expected and not {e.id for e in held} & train_ids
    assert v1.train_size == BOOTSTRAP - expected
    first = training.list_models(ctx, pid)[0]["metrics"]["heldout"]
    assert first["min_per_class"] == 5
    assert first["trusted"]["status"] == "too_few" and first["trusted"]["n"] == 0
    noisy_set = first["holdout_noisy"]
    assert noisy_set["status"] == "ok" and noisy_set["n"] == expected
    assert 0 <= noisy_set["accuracy"] <= 1 and 0 <= noisy_set["ece"] <= 1
    assert noisy_set["log_loss"] > 0 and 0 <= noisy_set["f1_weighted"] <= 1
    stats = reports.stats(ctx, pid)
    assert stats["heldout"]["version"] == stats["model_version"]
    assert stats["bootstrap"]["ready"] and stats["state"] == "ready"

    answer_all(ctx, pid, data.y_train, annotator(ctx, pid))
    models = training.list_models(ctx, pid)
    assert len(models) >= 2
    last = models[-1]["metrics"]["heldout"]
    # the hold-out stays the same examples; the trusted set grows with the answers
    assert last["holdout_noisy"]["n"] == expected
    with ctx.store.session() as s:
        confirmed = s.query(Example).filter_by(project_id=pid, confirmed=True).count()
    trusted = last["trusted"]
    assert trusted["n"] <= confirmed and trusted["in_training"] <= trusted["n"]
    if trusted["status"] == "ok":
        assert 0 <= trusted["accuracy"] <= 1
    else:
        assert trusted["status"] == "too_few" and min(trusted["per_class"]) < 5
    assert reports.stats(ctx, pid)["heldout"]["version"] == models[-1]["version"]


def test_no_holdout_by_default(ctx, stream):
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    model = training.list_models(ctx, pid)[0]
    assert model["train_size"] == BOOTSTRAP
    assert model["metrics"]["heldout"]["holdout_noisy"] == {"status": "off"}
