"""screening: a screen job opens some of each batch's pairs between batches, most valuable
first, so pairs appear while a long backlog is screened (its own ``counterexample`` jobs
never run here: the context drops every submitted job)."""
import pytest
from sqlalchemy import select

from cincer_service.service import examples, screening, training
from cincer_service.service.store import Query
from tests.support.service import BOOTSTRAP, items, make_context, new_project


@pytest.fixture
def backlog(tmp_path, stream, monkeypatch):
    """A project with its first model and 120 pending examples, screened 10 at a time by
    hand; the batches ``screen_one_batch`` returned."""
    ctx = make_context(tmp_path, dispatcher=None, screen_batch=10)
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    assert training.retrain(ctx, pid) == 1
    examples.ingest(ctx, pid, items(stream, BOOTSTRAP, BOOTSTRAP + 120))
    batches, screen_one_batch = [], screening.screen_one_batch

    def recorded(ctx, pid):
        batch = screen_one_batch(ctx, pid)
        if batch is not None:
            batches.append(batch)
        return batch

    monkeypatch.setattr(screening, "screen_one_batch", recorded)
    return ctx, pid, batches


def statuses(ctx, pid) -> dict:
    with ctx.store.session() as s:
        return dict(s.execute(select(Query.id, Query.status).where(Query.project_id == pid)).all())


def test_each_batch_opens_its_most_valuable_pair_at_least(backlog, monkeypatch):
    ctx, pid, batches = backlog
    monkeypatch.setattr(screening, "PAIR_TIME_SHARE", 0.0)
    assert screening.screen_pending(ctx, pid) == 120
    with ctx.store.session() as s:
        priority = dict(s.execute(select(Query.id, Query.priority)).all())
    for batch in batches:
        assert [priority[q] for q in batch.query_ids] == sorted(
            (priority[q] for q in batch.query_ids), reverse=True)
    now = statuses(ctx, pid)
    opened = {q for q, status in now.items() if status == "open"}
    assert opened == {b.query_ids[0] for b in batches if b.query_ids}
    assert "computing" in now.values()            # the rest wait for their own jobs


def test_with_time_to_spare_every_pair_opens_during_screening(backlog, monkeypatch):
    ctx, pid, batches = backlog
    monkeypatch.setattr(screening, "PAIR_TIME_SHARE", 1e6)
    screening.screen_pending(ctx, pid)
    now = statuses(ctx, pid)
    assert len(now) >= 5 and set(now.values()) == {"open"}


def test_the_last_batch_leaves_its_pairs_to_their_jobs(tmp_path, stream):
    """A backlog of one partial batch opens nothing itself: its pairs' jobs run next."""
    ctx = make_context(tmp_path, dispatcher=None, screen_batch=1000)
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP))
    assert training.retrain(ctx, pid) == 1
    examples.ingest(ctx, pid, items(stream, BOOTSTRAP, BOOTSTRAP + 120))
    assert screening.screen_pending(ctx, pid) == 120
    now = statuses(ctx, pid)
    assert now and set(now.values()) == {"computing"}
