"""The Celery tasks of the labeling service (``tasks.jobs``) and the worker command.

Production mode (``CINCER_REDIS_URL`` set) runs background jobs on Celery workers with Redis
as broker. Each task is a thin wrapper that calls ``cincer_service.service.jobs.run_job``
inside the Flask app context; the Celery app itself is configured by the API's app factory
(``api.background.celery_init_app``) and joined to these tasks only in ``tasks/worker.py``.
The database stays the source of truth, so a lost message only waits for ``reconcile``.
"""
