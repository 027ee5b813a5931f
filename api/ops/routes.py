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
    broker = _broker_status(service.settings.redis_url)
    return {"status": "degraded" if broker == "degraded" else "ok",
            "mode": service.settings.mode, "database": service.store.engine.dialect.name,
            "broker": broker}


# A broker that takes longer than this to answer a ping is reported as degraded.
BROKER_PING_SECONDS = 0.2


def _broker_status(redis_url: str | None) -> str | None:
    """``ok`` or ``degraded`` (down or hung: work waits in the database and the reconciler
    sends it once the broker is back); ``None`` in embedded mode."""
    if not redis_url:
        return None
    import redis
    client = redis.Redis.from_url(redis_url, socket_timeout=BROKER_PING_SECONDS,
                                  socket_connect_timeout=BROKER_PING_SECONDS)
    try:
        client.ping()
        return "ok"
    except redis.RedisError:
        return "degraded"
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
