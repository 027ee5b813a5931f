"""Job priorities: what a person waits for runs before bulk work, in the broker's order."""
from types import SimpleNamespace

from cincer_service.service import Settings, jobs
from tasks import celery_app as adapter


def test_interactive_jobs_outrank_bulk_work():
    assert jobs.COUNTEREXAMPLE.priority < jobs.SCREEN.priority < jobs.RETRAIN.priority
    assert jobs.RECONCILE.priority == min(jobs.PRIORITIES.values())
    assert {job.priority for job in jobs.JOBS.values()} <= set(jobs.PRIORITIES.values())


def test_the_broker_reads_the_levels_highest_first():
    conf = adapter.make_celery(Settings(redis_url="redis://127.0.0.1:1/0")).conf
    options = conf.broker_transport_options
    assert options["queue_order_strategy"] == "priority"
    assert options["priority_steps"] == sorted(set(jobs.PRIORITIES.values()))
    assert conf.beat_schedule["reconcile"]["options"]["priority"] == jobs.RECONCILE.priority


def test_each_job_is_sent_with_its_priority(monkeypatch):
    sent = []
    app = SimpleNamespace(conf=SimpleNamespace(broker_url="redis://unused"),
                          send_task=lambda name, **kw: sent.append((name, kw["priority"])))
    dispatcher = adapter.CeleryDispatcher(app)
    monkeypatch.setattr(dispatcher, "_mark_queued", lambda submission, queue=None: True)
    for submission in (jobs.COUNTEREXAMPLE(7), jobs.SCREEN(1), jobs.RETRAIN(1)):
        dispatcher._send(submission)
    assert sent == [(jobs.COUNTEREXAMPLE.task_name, 0), (jobs.SCREEN.task_name, 5),
                    (jobs.RETRAIN.task_name, 9)]
