"""Background work for the API process: Celery on Redis, or the embedded worker thread.

With ``CINCER_REDIS_URL`` set, ``celery_init_app`` creates the Celery app (the pallets
``examples/celery`` pattern: tasks run inside the Flask app context) and a
``CeleryDispatcher`` sends each job to the workers by its task name
(``cincer_service.service.jobs.TASK_NAMES``). The tasks themselves live in ``tasks/``; only
the worker entry module (``tasks/worker.py``) imports both packages.
"""
from __future__ import annotations

import logging

from celery import Celery, Task
from celery.signals import worker_process_init

from cincer_service.service.dispatch import Dispatcher
from cincer_service.service.jobs import TASK_NAMES, queued_marker

log = logging.getLogger(__name__)

# How long a "this job is already queued" marker lives in Redis. Past it a job may be sent
# twice, which is harmless (jobs are idempotent); it only bounds the cost of a lost message.
QUEUED_MARKER_SECONDS = 120


def make_celery(settings, name: str = "cincer", task_cls=None) -> Celery:
    """A Celery app configured from the service ``settings`` (``redis_url`` required)."""
    if not settings.redis_url:
        raise ValueError("Celery needs a broker: set CINCER_REDIS_URL "
                         "(e.g. redis://127.0.0.1:6379/0)")
    celery_app = Celery(name, task_cls=task_cls or "celery.app.task:Task")
    celery_app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,                 # a job killed mid-way is redelivered ...
        task_reject_on_worker_lost=True,     # ... also when its worker process dies
        worker_prefetch_multiplier=1,        # long jobs: never hoard messages
        task_ignore_result=True,             # outcomes live in the database
        result_expires=3600,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.2, "interval_max": 0.5},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={"reconcile": {"task": TASK_NAMES["reconcile"],
                                     "schedule": float(settings.reconcile_seconds),
                                     "options": {"expires": float(settings.reconcile_seconds)}}},
        include=["tasks.jobs"],
    )
    return celery_app


def celery_init_app(app) -> Celery:
    """Create the Celery app for the Flask ``app`` and plug it into the service context.

    ``app.extensions["cincer"]`` must hold the ``ServiceContext``; its settings give the
    broker. The Celery app is kept in ``app.extensions["celery"]`` and a ``CeleryDispatcher``
    becomes the context's dispatcher.
    """
    ctx = app.extensions["cincer"]

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = make_celery(ctx.settings, name=app.name, task_cls=FlaskTask)
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    ctx.set_dispatcher(CeleryDispatcher(celery_app))

    @worker_process_init.connect(weak=False)
    def _fresh_connections(**_):
        # A forked pool process must not share the parent's pooled database connections.
        ctx.store.engine.dispose(close=False)

    return celery_app


class CeleryDispatcher(Dispatcher):
    """Sends each job to the Celery workers; never waits for it to run.

    A job already waiting in the queue is not sent again (a short-lived marker in Redis,
    cleared when the task starts), so the reconciler's repeated submissions and bursts of
    ingests do not pile up duplicate messages behind a long retrain.
    """

    def __init__(self, celery_app: Celery):
        self.celery_app = celery_app

    def submit(self, name: str, arg=None) -> None:
        if name not in TASK_NAMES:
            raise ValueError(f"unknown job {name!r}")
        if name != "reconcile" and not self._mark_queued(name, arg):
            log.debug("%s(%s) already queued", name, arg)
            return
        args = () if name == "reconcile" else (arg,)
        self.celery_app.send_task(TASK_NAMES[name], args=args, ignore_result=True)

    def _mark_queued(self, name: str, arg) -> bool:
        """True when no identical job is waiting (and marks this one as waiting)."""
        import redis
        try:
            return bool(redis_client(self.celery_app.conf.broker_url).set(
                queued_marker(name, arg), 1, nx=True, ex=QUEUED_MARKER_SECONDS))
        except redis.RedisError:
            return True          # cannot tell: sending twice is harmless


_redis_clients: dict = {}


def redis_client(url: str):
    """One Redis client (with its own small connection pool) per broker URL and process."""
    import redis
    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients[url] = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2)
    return client
