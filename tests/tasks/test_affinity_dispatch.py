"""The Celery dispatcher with project affinity: a project's compute jobs go to its owner's
queue, a job already waiting there is not sent twice, and when the owner stops the same job
is sent again to the new owner (what the reconciler relies on: nothing is lost)."""
from types import SimpleNamespace

from cincer_service.service import affinity, jobs, workers
from tasks import celery_app as adapter
from tests.support.service import make_context

CPU = {"device": "CPU", "name": None}


class FakeRedis:
    """``set(nx, ex)``, ``get`` and ``delete``: what the dispatcher's marker uses."""

    def __init__(self):
        self.data = {}

    def set(self, key, value, nx=False, ex=None):
        if nx and key in self.data:
            return None
        self.data[key] = str(value).encode()
        return True

    def get(self, key):
        return self.data.get(key)

    def delete(self, key):
        self.data.pop(key, None)

    def scan_iter(self, match, count=None):
        return [k.encode() for k in self.data if k.startswith(match.rstrip("*"))]


def test_compute_jobs_follow_their_project_owner(tmp_path, monkeypatch):
    fake = FakeRedis()
    monkeypatch.setattr(adapter, "redis_client", lambda url: fake)
    sent = []
    app = SimpleNamespace(conf=SimpleNamespace(broker_url="redis://unused"),
                          send_task=lambda name, args, queue, ignore_result, priority:
                          sent.append((name, tuple(args), queue)))
    ctx = make_context(tmp_path, dispatcher=None)
    for name in ("w1", "w2", "w3"):
        workers.register_worker(ctx, name, ["compute", f"compute.{name}"], CPU)
    router = affinity.Router(ctx.store)
    dispatcher = adapter.CeleryDispatcher(app, router)

    pid = 5
    dispatcher._send(jobs.SCREEN(pid))
    dispatcher._send(jobs.SCREEN(pid))                 # already waiting: not sent again
    dispatcher._send(jobs.OVERVIEW(pid))
    owner = affinity.owner(pid, ["w1", "w2", "w3"])
    assert sent == [("tasks.screen", (pid,), f"compute.{owner}"),
                    ("tasks.overview", (pid,), "background")]

    affinity.retire(ctx.store, owner)                   # the owner stops
    router.forget_members()
    dispatcher._send(jobs.SCREEN(pid))                 # the reconciler's resubmission
    new_owner = affinity.owner(pid, sorted({"w1", "w2", "w3"} - {owner}))
    assert sent[-1] == ("tasks.screen", (pid,), f"compute.{new_owner}")
    adapter.clear_queued(app, jobs.SCREEN(pid))         # the task started on the new owner
    dispatcher._send(jobs.SCREEN(pid))
    assert len(sent) == 4 and sent[-1][2] == f"compute.{new_owner}"

    # without a router every compute job goes to the shared queue
    plain = adapter.CeleryDispatcher(app)
    fake.data.clear()
    plain._send(jobs.RETRAIN(pid))
    assert sent[-1] == ("tasks.retrain", (pid,), "compute")


def test_membership_is_the_redis_set_with_the_workers_table_as_fallback(tmp_path, monkeypatch):
    import redis
    ctx = make_context(tmp_path, dispatcher=None)
    ctx.settings.redis_url = "redis://unused"
    fake = FakeRedis()
    monkeypatch.setattr(adapter, "redis_client", lambda url: fake)
    fake.set(adapter.member_key("w2"), 1, ex=adapter.MEMBER_TTL_SECONDS)
    fake.set(adapter.member_key("w1"), 1, ex=adapter.MEMBER_TTL_SECONDS)
    fake.set("cincer:queued:screen:1", "compute.w1")
    assert adapter.compute_members(ctx) == ["w1", "w2"]
    fake.delete(adapter.member_key("w2"))           # expired: a killed worker
    assert adapter.compute_members(ctx) == ["w1"]

    def broken(url):
        raise redis.ConnectionError("down")
    monkeypatch.setattr(adapter, "redis_client", broken)
    workers.register_worker(ctx, "w3", ["compute"], CPU)
    assert adapter.compute_members(ctx) == ["w3"]
