"""Service configuration, read from the environment in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass
class Settings:
    """Where data lives and how the service behaves; every field has a ``CINCER_*`` variable."""

    data_dir: str = "cincer-data"
    database_url: str | None = None         # None: SQLite file in data_dir
    redis_url: str | None = None            # None: embedded mode (in-process worker)
    admin_token: str | None = None
    max_batch: int = 1000
    max_page: int = 500
    lease_seconds: float = 300.0            # an annotator's hold on a query
    # A worker renews its retrain/audit lease every third of this while it works, so a
    # killed worker's job is taken over this long after it died.
    retrain_lease_seconds: float = 15.0
    reconcile_seconds: float = 5.0
    screen_batch: int = 512
    # The per-process model cache (classifiers and model states), bounded by bytes.
    model_cache_mb: float = 512.0
    # A Celery pool process whose peak RSS passed this is replaced once its task is done (0:
    # never). TensorFlow keeps about 7 MiB of graphs from every training in the process, so
    # a worker that trains thousands of small projects would otherwise grow without bound.
    worker_max_memory_mb: float = 2048.0

    ENV = {"data_dir": "CINCER_DATA_DIR", "database_url": "CINCER_DATABASE_URL",
           "redis_url": "CINCER_REDIS_URL", "admin_token": "CINCER_ADMIN_TOKEN",
           "max_batch": "CINCER_MAX_BATCH", "max_page": "CINCER_MAX_PAGE",
           "lease_seconds": "CINCER_LEASE_SECONDS",
           "retrain_lease_seconds": "CINCER_RETRAIN_LEASE_SECONDS",
           "reconcile_seconds": "CINCER_RECONCILE_SECONDS",
           "screen_batch": "CINCER_SCREEN_BATCH",
           "model_cache_mb": "CINCER_MODEL_CACHE_MB",
           "worker_max_memory_mb": "CINCER_WORKER_MAX_MEMORY_MB"}

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Defaults, then ``CINCER_*`` variables, then explicit ``overrides`` (None = unset)."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = cls.ENV.get(f.name)
            if name and environ.get(name) not in (None, ""):
                kind = type(f.default) if f.default is not None else str
                values[f.name] = kind(environ[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def database(self) -> str:
        if self.database_url:
            return with_installed_driver(self.database_url)
        return f"sqlite:///{os.path.abspath(os.path.join(self.data_dir, 'cincer.db'))}"

    @property
    def mode(self) -> str:
        return "celery" if self.redis_url else "embedded"


def with_installed_driver(url: str) -> str:
    """Name the PostgreSQL driver we install (psycopg2) when the URL names none.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which is not a dependency.
    """
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare):]
    return url
