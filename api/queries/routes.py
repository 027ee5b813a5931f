"""``/projects/<pid>/queries``."""
from __future__ import annotations

from flask import Response

from ..auth import current_principal, requires
from ..errors import ErrorSchema
from cincer_service.service import queries

from ..extensions import get_context
from ..fields import Blueprint
from .schemas import AnswerInSchema, QuerySchema

blp = Blueprint("queries", __name__, url_prefix="/projects/<int:pid>/queries",
                description="Suspicious examples with their counter-examples, for annotators.")


@blp.route("/next", methods=["POST"])
@requires("annotator")
@blp.response(200, QuerySchema)
@blp.alt_response(204, description="no query is open right now", success=True)
def next_query(pid):
    """Lease the next open query to the caller (the one it already holds comes first)."""
    query = queries.lease_next_query(get_context(), pid, current_principal())
    if query is None:
        return Response(status=204)
    return query


@blp.route("/<int:qid>", methods=["GET"])
@requires()
@blp.response(200, QuerySchema)
def get_query(pid, qid):
    """One query, with its answer once answered."""
    return queries.get_query(get_context(), pid, qid)


@blp.route("/<int:qid>/answer", methods=["POST"])
@requires("annotator")
@blp.arguments(AnswerInSchema)
@blp.response(200, QuerySchema)
@blp.alt_response(409, schema=ErrorSchema, description="the lease was lost, or the query "
                                                      "was answered differently")
def answer_query(body, pid, qid):
    """Answer a leased query; replaying the same answer returns the stored result."""
    return queries.answer_query(get_context(), pid, qid, body["example_label"],
                                body["counterexample_label"], current_principal())
