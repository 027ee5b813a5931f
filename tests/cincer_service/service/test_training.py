"""training: the retrain job, coalescing, requests, model versions, the bootstrap gate."""
import time

import pytest

from cincer_service.service import (
    Conflict,
    NotFound,
    NullDispatcher,
    examples,
    queries,
    reports,
    runner,
    training,
)
from tests.support.service import (
    BOOTSTRAP,
    annotator,
    items,
    make_context,
    new_project,
    true_answer,
)


def test_retrains_coalesce(tmp_path, stream):
    """Answers arriving during a retrain cause one more retrain, not one each."""
    data = stream[0]
    ctx = make_context(tmp_path, dispatcher=None)
    pid = new_project(ctx, retrain={"mode": "scratch", "every_n_answers": 1})
    ctx.set_dispatcher(runner.inline_dispatcher(ctx))
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 140))
    ctx.set_dispatcher(NullDispatcher())
    principal = annotator(ctx, pid)
    for _ in range(4):
        q = queries.lease_next_query(ctx, pid, principal)
        queries.answer_query(ctx, pid, q["id"], *true_answer(q, data.y_train), principal)
    assert reports.stats(ctx, pid)["retrain_wanted"]
    assert training.retrain(ctx, pid) == 2
    assert training.retrain(ctx, pid) is None                  # nothing new to learn
    assert not reports.stats(ctx, pid)["retrain_wanted"]
    assert training.request_retrain(ctx, pid)["status"] == "queued"
    assert training.retrain(ctx, pid) == 3
    versions = training.list_models(ctx, pid)
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert all(0 <= v["metrics"]["train_accuracy"] <= 1 for v in versions)
    assert versions[0]["train_size"] == BOOTSTRAP


def test_request_retrain_needs_data(ctx):
    pid = new_project(ctx)
    with pytest.raises(Conflict):
        training.request_retrain(ctx, pid)
    with pytest.raises(NotFound):
        training.list_models(ctx, pid + 1)


def test_first_model_waits_for_a_complete_two_class_bootstrap(tmp_path, stream):
    """A new project trained on whatever existed: 10 of 150 examples, or one class."""
    data, noisy, _ = stream
    ctx = make_context(tmp_path)
    pid = new_project(ctx, bootstrap_size=BOOTSTRAP)
    assert reports.stats(ctx, pid)["state"] == "collecting_bootstrap"
    assert training.retrain(ctx, pid) is None                 # empty: nothing, no error
    assert runner.reconcile(ctx) == {}
    examples.ingest(ctx, pid, items(stream, 0, 10))
    assert training.retrain(ctx, pid) is None and runner.reconcile(ctx) == {}
    stats = reports.stats(ctx, pid)
    assert stats["model_version"] is None and not stats["retrain_wanted"]
    assert stats["bootstrap"] == {"have": 10, "need": BOOTSTRAP, "classes": 2,
                                  "ready": False}
    with pytest.raises(Conflict):
        training.request_retrain(ctx, pid)

    # One class only: the bootstrap keeps collecting past bootstrap_size.
    other = new_project(ctx, name="one-class", bootstrap_size=5)
    zeros = [i for i in range(200) if noisy[i] == 0][:8]
    ones = [i for i in range(200) if noisy[i] == 1][:1]
    one_class = [{"external_id": str(i), "x": data.X_train[i].tolist(), "label": 0}
                 for i in zeros]
    assert {r["status"] for r in examples.ingest(ctx, other, one_class)} == {"accepted"}
    assert reports.stats(ctx, other)["state"] == "collecting_bootstrap"
    assert training.retrain(ctx, other) is None
    done = examples.ingest(ctx, other, [{"external_id": str(ones[0]), "label": 1,
                                         "x": data.X_train[ones[0]].tolist()}])
    assert done[0]["status"] == "accepted"
    assert reports.stats(ctx, other)["model_version"] == 1   # the inline retrain ran
    versions = training.list_models(ctx, other)
    assert versions[0]["train_size"] == len(zeros) + 1


def test_a_killed_retrain_is_taken_over_once_its_lease_runs_out(tmp_path, stream):
    from cincer_service.service.leases import RowLease
    from cincer_service.service.store import Project
    ctx = make_context(tmp_path, dispatcher=None, retrain_lease_seconds=0.5)
    pid = new_project(ctx)
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    dead = RowLease(ctx.store, Project, pid, 0.5, until="retrain_lease_until",
                    holder="retrain_lease_holder")
    assert dead.claim()
    dead.stop()                                   # the worker died holding the lease
    assert training.retrain(ctx, pid) is None     # the redelivered task sees a live lease
    assert runner.reconcile(ctx) == {}
    time.sleep(0.6)
    assert runner.reconcile(ctx) == {"retrain": 1}
    assert training.retrain(ctx, pid) == 1


def test_tabular_models_learn_from_raw_feature_ranges(tmp_path):
    """Users send features as they have them (breast: 0.001 to 4,000): the model
    standardizes them itself, and a version stored before that loads as the identity."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from cincer_service.service import store
    from cincer_service.service.model_cache import new_classifier, weights_to_bytes

    raw = load_breast_cancer()
    X, y = raw.data[:200].astype(np.float32), raw.target[:200]
    ctx = make_context(tmp_path)
    pid = new_project(ctx, model={"kind": "fc", "max_epochs": 60},
                      retrain={"mode": "scratch", "every_n_answers": 3})
    examples.ingest(ctx, pid, [{"external_id": str(i), "x": X[i].tolist(), "label": int(y[i])}
                               for i in range(BOOTSTRAP)])
    assert [v["version"] for v in training.list_models(ctx, pid)] == [1]
    with ctx.store.session() as s:
        project = s.get(store.Project, pid)
        version = s.query(store.ModelVersion).filter_by(project_id=pid).one()
        clf = ctx.models.classifier(project, version)
        assert clf.standardize
        assert (clf.predict(X[BOOTSTRAP:]) == y[BOOTSTRAP:]).mean() > 0.85
        # weights stored before the model had a standardize layer (two arrays fewer)
        legacy = new_classifier(project, standardize=False, schedule="fixed", max_epochs=3)
        legacy.fit(X[:BOOTSTRAP] / X[:BOOTSTRAP].max(0), y[:BOOTSTRAP])
        version.weights = weights_to_bytes(legacy.get_weights())
        ctx.models = type(ctx.models)()                     # a fresh worker process
        loaded = ctx.models.classifier(project, version)
        probe = X[BOOTSTRAP:] / X[:BOOTSTRAP].max(0)
        np.testing.assert_allclose(loaded.predict_proba(probe), legacy.predict_proba(probe),
                                   rtol=1e-5, atol=1e-6)
