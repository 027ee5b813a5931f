"""``/projects/<pid>/sources``: each source's label-noise rate and proposals."""
from __future__ import annotations

from cincer_service.service import sources

from ..auth import current_principal, requires
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import AppliedSchema, ApplyProposalSchema, SourceListSchema

blp = Blueprint("sources", __name__, url_prefix="/projects/<int:pid>/sources",
                description="Where labels come from and how often they were corrected.")


@blp.route("", methods=["GET"])
@requires("admin", "viewer")
@blp.response(200, SourceListSchema)
def list_sources(pid):
    """Each source's noise rate (with its interval) and confusion pattern, and the batch
    relabels its patterns suggest."""
    return sources.list_sources(get_context(), pid)


@blp.route("/relabel", methods=["POST"])
@requires("admin")
@blp.arguments(ApplyProposalSchema)
@blp.response(200, AppliedSchema)
def apply_proposal(body, pid):
    """A person applies one proposal (the source's a-labels predicted as b become b)."""
    return sources.apply_proposal(get_context(), pid, body["source"], body["from_label"],
                                  body["to_label"], current_principal().name)
