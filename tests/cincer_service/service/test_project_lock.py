"""The project lock's two modes (``context.project_row``): answers share it, batch writers
hold it alone, and on PostgreSQL a waiting exclusive holder is not starved by new sharers."""
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cincer_service.service import Settings, build_context, projects
from cincer_service.service.context import project_row
from cincer_service.spec import ProjectSpec
from tests.support.services import postgres_database


def _project(url, tmp_path):
    ctx = build_context(Settings(data_dir=str(tmp_path), database_url=url))
    return ctx, projects.create_project(ctx, ProjectSpec.build(
        name="locks", classes=["a", "b"], input_shape=[2]))["id"]


@pytest.fixture
def project(database_url, tmp_path):
    ctx, pid = _project(database_url, tmp_path)
    yield ctx, pid
    ctx.store.engine.dispose()


@pytest.fixture
def pg_project(tmp_path):
    """Row and advisory locks: PostgreSQL only (SQLite serialises every writer)."""
    with postgres_database() as url:
        if url is None:
            pytest.skip("needs PostgreSQL (CINCER_TEST_POSTGRES_URL)")
        ctx, pid = _project(url, tmp_path)
        yield ctx, pid
        ctx.store.engine.dispose()


def test_an_unknown_mode_is_refused(project):
    ctx, pid = project
    with ctx.store.session() as s, pytest.raises(ValueError):
        project_row(s, pid, lock="exclusive")


def test_both_modes_read_the_project(project):
    ctx, pid = project
    for mode in (True, "share"):
        with ctx.store.session() as s:
            assert project_row(s, pid, lock=mode).name == "locks"


def _blocked(ctx, pid, mode) -> bool:
    """Whether taking ``mode`` waits (PostgreSQL's lock_timeout of 300 ms expires)."""
    with ctx.store.session() as s:
        s.execute(text("SET LOCAL lock_timeout = '300ms'"))
        try:
            project_row(s, pid, lock=mode)
        except OperationalError as exc:
            assert "lock timeout" in str(exc)
            return True
        return False


def test_sharers_run_together_and_exclude_a_batch_writer(pg_project):
    ctx, pid = pg_project
    with ctx.store.session() as first:
        project_row(first, pid, lock="share")
        assert not _blocked(ctx, pid, "share")          # a second answer goes ahead
        assert _blocked(ctx, pid, True)                 # a batch writer waits
    assert not _blocked(ctx, pid, True)                 # ... until the answer commits


def test_a_waiting_batch_writer_is_not_starved_by_new_sharers(pg_project):
    ctx, pid = pg_project
    got_it = threading.Event()

    def writer():
        with ctx.store.session() as s:
            project_row(s, pid, lock=True)
            got_it.set()

    with ctx.store.session() as first:
        project_row(first, pid, lock="share")
        thread = threading.Thread(target=writer)
        thread.start()
        with ctx.store.session() as s:      # wait until the writer queues for the lock
            for _ in range(100):
                waiting = s.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND NOT granted")).scalar()
                if waiting:
                    break
                s.execute(text("SELECT pg_sleep(0.02)"))
        assert waiting
        assert _blocked(ctx, pid, "share")      # a new answer queues behind the writer
        assert not got_it.is_set()
    thread.join(10)
    assert got_it.is_set()


@pytest.mark.parametrize("mode", [True, "share"])
def test_on_sqlite_a_project_lock_holds_the_write_lock(tmp_path, mode):
    """SQLite's driver begins a transaction only at the first write: the lock must be one,
    or two label changes both read the same label and the second records a replaced one."""
    import sqlite3
    ctx, pid = _project(None, tmp_path)
    with ctx.store.session() as s:
        project_row(s, pid, lock=mode)
        other = sqlite3.connect(str(tmp_path / "cincer.db"), timeout=0.2)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("UPDATE projects SET name = name WHERE id = ?", (pid,))
        other.close()
    ctx.store.engine.dispose()
