"""``/projects/<pid>/audits``."""
from __future__ import annotations

from cincer_service.service import audits

from ..auth import requires
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import (
    AuditCreateSchema,
    AuditEnqueuedSchema,
    AuditEnqueueSchema,
    AuditListArgsSchema,
    AuditPageSchema,
    AuditSchema,
)

blp = Blueprint("audits", __name__, url_prefix="/projects/<int:pid>/audits",
                description="Offline audits: score the training set, queue top suspects.")


@blp.route("", methods=["POST"])
@requires("admin")
@blp.arguments(AuditCreateSchema)
@blp.response(202, AuditSchema)
def create_audit(body, pid):
    """Queue an audit of the training set with the given detectors."""
    return audits.create_audit(get_context(), pid, body["detectors"], body["top_k"])


@blp.route("/<int:aid>", methods=["GET"])
@requires()
@blp.response(200, AuditSchema)
def get_audit(pid, aid):
    """An audit's status, progress and, when done, its ranked suspects."""
    return audits.get_audit(get_context(), pid, aid)


@blp.route("/<int:aid>/enqueue", methods=["POST"])
@requires("admin")
@blp.arguments(AuditEnqueueSchema)
@blp.response(200, AuditEnqueuedSchema)
def enqueue_audit(body, pid, aid):
    """Turn a finished audit's top suspects into review queries."""
    return audits.enqueue_audit(get_context(), pid, aid, body.get("top_k"))


@blp.route("", methods=["GET"])
@requires()
@blp.arguments(AuditListArgsSchema, location="query")
@blp.response(200, AuditPageSchema)
def list_audits(args, pid):
    """One page of the project's audits, newest first."""
    return audits.list_audits(get_context(), pid, offset=args["offset"], limit=args["limit"])
