"""The evaluation set (``split: "evaluation"``): never trained on, screened, queried or in
the overview; every model version scored on it; the cleaning curve in ``/stats`` and as a
PNG."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import log_loss as sk_log_loss

from cincer_service.service import evaluation as ev
from cincer_service.service import examples, overview, reports, training
from cincer_service.service.errors import BadInput, Conflict
from cincer_service.service.store import Example, LabelEvent, ModelVersion, Project, Query
from tests.support.service import BOOTSTRAP, annotator, answer_all, items, new_project

N_GOLD = 60
FEWER_RETRAINS = {"retrain": {"mode": "warm", "every_n_answers": 10}}


def gold_items(stream, start=0, stop=N_GOLD, prefix="gold-"):
    """Test rows of the stream's data with their TRUE labels, as evaluation items."""
    data = stream[0]
    return [{"external_id": f"{prefix}{i}", "x": data.X_test[i].tolist(),
             "label": int(data.y_test[i]), "split": "evaluation"} for i in range(start, stop)]


def gold_ids(ctx, pid):
    with ctx.store.session() as s:
        return {e.id for e in s.query(Example).filter_by(project_id=pid, status="evaluation")}


def test_evaluation_examples_are_never_trained_screened_queried_or_overviewed(ctx, stream):
    data, noisy, _ = stream
    pid = new_project(ctx, **FEWER_RETRAINS)
    # before the bootstrap: the evaluation set does not count towards it
    created = examples.ingest(ctx, pid, gold_items(stream, 0, 40))
    assert {r["status"] for r in created} == {"evaluation"}
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP - 1))
    assert training.list_models(ctx, pid) == []
    assert reports.stats(ctx, pid)["bootstrap"]["have"] == BOOTSTRAP - 1
    examples.ingest(ctx, pid, items(stream, BOOTSTRAP - 1, BOOTSTRAP + 150))
    # after the first model, in the middle of the stream
    examples.ingest(ctx, pid, gold_items(stream, 40, N_GOLD))
    answered = answer_all(ctx, pid, data.y_train, annotator(ctx, pid))
    examples.ingest(ctx, pid, items(stream, BOOTSTRAP + 150, BOOTSTRAP + 250))
    answered += answer_all(ctx, pid, data.y_train, annotator(ctx, pid))
    assert answered, "the stream should raise queries"
    overview.request_overview(ctx, pid)

    gold = gold_ids(ctx, pid)
    assert len(gold) == N_GOLD
    with ctx.store.session() as s:
        rows = s.query(Example).filter(Example.id.in_(gold)).all()
        assert {e.status for e in rows} == {"evaluation"} and all(e.confirmed for e in rows)
        assert all(e.label == e.original_label == data.y_test[int(e.external_id[5:])]
                   for e in rows)
        versions = s.query(ModelVersion).filter_by(project_id=pid).all()
        queried = {i for q in s.query(Query).filter_by(project_id=pid)
                   for i in (q.example_id, q.counterexample_id)}
        events = {ev_.why for ev_ in s.query(LabelEvent).filter(LabelEvent.example_id.in_(gold))}
    assert len(versions) >= 2
    for v in versions:
        assert not set(np.frombuffer(v.train_ids, dtype=np.int64).tolist()) & gold
    assert not queried & gold
    assert events == {"ingest"}
    shown = overview.get_overview(ctx, pid)
    assert shown["status"] == "done" and shown["n_examples"] > 0
    for cell in shown["cells"]:
        ids = {e["id"] for e in overview.get_cell(ctx, pid, cell["label"],
                                                   cell["prediction"])["items"]}
        assert not ids & gold
    assert all(r["status"] == "evaluation"
               for r in examples.list_examples(ctx, pid, status="evaluation",
                                               limit=100)["items"])
    assert examples.list_examples(ctx, pid, status="evaluation")["total"] == N_GOLD


def test_each_version_is_scored_on_the_evaluation_set_as_scikit_learn_scores_it(ctx, stream):
    data, _, _ = stream
    pid = new_project(ctx, **FEWER_RETRAINS)
    examples.ingest(ctx, pid, gold_items(stream))
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 150))
    answer_all(ctx, pid, data.y_train, annotator(ctx, pid))
    with ctx.store.session() as s:
        project = s.get(Project, pid)
        versions = s.query(ModelVersion).filter_by(project_id=pid).order_by(
            ModelVersion.version).all()
        X = np.stack([e.features(project.input_shape) for e in s.query(Example).filter_by(
            project_id=pid, status="evaluation").order_by(Example.id)])
        answered = s.query(Query).filter_by(project_id=pid, status="answered").count()
        assert len(versions) >= 2
        for v in versions:
            probs = np.asarray(ctx.models.classifier(project, v).predict_proba(X), np.float64)
            probs /= probs.sum(axis=1, keepdims=True)
            y = data.y_test[:N_GOLD]
            got = v.metrics["evaluation"]
            assert got["status"] == "ok" and got["n"] == N_GOLD
            assert got["per_class"] == np.bincount(y, minlength=2).tolist()
            assert got["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(1)),
                                                    abs=1e-9)
            assert got["f1_macro"] == pytest.approx(
                f1_score(y, probs.argmax(1), average="macro"), abs=1e-9)
            assert got["log_loss"] == pytest.approx(
                sk_log_loss(y, probs, labels=[0, 1]), rel=1e-6)
            assert got["ece"] == pytest.approx(ev.expected_calibration_error(y, probs),
                                               abs=1e-9)
    answers = [v.metrics["answers"] for v in versions]
    assert answers[0] == 0 and answers == sorted(answers) and answers[-1] <= answered
    assert answers[-1] > 0


