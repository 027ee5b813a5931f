"""``cincer-service worker`` and ``cincer-service beat``: the Celery processes of production
mode (plugged into the core CLI).

A cluster runs any number of ``worker`` processes and exactly one ``beat`` (the periodic
``reconcile``), each as its own process so that a supervisor (compose, systemd,
``deploy/local-cluster.sh``) starts, stops and restarts them one by one. ``worker --beat``
embeds beat in a worker (as a child process of that worker): meant for the single-worker
case only, since a second ``--beat`` worker, or a restart while the old worker's beat child
lives on, would send every ``reconcile`` twice.
"""
from __future__ import annotations

import os

from cincer_service.cli import UsageError
from cincer_service.device import QUIET_ENV
from cincer_service.service.jobs import QUEUES

POOLS = ("prefork", "solo", "threads")
LOGLEVELS = ("debug", "info", "warning", "error", "critical")


def register(subparsers) -> None:
    """Add the ``worker`` and ``beat`` commands to the ``cincer-service`` parser."""
    parser = subparsers.add_parser(
        "worker", help="run a Celery worker (needs CINCER_REDIS_URL)",
        description="Run a Celery worker for the labeling service. Configuration comes from "
                    "the CINCER_* environment (CINCER_REDIS_URL, CINCER_DATABASE_URL, ...). "
                    "A cluster also needs exactly one `cincer-service beat`.")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="job processes/threads in this worker (default 1)")
    parser.add_argument("--beat", action="store_true",
                        help="also run Celery beat (the periodic reconciler) inside this "
                             "worker: for a single-worker setup only; a cluster runs "
                             "`cincer-service beat` as its own process instead")
    parser.add_argument("--loglevel", default="info", choices=LOGLEVELS)
    parser.add_argument("--pool", choices=POOLS, default="prefork")
    parser.add_argument("--queues", default=",".join(QUEUES),
                        help="comma-separated queues to consume: 'compute' (counter-examples, "
                             "screening, retrains: a GPU host), 'background' (audits, "
                             "overviews, webhooks, the reconciler: CPU hosts); default both")
    parser.add_argument("--hostname", default=None,
                        help="node name (default cincer-<pid>@<host>, unique per process)")
    parser.set_defaults(func=run_worker)

    beat = subparsers.add_parser(
        "beat", help="run Celery beat, the periodic reconciler (needs CINCER_REDIS_URL)",
        description="Run Celery beat alone: it sends the `reconcile` job every "
                    "CINCER_RECONCILE_SECONDS (default 5) to the workers. Run exactly one per "
                    "cluster, as its own process.")
    beat.add_argument("--loglevel", default="info", choices=LOGLEVELS)
    beat.add_argument("--schedule", default=None,
                      help="beat's schedule file (default "
                           "$CINCER_DATA_DIR/celerybeat-schedule)")
    beat.add_argument("--pidfile", default=None,
                      help="write the process id here (Celery refuses to start while the "
                           "file names a running process)")
    beat.set_defaults(func=run_beat)


def schedule_path(data_dir: str) -> str:
    """Where beat keeps its schedule (last run times) by default."""
    return os.path.join(data_dir, "celerybeat-schedule")


def worker_argv(args, data_dir: str) -> list[str]:
    """The ``celery worker`` command line for the parsed ``args``."""
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if not queues or unknown:
        raise UsageError(f"--queues takes a comma-separated list of {', '.join(QUEUES)} "
                         f"(got {args.queues!r})")
    argv = ["worker", f"--loglevel={args.loglevel.upper()}", f"--pool={args.pool}",
            f"--concurrency={args.concurrency}", f"--queues={','.join(queues)}",
            f"--hostname={args.hostname or f'cincer-{os.getpid()}@%h'}"]
    if args.beat:
        argv += ["--beat", f"--schedule={schedule_path(data_dir)}"]
    return argv


def beat_argv(args, data_dir: str) -> list[str]:
    """The ``celery beat`` command line for the parsed ``args``."""
    argv = ["beat", f"--loglevel={args.loglevel.upper()}",
            f"--schedule={args.schedule or schedule_path(data_dir)}"]
    if args.pidfile:
        argv.append(f"--pidfile={args.pidfile}")
    return argv


def _require_broker() -> None:
    if not os.environ.get("CINCER_REDIS_URL"):
        raise UsageError("CINCER_REDIS_URL is not set: set it to the Redis broker, e.g. "
                         "CINCER_REDIS_URL=redis://127.0.0.1:6379/0 (and CINCER_DATABASE_URL "
                         "to the shared database). Without Redis, `cincer-service serve` runs "
                         "background jobs in-process and needs no worker.")


def _data_dir() -> str:
    from cincer_service.service import Settings
    settings = Settings.from_env()
    os.makedirs(settings.data_dir, exist_ok=True)
    return settings.data_dir


def run_worker(args) -> int:
    _require_broker()
    for name, value in QUIET_ENV.items():     # the pool's children import TensorFlow
        os.environ.setdefault(name, value)
    argv = worker_argv(args, _data_dir())
    from .worker import celery_app  # builds the Flask app and the service
    celery_app.worker_main(argv)
    return 0


def run_beat(args) -> int:
    _require_broker()
    argv = beat_argv(args, _data_dir())
    from .worker import celery_app  # the same app (and beat_schedule) the workers use
    celery_app.start(argv)
    return 0
