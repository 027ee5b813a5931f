"""The store's migrations when several processes start on one database at once."""
import subprocess
import sys
import time

from sqlalchemy import inspect

from cincer_service.service.store import Store

# Each starter imports, says "ready", then migrates at the instant written in the go file.
STARTER = """
import os, sys, time
from cincer_service.service.store import Store
store = Store(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
time.sleep(max(0.0, float(open(sys.argv[2]).read() or 0) - time.time()))
store.upgrade()
"""


def test_concurrent_starters_migrate_once(tmp_path):
    url, go = f"sqlite:///{tmp_path / 'cincer.db'}", tmp_path / "go"
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, url, str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    for starter in starters:
        assert starter.stdout.readline().strip() == "ready", starter.stderr.read()
    go.write_text(str(time.time() + 0.5))
    failures = [p.stderr.read() for p in starters if p.wait(120) != 0]
    assert not failures, failures[0]
    tables = set(inspect(Store(url).engine).get_table_names())
    assert {"alembic_version", "projects", "examples", "queries", "tokens"} <= tables


def _store_with_project(database_url):
    """A migrated store with one two-class project; ``(store, project id)``."""
    from cincer_service.service.store import Project
    from cincer_service.spec import ProjectSpec
    store = Store(database_url)
    store.upgrade()
    with store.session() as s:
        project = Project(**ProjectSpec.build(name="p", classes=["a", "b"],
                                              input_shape=[2]).columns())
        s.add(project)
        s.flush()
        return store, project.id

def test_update_rows_matches_one_update_per_row(database_url):
    """The bulk UPDATE (one statement over arrays on PostgreSQL) against one ORM update per
    row: the same values, JSON and timestamps included, and rows that no longer have the
    ``where`` values left alone."""
    from datetime import timedelta

    from sqlalchemy import select

    from cincer_service.service.store import Example, update_rows, utcnow

    store, pid = _store_with_project(database_url)
    now = utcnow()
    with store.session() as s:
        for copy in ("bulk", "slow"):
            s.add_all([Example(project_id=pid, external_id=f"{copy}{i}",
                               x=b"\0" * 8, label=i % 2, original_label=i % 2,
                               status="accepted" if i == 3 else "pending") for i in range(6)])
    later = now + timedelta(seconds=5)
    changes = [{"status": "suspicious" if i % 2 else "accepted", "screen_margin": 0.25 - i,
                "screen_prediction": i % 2, "screen_probabilities": [0.1 * i, 1 - 0.1 * i]}
               for i in range(6)]
    with store.session() as s:
        rows = {e.external_id: e for e in s.scalars(select(Example))}
        update_rows(s, Example.__table__,
                    [{"id": rows[f"bulk{i}"].id, **c} for i, c in enumerate(changes)],
                    fixed={"updated_at": later}, where={"status": "pending"})
        for i, c in enumerate(changes):
            slow = rows[f"slow{i}"]
            if slow.status == "pending":
                for k, v in {**c, "updated_at": later}.items():
                    setattr(slow, k, v)
    columns = ("status", "screen_margin", "screen_prediction", "screen_probabilities",
               "label")
    with store.session() as s:
        rows = {e.external_id: e for e in s.scalars(select(Example))}
        for i in range(6):
            bulk, slow = rows[f"bulk{i}"], rows[f"slow{i}"]
            assert [getattr(bulk, k) for k in columns] == [getattr(slow, k) for k in columns]
            assert (bulk.updated_at == later) == (i != 3) == (slow.updated_at == later)
        assert rows["bulk3"].status == "accepted" and rows["bulk3"].screen_margin is None
        assert rows["bulk4"].status == "accepted"
    store.engine.dispose()


def test_insert_rows_matches_orm_inserts(database_url):
    """The bulk INSERT (ids from the sequence and one statement over arrays on PostgreSQL)
    against one ORM object per row: ids in the rows' order, every column the same, the
    columns' defaults (``gold``) filled in, and ids that keep counting after."""
    from sqlalchemy import select

    from cincer_service.service.store import Example, LabelEvent, insert_rows, utcnow

    store, pid = _store_with_project(database_url)
    now = utcnow()

    def row(name, i):
        return {"project_id": pid, "external_id": None if i == 2 else f"{name}{i}",
                "source": "tab\there, quote ' and \\\\ back" if i == 1 else None,
                "x": bytes([i, 0, 92, 39, 255, 0, 0, 1]), "raw": "naïve\nline" if i else None,
                "label": i % 2, "original_label": i % 2, "status": "pending",
                "created_at": now, "updated_at": now}
    with store.session() as s:
        ids = insert_rows(s, Example.__table__, [row("bulk", i) for i in range(4)],
                          fixed={"confirmed": True})
        slow = [Example(**row("slow", i), confirmed=True) for i in range(4)]
        s.add_all(slow)
        s.flush()
        events = insert_rows(s, LabelEvent.__table__, [{"example_id": e, "new_label": 1}
                                                         for e in ids],
                             fixed={"old_label": None, "why": "ingest", "actor": "t", "at": now})
        assert ids == sorted(ids) and len(set(ids)) == 4 and max(ids) < slow[0].id
        assert len(set(events)) == 4
    with store.session() as s:
        stored = {e.id: e for e in s.scalars(select(Example))}
        for i, (eid, orm) in enumerate(zip(ids, slow)):
            bulk, orm = stored[eid], stored[orm.id]
            assert bulk.external_id == (None if i == 2 else f"bulk{i}")
            for k in ("source", "x", "raw", "label", "original_label", "status", "confirmed",
                      "gold", "gold_label", "created_at", "screen_margin"):
                assert getattr(bulk, k) == getattr(orm, k), k
            assert bulk.gold is False
        history = s.scalars(select(LabelEvent).where(LabelEvent.id.in_(events))).all()
        assert sorted(h.example_id for h in history) == ids
        assert {(h.why, h.actor, h.old_label, h.new_label) for h in history} == {
            ("ingest", "t", None, 1)}
    store.engine.dispose()


def test_scale_reads_have_their_indexes(database_url):
    """The answer history's read finds a project's answers without scanning a label event
    per ingested example, the busy examples' read skips computing stream pairs, and
    screening reads pending rows in id order from the index (0011_scale_reads)."""
    store = Store(database_url)
    store.upgrade()
    indexes = {i["name"]: i for i in inspect(store.engine).get_indexes("label_events")}
    assert indexes["ix_label_events_answers"]["column_names"] == ["example_id"]
    indexes = {i["name"]: i for i in inspect(store.engine).get_indexes("queries")}
    assert indexes["ix_queries_computing_not_stream"]["column_names"] == ["project_id"]
    indexes = {i["name"]: i for i in inspect(store.engine).get_indexes("examples")}
    assert indexes["ix_examples_project_status"]["column_names"] == ["project_id", "status",
                                                                     "id"]
    store.engine.dispose()
