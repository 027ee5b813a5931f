"""The Celery adapter: the app factory, the dispatcher, the "already queued" marker and
the worker's registration, all derived from the service's job table
(``cincer_service.service.jobs.JOBS``).

``celery_init_app(app)`` is the pallets ``examples/celery`` pattern: tasks run inside the
Flask app context. The API reaches it through the ``cincer_service.background`` entry
point (``api`` never imports ``tasks``); ``tasks/worker.py`` calls it directly. Each job's
task goes to its job's queue (``compute`` or ``background``), so a GPU host runs
``cincer-service worker --queues compute`` and CPU hosts ``--queues background``.

Project affinity (``cincer_service.service.affinity``): a compute worker also consumes its own
queue ``compute.<hostname>``, and the dispatcher sends a project's compute jobs to the queue of
the project's owner among the live compute workers (rendezvous hashing), so one worker keeps
its state and builds its Fisher factor once per model version. ``CINCER_AFFINITY=0`` sends
every compute job to the shared ``compute`` queue instead.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time

import redis
from celery import Celery, Task
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from cincer_service.service import affinity, runner, workers
from cincer_service.service.dispatch import Dispatcher
from cincer_service.service.jobs import (
    COMPUTE,
    JOBS,
    PRIORITIES,
    QUEUES,
    RECONCILE,
    Submission,
    task_routes,
)

log = logging.getLogger(__name__)

# How long a "this job is already queued" marker lives in Redis. Past it a job may be sent
# twice, which is harmless (jobs are idempotent); it only bounds the cost of a lost message.
QUEUED_MARKER_SECONDS = 120
# Broker calls made while answering a request wait at most this long (then the reconciler
# sends the job: the work is in the database).
BROKER_TIMEOUT_SECONDS = 2.0


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
        # KiB; a pool process past it is replaced after its task (Settings.worker_max_memory_mb)
        worker_max_memory_per_child=int(settings.worker_max_memory_mb * 1024) or None,
        task_ignore_result=True,             # outcomes live in the database
        result_expires=3600,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0,
                                   "interval_step": 0.2, "interval_max": 0.5},
        broker_connection_retry_on_startup=True,
        # One Redis list per priority level (jobs.PRIORITIES), read highest first.
        broker_transport_options={"priority_steps": sorted(set(PRIORITIES.values())),
                                  "queue_order_strategy": "priority"},
        worker_hijack_root_logger=False,
        task_routes=task_routes(),
        task_default_queue=RECONCILE.queue,
        beat_schedule={"reconcile": {"task": RECONCILE.task_name,
                                     "schedule": float(settings.reconcile_seconds),
                                     "options": {"expires": float(settings.reconcile_seconds),
                                                 "priority": RECONCILE.priority}}},
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
    router = None
    if affinity_enabled():
        router = affinity.Router(ctx.store, members=lambda: compute_members(ctx))
    ctx.set_dispatcher(CeleryDispatcher(celery_app, router))

    @worker_process_init.connect(weak=False)
    def _fresh_connections(**_):
        # A forked pool process must not share the parent's pooled database connections.
        ctx.store.engine.dispose(close=False)

    heartbeat = {}

    @worker_ready.connect(weak=False)
    def _register(sender=None, **_):
        name = getattr(sender, "hostname", None) or f"celery-{os.getpid()}"
        queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None \
            else list(QUEUES)
        if COMPUTE in queues and sender is not None and affinity_enabled():
            # this worker's projects' compute jobs (not listed: it is implied by compute)
            sender.add_task_queue(affinity.worker_queue(name))
        heartbeat["name"] = name
        # The device is read in a child process: TensorFlow must not initialise in the
        # worker's main process, whose pool children are forked from it.
        threading.Thread(target=_register_worker, args=(ctx, name, queues, heartbeat),
                         name="cincer-register", daemon=True).start()
        if COMPUTE in queues and affinity_enabled():
            threading.Thread(target=_announce_forever, args=(ctx, name, heartbeat),
                             name="cincer-membership", daemon=True).start()
        threading.Thread(target=_reconcile_forever, args=(ctx, heartbeat),
                         name="cincer-reconciler", daemon=True).start()

    @worker_shutdown.connect(weak=False)
    def _stop_heartbeat(**_):
        heartbeat.setdefault("stop", threading.Event()).set()
        heartbeat.setdefault("stop_reconciler", threading.Event()).set()
        heartbeat.setdefault("stop_membership", threading.Event()).set()
        if heartbeat.get("name"):
            try:           # its projects move now, not when its membership expires
                redis_client(ctx.settings.redis_url).delete(member_key(heartbeat["name"]))
                affinity.retire(ctx.store, heartbeat["name"])
            except Exception:
                log.warning("could not retire worker %s", heartbeat["name"], exc_info=True)

    return celery_app


def affinity_enabled() -> bool:
    """Project affinity is on unless ``CINCER_AFFINITY=0``."""
    return os.environ.get("CINCER_AFFINITY", "1") != "0"


# Compute workers renew their key in this Redis membership every MEMBER_BEAT_SECONDS; a key
# lives MEMBER_TTL_SECONDS, so a worker that stops renewing (killed) leaves within that.
MEMBER_PREFIX = "cincer:member:compute:"
MEMBER_BEAT_SECONDS = 1.0
MEMBER_TTL_SECONDS = 5


def member_key(name: str) -> str:
    return MEMBER_PREFIX + name


def _announce_forever(ctx, name: str, state: dict) -> None:
    """Keep this compute worker in the Redis membership until it stops."""
    stop = state.setdefault("stop_membership", threading.Event())
    while True:
        try:
            redis_client(ctx.settings.redis_url).set(member_key(name), 1, ex=MEMBER_TTL_SECONDS)
        except redis.RedisError:
            pass                               # no broker: no jobs reach anyone either
        if stop.wait(MEMBER_BEAT_SECONDS):
            return


def compute_members(ctx) -> list[str]:
    """The live compute workers: the Redis membership, or the workers table without Redis."""
    try:
        client = redis_client(ctx.settings.redis_url)
        return sorted(k.decode()[len(MEMBER_PREFIX):]
                      for k in client.scan_iter(match=MEMBER_PREFIX + "*", count=1000))
    except redis.RedisError:
        return affinity.live_compute_workers(ctx.store)


def _register_worker(ctx, name: str, queues: list, heartbeat: dict) -> None:
    device = detect_device()
    view = workers.register_worker(ctx, name, queues, device)
    heartbeat["stop"] = workers.start_heartbeat(ctx, name)
    print(f"cincer worker {name}: queues {', '.join(view['queues'])}; {device['summary']}",
          flush=True)


RECONCILE_LOCK = "cincer:reconcile-lock"


def _reconcile_forever(ctx, state: dict) -> None:
    """The worker main process's reconciler: every ``reconcile_seconds`` one worker of the
    cluster (a short Redis lock picks it) re-submits unfinished work, however deep the
    queues are; beat's ``reconcile`` messages only add to it."""
    stop = state.setdefault("stop_reconciler", threading.Event())
    interval = float(ctx.settings.reconcile_seconds)
    lock_ms = max(1, int(interval * 1000 * 0.9))
    while not stop.wait(interval):
        try:
            client = redis_client(ctx.settings.redis_url)
            if not client.set(RECONCILE_LOCK, os.getpid(), nx=True, px=lock_ms):
                continue                       # another worker reconciles this round
        except redis.RedisError:
            pass                               # no broker: reconcile anyway, sends wait
        try:
            submitted = runner.reconcile(ctx)
            if submitted:
                log.info("reconciled: %s", submitted)
        except Exception:                      # the database is away: next round
            log.warning("reconcile failed", exc_info=True)


