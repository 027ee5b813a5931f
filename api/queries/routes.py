"""``/projects/<pid>/queries``."""
from __future__ import annotations

from flask import Response

from cincer_service.service import queries

from ..auth import current_principal, requires
from ..errors import ErrorSchema
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import (
    AnswerInSchema,
    CorrectionInSchema,
    QueryListArgsSchema,
    QueryPageSchema,
    QuerySchema,
)

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
    return queries.get_query(get_context(), pid, qid, current_principal())


@blp.route("/<int:qid>/answer", methods=["POST"])
@requires("annotator")
@blp.arguments(AnswerInSchema)
@blp.response(200, QuerySchema)
@blp.alt_response(403, schema=ErrorSchema, description="the annotator is suspended")
@blp.alt_response(409, schema=ErrorSchema, description="the lease was lost, the query was "
                                                      "answered by someone else, you "
                                                      "already answered it (details."
                                                      "already_answered), or (several "
                                                      "answers per query) it is complete")
def answer_query(body, pid, qid):
    """Answer a leased query (labels by class name or index). A query is answered once per
    annotator: a second answer is a 409 and changes nothing. To retry a request that may
    have been applied (a timeout), send it again with the same ``Idempotency-Key``
    header: the stored response comes back."""
    return queries.answer_query(get_context(), pid, qid, body["example_label"],
                                body["counterexample_label"], current_principal(),
                                body["counterexample_not_sure"])


@blp.route("/<int:qid>/release", methods=["POST"])
@requires("annotator")
@blp.response(200, QuerySchema)
@blp.alt_response(409, schema=ErrorSchema, description="another annotator holds the query, "
                                                      "or it is answered")
def release_query(pid, qid):
    """Give a leased query back (skip it): it is open for the next annotator at once."""
    return queries.release_query(get_context(), pid, qid, current_principal())


@blp.route("/<int:qid>/correct", methods=["POST"])
@requires("annotator")
@blp.arguments(CorrectionInSchema)
@blp.response(200, QuerySchema)
@blp.alt_response(409, schema=ErrorSchema, description="the query is not answered yet")
def correct_answer(body, pid, qid):
    """Correct your answer to a query; the change goes into the label history with the
    reason."""
    return queries.correct_answer(get_context(), pid, qid, body["example_label"],
                                  body["counterexample_label"], body["reason"],
                                  current_principal(), body["counterexample_not_sure"])


@blp.route("", methods=["GET"])
@requires()
@blp.arguments(QueryListArgsSchema, location="query")
@blp.response(200, QueryPageSchema)
def list_queries(args, pid):
    """One page of the project's queries, optionally by status."""
    return queries.list_queries(get_context(), pid, status=args.get("status"),
                                offset=args["offset"], limit=args["limit"],
                                viewer=current_principal())
