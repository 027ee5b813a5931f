"""``cincer-service worker``: a Celery worker for production mode (plugged into the core CLI)."""
from __future__ import annotations

import os

from cincer_service.cli import UsageError

POOLS = ("prefork", "solo", "threads")


def register(subparsers) -> None:
    """Add the ``worker`` command to the ``cincer-service`` parser."""
    parser = subparsers.add_parser(
        "worker", help="run a Celery worker (needs CINCER_REDIS_URL)",
        description="Run a Celery worker for the labeling service. Configuration comes from "
                    "the CINCER_* environment (CINCER_REDIS_URL, CINCER_DATABASE_URL, ...).")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="job processes/threads in this worker (default 1)")
    parser.add_argument("--beat", action="store_true",
                        help="also run Celery beat (the periodic reconciler); exactly one "
                             "worker of a cluster should")
    parser.add_argument("--loglevel", default="info",
                        choices=("debug", "info", "warning", "error", "critical"))
    parser.add_argument("--pool", choices=POOLS, default="prefork")
    parser.add_argument("--hostname", default=None,
                        help="node name (default cincer-<pid>@<host>, unique per process)")
    parser.set_defaults(func=run_worker)


def worker_argv(args, data_dir: str) -> list[str]:
    """The ``celery worker`` command line for the parsed ``args``."""
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    argv = ["worker", f"--loglevel={args.loglevel.upper()}", f"--pool={args.pool}",
            f"--concurrency={args.concurrency}",
            f"--hostname={args.hostname or f'cincer-{os.getpid()}@%h'}"]
    if args.beat:
        argv += ["--beat", f"--schedule={os.path.join(data_dir, 'celerybeat-schedule')}"]
    return argv


def run_worker(args) -> int:
    if not os.environ.get("CINCER_REDIS_URL"):
        raise UsageError("CINCER_REDIS_URL is not set: set it to the Redis broker, e.g. "
                         "CINCER_REDIS_URL=redis://127.0.0.1:6379/0 (and CINCER_DATABASE_URL "
                         "to the shared database). Without Redis, `cincer-service serve` runs "
                         "background jobs in-process and needs no worker.")
    from cincer_service.service import Settings
    settings = Settings.from_env()
    os.makedirs(settings.data_dir, exist_ok=True)
    argv = worker_argv(args, settings.data_dir)
    from .worker import celery_app       # builds the Flask app and the service
    celery_app.worker_main(argv)
    return 0
