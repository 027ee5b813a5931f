"""leases: a lease lives while its holder renews it, and runs out soon after it dies."""
import time

from cincer_service.service.leases import RowLease
from cincer_service.service.store import Project
from tests.support.service import new_project


def read(ctx, pid):
    with ctx.store.session() as s:
        p = s.get(Project, pid)
        return p.retrain_lease_until, p.retrain_lease_holder


def lease(ctx, pid, seconds):
    return RowLease(ctx.store, Project, pid, seconds, until="retrain_lease_until",
                    holder="retrain_lease_holder")


def test_a_live_holder_keeps_its_lease_past_the_expiry(ctx):
    pid = new_project(ctx)
    first = lease(ctx, pid, 0.3)
    assert first.claim()
    try:
        time.sleep(1.0)                                   # three lease lengths
        assert not lease(ctx, pid, 0.3).claim()           # renewed by the heartbeat
        assert read(ctx, pid)[1] == first.holder and not first.lost
    finally:
        first.release()
    assert read(ctx, pid) == (None, None)


def test_a_dead_holders_lease_runs_out(ctx):
    pid = new_project(ctx)
    dead = lease(ctx, pid, 0.3)
    assert dead.claim()
    dead.stop()                                           # as if killed: no more renewals
    assert not lease(ctx, pid, 0.3).claim()               # still valid for a moment
    time.sleep(0.4)
    taker = lease(ctx, pid, 0.3)
    assert taker.claim()
    try:
        dead.release()                                    # a zombie cannot free it ...
        assert read(ctx, pid)[1] == taker.holder          # ... the new holder keeps it
    finally:
        taker.release()


def test_claim_conditions_and_values(ctx):
    pid = new_project(ctx)
    assert not lease(ctx, pid, 5).claim(Project.generation > 100)
    held = lease(ctx, pid, 5)
    assert held.claim(Project.generation >= 0, answers_since_retrain=7)
    held.release()
    with ctx.store.session() as s:
        assert s.get(Project, pid).answers_since_retrain == 7
