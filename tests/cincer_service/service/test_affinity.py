"""Project affinity: rendezvous owners over the live compute workers; a project moves when
its worker stops (retired, or its heartbeat too old) and only the stopped worker's do."""
from datetime import timedelta

from sqlalchemy import update

from cincer_service.service import affinity, jobs, workers
from cincer_service.service.store import Worker, utcnow
from tests.support.service import make_context

CPU = {"device": "CPU", "name": None}


def test_rendezvous_moves_only_the_projects_of_a_stopped_or_joining_worker():
    names = ["w1", "w2", "w3"]
    before = {p: affinity.owner(p, names) for p in range(3000)}
    counts = {n: sum(o == n for o in before.values()) for n in names}
    assert all(800 < c < 1200 for c in counts.values())          # balanced
    after = {p: affinity.owner(p, ["w1", "w3"]) for p in range(3000)}
    moved = [p for p in before if before[p] != after[p]]
    assert moved and all(before[p] == "w2" for p in moved)        # only w2's projects
    joined = {p: affinity.owner(p, names + ["w4"]) for p in range(3000)}
    taken = [p for p in before if joined[p] != before[p]]
    assert all(joined[p] == "w4" for p in taken) and 600 < len(taken) < 900
    assert affinity.owner(7, []) is None


def test_router_moves_a_project_when_its_worker_stops(tmp_path):
    ctx = make_context(tmp_path, dispatcher=None)
    for name in ("w1", "w2", "w3"):
        workers.register_worker(ctx, name, ["compute", "background", f"compute.{name}"], CPU)
    workers.register_worker(ctx, "cpu", ["background"], CPU)
    router = affinity.Router(ctx.store)
    assert router.members() == ["w1", "w2", "w3"]
    queues = {pid: router.queue_for(jobs.SCREEN(pid)) for pid in range(1, 40)}
    assert set(queues.values()) == {"compute.w1", "compute.w2", "compute.w3"}
    assert router.queue_for(jobs.OVERVIEW(1)) == "background"
    pid = 1
    first = queues[pid].split(".", 1)[1]
    assert router.queue_for(jobs.RETRAIN(pid)) == queues[pid]        # every compute job

    affinity.retire(ctx.store, first)                 # its worker stops
    router.forget_members()
    moved = router.queue_for(jobs.SCREEN(pid))
    assert moved != queues[pid] and moved.startswith("compute.")
    for other, queue in queues.items():               # the others' projects stay
        if queue != f"compute.{first}":
            assert router.queue_for(jobs.SCREEN(other)) == queue

    # a worker whose heartbeat grew old is gone too; none left: the shared queue
    with ctx.store.session() as s:
        s.execute(update(Worker).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    router.forget_members()
    assert router.queue_for(jobs.SCREEN(pid)) == "compute"
    workers.register_worker(ctx, first, ["compute"], CPU)            # it comes back
    router.forget_members()
    assert router.queue_for(jobs.SCREEN(pid)) == queues[pid]
