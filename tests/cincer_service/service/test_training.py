"""training: the retrain job, coalescing, requests, model versions."""
import pytest

from cincer_service.service import (Conflict, InlineDispatcher, NotFound, NullDispatcher,
                                    examples, queries, reports, training)
from tests.support.service import (BOOTSTRAP, annotator, items, make_context, new_project,
                                   true_answer)


def test_retrains_coalesce(tmp_path, stream):
    """Answers arriving during a retrain cause one more retrain, not one each."""
    data = stream[0]
    ctx = make_context(tmp_path, dispatcher=None)
    pid = new_project(ctx, retrain={"mode": "scratch", "every_n_answers": 1})
    ctx.set_dispatcher(InlineDispatcher(ctx))
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
