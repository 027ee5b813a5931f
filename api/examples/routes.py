"""``/projects/<pid>/examples``."""
from __future__ import annotations

from cincer_service.service import examples

from ..auth import current_principal, requires
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import (
    ExampleDetailSchema,
    ExampleListArgsSchema,
    ExamplePageSchema,
    IngestResultSchema,
    IngestSchema,
)

blp = Blueprint("examples", __name__, url_prefix="/projects/<int:pid>/examples",
                description="Labelled examples: ingest, list, history.")


@blp.route("", methods=["POST"])
@requires("ingest")
@blp.arguments(IngestSchema)
@blp.response(202, IngestResultSchema)
def ingest(body, pid):
    """Ingest a batch (all or nothing); screening happens in the background."""
    principal = current_principal()
    return {"items": examples.ingest(get_context(), pid, body["items"], actor=principal.name)}


@blp.route("", methods=["GET"])
@requires()
@blp.arguments(ExampleListArgsSchema, location="query")
@blp.response(200, ExamplePageSchema)
def list_examples(args, pid):
    """One page of examples, optionally filtered by status and source."""
    return examples.list_examples(get_context(), pid, status=args.get("status"),
                                  source=args.get("source"), offset=args["offset"],
                                  limit=args["limit"])


@blp.route("/<int:eid>", methods=["GET"])
@requires()
@blp.response(200, ExampleDetailSchema)
def get_example(pid, eid):
    """One example with its full label history."""
    return examples.get_example(get_context(), pid, eid)
