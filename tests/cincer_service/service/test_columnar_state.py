"""The model cache over columnar state files: written once per version, mapped by another
process's cache, label changes as an overlay, a corrupt file rebuilt from the database."""
import os
from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import select

from cincer_service import columnar
from cincer_service.counterexamples import get_strategy
from cincer_service.service import examples, overview
from cincer_service.service.context import latest_version, project_row
from cincer_service.service.model_cache import ModelCache, changed_training_rows
from cincer_service.service.store import Example
from tests.support.service import BOOTSTRAP, items, make_context, new_project


def states(ctx, pid, cache):
    with ctx.store.session() as s:
        project = project_row(s, pid)
        version = latest_version(s, project.id)
        state, ids, confirmed, entry = cache.training_state(s, project, version)
        db = {e.id: (e.label, e.confirmed) for e in s.query(Example).filter(
            Example.id.in_(ids.tolist()))}
        return state, ids, confirmed, db, (project, version)


def assert_current(state, ids, confirmed, db):
    assert [int(v) for v in state.y] == [db[int(i)][0] for i in ids]
    assert [bool(v) for v in confirmed] == [bool(db[int(i)][1]) for i in ids]


def test_state_files_overlay_and_rebuild(tmp_path, stream):
    ctx = make_context(tmp_path)
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 20))
    state, ids, confirmed, db, (project, version) = states(ctx, pid, ctx.models)
    path = columnar.version_dir(os.path.join(str(tmp_path), "state"), pid, version.id,
                                version.created_at)
    assert os.path.isfile(os.path.join(path, "manifest.json"))
    assert_current(state, ids, confirmed, db)
    assert sorted(ids.tolist()) == np.frombuffer(version.train_ids, np.int64).tolist()

    # the in-memory path (the current implementation) picks the same counter-example
    memory = ModelCache()
    with ctx.store.session() as s:
        ref, ref_ids, _, _ = memory.training_state(s, project_row(s, pid), latest_version(s, pid))
    x, label = stream[0].X_train[BOOTSTRAP + 30], int(stream[1][BOOTSTRAP + 30])
    strategy = get_strategy("top_fisher")
    assert ids[strategy.select(state, x, label)] == ref_ids[strategy.select(ref, x, label)]

    # a label change after the version: the overlay (cached state and a new process's map)
    target = int(ids[0])
    new_label = 1 - db[target][0]
    overview.relabel_examples(ctx, pid, [target], new_label, "owner")
    assert ctx.models.state_builds == 1
    for cache in (ctx.models, ModelCache(state_dir=os.path.join(str(tmp_path), "state"))):
        before = cache.state_builds
        state, ids, confirmed, db, _ = states(ctx, pid, cache)
        assert db[target] == (new_label, True)
        assert_current(state, ids, confirmed, db)
        assert cache.state_builds == before           # mapped (or cached), not rebuilt
    with ctx.store.session() as s:
        ref, ref_ids, _, _ = memory.training_state(s, project_row(s, pid), latest_version(s, pid))
    assert ids[strategy.select(state, x, label)] == ref_ids[strategy.select(ref, x, label)]

    # a corrupt file: never used, rebuilt from the database with the current labels
    with open(os.path.join(path, "p.npy"), "r+b") as f:
        f.seek(os.path.getsize(os.path.join(path, "p.npy")) - 4)
        f.write(b"\x00\x00\x80\x7f")
    fresh = ModelCache(state_dir=os.path.join(str(tmp_path), "state"))
    state, ids, confirmed, db, _ = states(ctx, pid, fresh)
    assert fresh.state_builds == 0                    # mapped: partitions checked on use
    with pytest.raises(columnar.CorruptState):
        _ = state.columns.p
    state, ids, confirmed, db, _ = states(ctx, pid, fresh)
    assert fresh.state_builds == 1                    # the next use rebuilt it
    assert np.all(np.isfinite(state.columns.p))
    assert_current(state, ids, confirmed, db)
    columnar.load(path)                               # whole again


def test_the_overlay_reads_only_the_training_rows_id_range(tmp_path, stream):
    """The screened stream (newer ids, updated after the version) is never read for the
    overlay; at 200k examples reading it made each counter-example job 12x slower."""
    ctx = make_context(tmp_path)
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 100000})
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 40))
    _, _, _, db, (_, version) = states(ctx, pid, ctx.models)
    train_ids = np.frombuffer(version.train_ids, np.int64)
    assert version.train_id_range == (int(train_ids.min()), int(train_ids.max()))
    target = int(train_ids[0])
    overview.relabel_examples(ctx, pid, [target], 1 - db[target][0], "owner")
    long_ago = datetime(2000, 1, 1, tzinfo=timezone.utc)
    with ctx.store.session() as s:
        updated = set(s.scalars(select(Example.id).where(Example.project_id == pid,
                                                         Example.updated_at >= long_ago)))
        read = {r[0] for r in changed_training_rows(s, pid, version.train_id_range, long_ago)}
    stream_ids = updated - set(range(int(train_ids[0]), int(train_ids[-1]) + 1))
    assert len(stream_ids) == 40 and not read & stream_ids
    assert read == set(train_ids.tolist()) and target in read
    state, ids, confirmed, db, _ = states(ctx, pid, ctx.models)
    assert_current(state, ids, confirmed, db)           # the relabel still applies
