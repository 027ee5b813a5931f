"""gunicorn settings for the API in production mode.

    CINCER_REDIS_URL=redis://127.0.0.1:6379/0 CINCER_DATABASE_URL=postgresql://... \
        gunicorn -c deploy/gunicorn.conf.py

Environment: ``CINCER_BIND`` (default ``127.0.0.1:8000``), ``CINCER_API_WORKERS`` (or
gunicorn's ``WEB_CONCURRENCY``; default 2), ``CINCER_API_THREADS`` (default 4),
``CINCER_API_TIMEOUT`` (default 60 s). Background work belongs to Celery workers
(``cincer-service worker``); without ``CINCER_REDIS_URL`` every gunicorn worker would run its
own in-process job thread, which works but is what ``cincer-service serve`` is for.
"""
import os
import subprocess
import sys

wsgi_app = "api:create_app()"
bind = os.environ.get("CINCER_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("CINCER_API_WORKERS", os.environ.get("WEB_CONCURRENCY", "2")))
worker_class = "gthread"
threads = int(os.environ.get("CINCER_API_THREADS", "4"))
timeout = int(os.environ.get("CINCER_API_TIMEOUT", "60"))
graceful_timeout = 30          # in-flight requests finish on SIGTERM
keepalive = 5
# Each worker builds its own app: database connections and TensorFlow state never cross a fork.
preload_app = False
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("CINCER_LOG_LEVEL", "info")
proc_name = "cincer-api"
# gunicorn >= 24 opens a control socket at one fixed path per user; several servers on one
# machine (tests, the local cluster) would fight over it, and nothing here uses it.
control_socket_disable = True


def on_starting(server):
    """Migrate the database once, in a child process, before the workers start (so they do
    not race to create the schema, and the master never imports TensorFlow)."""
    if not os.environ.get("CINCER_REDIS_URL"):
        server.log.warning("CINCER_REDIS_URL is not set: each API worker runs background jobs "
                           "in-process (embedded mode); start Redis and `cincer-service "
                           "worker` for production")
    migrate = ("from cincer_service.service import Settings, build_context; "
               "build_context(Settings.from_env())")
    subprocess.run([sys.executable, "-c", migrate], check=True)
