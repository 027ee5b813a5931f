"""``GET /healthz`` and ``GET /metrics`` (no token needed), ``GET /api/v1/workers``
(admin)."""
from __future__ import annotations

from flask import Response
from sqlalchemy import text

from cincer_service.service import reports, workers

from ..auth import requires
from ..config import API_PREFIX
from ..errors import ErrorSchema, Unavailable
from ..extensions import get_context, get_request_counter
from ..fields import Blueprint
from . import metrics
from .schemas import HealthSchema, WorkerSchema

blp = Blueprint("ops", __name__, description="Health and metrics.")


@blp.route("/healthz", methods=["GET"])
@blp.doc(security=[])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=ErrorSchema, description="the database does not answer")
def healthz():
    """The database answers; which mode (embedded or celery) the service runs in."""
    service = get_context()
    try:
        with service.store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise Unavailable("the database does not answer",
                          {"database": f"{type(exc).__name__}: {exc}"[:500]}) from exc
    return {"status": "ok", "mode": service.settings.mode,
            "database": service.store.engine.dialect.name,
            "broker": _broker_status(service.settings.redis_url)}


def _broker_status(redis_url: str | None) -> str | None:
    """Informational only: work waits in the database while the broker is away."""
    if not redis_url:
        return None
    import redis
    client = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
        return "ok"
    except redis.RedisError:
        return "unreachable"
    finally:
        client.close()


@blp.route("/metrics", methods=["GET"])
@blp.doc(security=[], responses={"200": {"description": "Prometheus text format",
                                         "content": {"text/plain": {"schema":
                                                                    {"type": "string"}}}}})
def prometheus_metrics():
    """Counts of examples and queries per status, model versions, jobs and requests."""
    body = metrics.render(reports.metrics(get_context()), get_request_counter().snapshot())
    return Response(body, content_type=metrics.CONTENT_TYPE)


@blp.route(f"{API_PREFIX}/workers", methods=["GET"])
@requires("admin")
@blp.response(200, WorkerSchema(many=True))
def list_workers():
    """The workers that run background jobs: queues, device (GPU or CPU), last heartbeat
    (admin token)."""
    return workers.list_workers(get_context())