def detect_device() -> dict:
    """``cincer_service.device.describe_device()`` run in a child process."""
    code = ("import json; from cincer_service.device import quiet_tensorflow, describe_device;"
            " quiet_tensorflow(); print(json.dumps(describe_device()))")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError) as exc:
        log.warning("could not read the device: %s", exc)
        return {"device": "CPU", "name": None, "summary": "device: unknown (assumed CPU)"}


class CeleryDispatcher(Dispatcher):
    """Sends each job to its queue on the Celery workers; ``submit`` never waits for the
    broker.

    Submissions go to an in-process queue that one sender thread (per process: a forked
    pool child starts its own) drains into Redis, so a request answers in the time it takes
    to append to a list even while Redis hangs. A submission the sender cannot deliver
    (broker down, ``MAX_WAITING`` reached) is dropped and logged: the work is in the
    database and the reconciler sends it again. A job already waiting in the broker is not
    sent again (a short-lived marker in Redis, cleared when the task starts), so the
    reconciler's repeated submissions and bursts of ingests do not pile up duplicates.
    """

    MAX_WAITING = 10_000

    def __init__(self, celery_app: Celery, router: "affinity.Router | None" = None):
        self.celery_app = celery_app
        self.router = router
        self._lock = threading.Lock()
        self._owner_pid = None
        self._waiting: queue.Queue | None = None
        self.dropped = 0

    def submit(self, submission: Submission) -> None:
        job = submission.job
        if JOBS.get(job.name) is not job:
            raise ValueError(f"unknown job {job!r}")
        try:
            self._sender_queue().put_nowait(submission)
        except queue.Full:
            self.dropped += 1
            log.warning("%s not sent: %d submissions wait for the broker; the reconciler "
                        "will send it", submission, self.MAX_WAITING)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submission so far reached the broker (or was dropped); False
        when ``timeout`` seconds passed first."""
        waiting, deadline = self._waiting, time.monotonic() + timeout
        while waiting is not None and waiting.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _sender_queue(self) -> queue.Queue:
        with self._lock:
            if self._owner_pid != os.getpid():       # first use, or a forked child
                self._waiting = queue.Queue(self.MAX_WAITING)
                self._owner_pid = os.getpid()
                threading.Thread(target=self._send_forever, args=(self._waiting,),
                                 name="cincer-celery-sender", daemon=True).start()
            return self._waiting

    def _send_forever(self, waiting: queue.Queue) -> None:
        while True:
            submission = waiting.get()
            try:
                self._send(submission)
            except Exception as exc:          # the broker is away: the reconciler resends
                self.dropped += 1
                log.warning("could not send %s (%s); the reconciler will", submission, exc)
            finally:
                waiting.task_done()

    def queue_for(self, submission: Submission) -> str:
        """The queue ``submission`` goes to: its project owner's (affinity) or its job's."""
        if self.router is None:
            return submission.job.queue
        try:
            return self.router.queue_for(submission)
        except Exception:        # the database is away: any compute worker will do
            log.warning("no affinity for %s", submission, exc_info=True)
            return submission.job.queue

    def _send(self, submission: Submission) -> None:
        job = submission.job
        queue = self.queue_for(submission)
        if job is not RECONCILE and not self._mark_queued(submission, queue):
            log.debug("%s already queued", submission)
            return
        self.celery_app.send_task(job.task_name, args=list(submission.values),
                                  queue=queue, ignore_result=True, priority=job.priority)

    def _mark_queued(self, submission: Submission, queue: str | None = None) -> bool:
        """True when no identical job is waiting in ``queue`` (and marks this one as
        waiting there). A job waiting in another queue (an owner that has gone since) is
        sent again, to ``queue``."""
        queue = queue or submission.job.queue
        try:
            client = redis_client(self.celery_app.conf.broker_url)
            if client.set(submission.marker(), queue, nx=True, ex=QUEUED_MARKER_SECONDS):
                return True
            waiting = client.get(submission.marker())
            if waiting is not None and waiting.decode() != queue:
                client.set(submission.marker(), queue, ex=QUEUED_MARKER_SECONDS)
                return True
            return False
        except redis.RedisError:
            return True          # cannot tell: sending twice is harmless


def clear_queued(celery_app, submission: Submission) -> None:
    """Called by a task as it starts: a later submission of the same job is queued again."""
    try:
        redis_client(celery_app.conf.broker_url).delete(submission.marker())
    except redis.RedisError:
        pass


_redis_clients: dict = {}


def redis_client(url: str):
    """One Redis client (with its own small connection pool) per broker URL and process."""
    client = _redis_clients.get(url)
    if client is None:
        client = _redis_clients[url] = redis.Redis.from_url(
            url, socket_timeout=BROKER_TIMEOUT_SECONDS,
            socket_connect_timeout=BROKER_TIMEOUT_SECONDS)
    return client