def test_the_cleaning_curve_in_stats(ctx, stream):
    data, _, _ = stream
    pid = new_project(ctx, **FEWER_RETRAINS)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    examples.ingest(ctx, pid, gold_items(stream))       # after v1: scored from v2 on
    examples.ingest(ctx, pid, items(stream, BOOTSTRAP, BOOTSTRAP + 150))
    answer_all(ctx, pid, data.y_train, annotator(ctx, pid))
    stats = reports.stats(ctx, pid)
    assert stats["examples"]["evaluation"] == N_GOLD and stats["examples"]["holdout"] == 0
    curve = stats["cleaning_curve"]
    models = training.list_models(ctx, pid)
    assert [p["version"] for p in curve] == [m["version"] for m in models]
    assert curve[0]["status"] == "empty" and curve[0]["accuracy"] is None
    assert curve[0]["answers"] == 0 and curve[0]["n"] == 0
    for point, model in zip(curve[1:], models[1:]):
        gold = model["metrics"]["evaluation"]
        assert point["status"] == "ok" and point["n"] == N_GOLD
        assert point["answers"] == model["metrics"]["answers"]
        assert point["train_size"] == model["train_size"]
        for key in ("accuracy", "f1_macro", "log_loss", "ece"):
            assert point[key] == gold[key]
    latest = stats["evaluation"]
    assert latest["version"] == stats["model_version"] == curve[-1]["version"]
    assert latest["accuracy"] == curve[-1]["accuracy"]
    assert latest["answers"] == curve[-1]["answers"]


def test_versions_before_the_feature_show_as_missing(ctx, stream):
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    with ctx.store.session() as s:
        v = s.query(ModelVersion).filter_by(project_id=pid).one()
        v.metrics = {k: w for k, w in v.metrics.items() if k not in ("evaluation", "answers")}
    assert reports.stats(ctx, pid)["evaluation"] is None
    point, = reports.stats(ctx, pid)["cleaning_curve"]
    assert point["status"] == "missing" and point["answers"] is None
    assert point["accuracy"] is None


def test_split_is_checked_and_an_external_id_keeps_its_split(ctx, stream):
    pid = new_project(ctx)
    bad = gold_items(stream, 0, 2)
    bad[1]["split"] = "test"
    with pytest.raises(BadInput) as caught:
        examples.ingest(ctx, pid, bad)
    assert set(caught.value.details) == {"items.1.split"}
    assert examples.list_examples(ctx, pid)["total"] == 0
    first = examples.ingest(ctx, pid, gold_items(stream, 0, 3))
    again = examples.ingest(ctx, pid, gold_items(stream, 0, 3))
    assert [r["outcome"] for r in again] == ["replayed"] * 3
    assert [r["id"] for r in again] == [r["id"] for r in first]
    moved = gold_items(stream, 0, 1)
    moved[0]["split"] = "training"
    with pytest.raises(Conflict):
        examples.ingest(ctx, pid, moved)
    del moved[0]["split"]                                # training is the default
    with pytest.raises(Conflict):
        examples.ingest(ctx, pid, moved)
    training_item = items(stream, 0, 1)
    examples.ingest(ctx, pid, training_item)
    with pytest.raises(Conflict):
        examples.ingest(ctx, pid, [{**training_item[0], "split": "evaluation"}])
    assert examples.list_examples(ctx, pid, status="evaluation")["total"] == 3
    assert examples.list_examples(ctx, pid, status="accepted")["total"] == 1


def test_the_curve_plot_is_a_png(ctx, stream):
    data, _, _ = stream
    pid = new_project(ctx, **FEWER_RETRAINS)
    empty = overview.curve_plot(ctx, pid)
    assert empty.startswith(b"\x89PNG\r\n\x1a\n")
    examples.ingest(ctx, pid, gold_items(stream))
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 100))
    answer_all(ctx, pid, data.y_train, annotator(ctx, pid))
    drawn = overview.curve_plot(ctx, pid)
    assert drawn.startswith(b"\x89PNG\r\n\x1a\n") and drawn != empty
