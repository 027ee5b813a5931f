"""``/projects/<pid>/webhooks``: signed event receivers and their delivery logs."""
from __future__ import annotations

from cincer_service.service import webhooks

from ..auth import requires
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import (
    WebhookCreatedSchema,
    WebhookCreateSchema,
    WebhookDeliveryArgsSchema,
    WebhookDeliveryPageSchema,
    WebhookListSchema,
)

blp = Blueprint("webhooks", __name__, url_prefix="/projects/<int:pid>/webhooks",
                description="Signed event notifications (Standard Webhooks): endpoints and "
                            "their delivery logs. Admin only.")


@blp.route("", methods=["POST"])
@requires("admin")
@blp.arguments(WebhookCreateSchema)
@blp.response(201, WebhookCreatedSchema)
def create_endpoint(body, pid):
    """Register a receiver for the project's events; the signing secret is shown only in
    this answer."""
    return webhooks.create_endpoint(get_context(), pid, body["url"], body["events"])


@blp.route("", methods=["GET"])
@requires("admin")
@blp.response(200, WebhookListSchema)
def list_endpoints(pid):
    """The project's active endpoints (without their secrets)."""
    return {"items": webhooks.list_endpoints(get_context(), pid)}


@blp.route("/<int:wid>", methods=["DELETE"])
@requires("admin")
@blp.response(204)
def delete_endpoint(pid, wid):
    """Deactivate an endpoint: no new events, pending deliveries given up, log kept."""
    webhooks.delete_endpoint(get_context(), pid, wid)


@blp.route("/<int:wid>/deliveries", methods=["GET"])
@requires("admin")
@blp.arguments(WebhookDeliveryArgsSchema, location="query")
@blp.response(200, WebhookDeliveryPageSchema)
def list_deliveries(args, pid, wid):
    """One page of the endpoint's delivery log, newest first."""
    return webhooks.list_deliveries(get_context(), pid, wid, offset=args["offset"],
                                    limit=args["limit"])
