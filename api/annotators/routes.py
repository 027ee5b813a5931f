"""``/projects/<pid>/annotators``: who answers and how well; ``/projects/<pid>/gold``."""
from __future__ import annotations

from cincer_service.service import annotators

from ..auth import current_principal, requires
from ..errors import ErrorSchema
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import AnnotatorListSchema, AnnotatorSchema, GoldInSchema, GoldListSchema

blp = Blueprint("annotators", __name__, url_prefix="/projects/<int:pid>",
                description="Annotators (agreement, gold accuracy, confusion, flags) and "
                            "gold examples.")


@blp.route("/annotators", methods=["GET"])
@requires("admin", "viewer")
@blp.response(200, AnnotatorListSchema)
def list_annotators(pid):
    """Every annotator's record and the crowd's Krippendorff's alpha."""
    return annotators.list_annotators(get_context(), pid)


@blp.route("/annotators/<int:aid>/suspend", methods=["POST"])
@requires("admin")
@blp.response(200, AnnotatorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="already suspended")
def suspend(pid, aid):
    """Suspend an annotator: their leases and answers are refused (403); nothing of
    theirs is deleted."""
    return annotators.set_suspended(get_context(), pid, aid, True, current_principal().name)


@blp.route("/annotators/<int:aid>/restore", methods=["POST"])
@requires("admin")
@blp.response(200, AnnotatorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="not suspended")
def restore(pid, aid):
    """Restore a suspended annotator."""
    return annotators.set_suspended(get_context(), pid, aid, False, current_principal().name)


@blp.route("/gold", methods=["GET"])
@requires("admin", "viewer")
@blp.response(200, GoldListSchema)
def list_gold(pid):
    """The gold examples with their trusted labels."""
    return annotators.list_gold(get_context(), pid)


@blp.route("/gold", methods=["POST"])
@requires("admin")
@blp.arguments(GoldInSchema)
@blp.response(200, GoldListSchema)
def mark_gold(body, pid):
    """Mark examples as gold (their current label is trusted) or unmark them; a share of
    leases (``crowd.gold_share``) then checks annotators on them."""
    done = annotators.mark_gold(get_context(), pid, body["example_ids"], body["gold"])
    return {**done, "total": len(done["items"])}
