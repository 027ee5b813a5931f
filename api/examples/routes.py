"""``/projects/<pid>/examples``."""
from __future__ import annotations

import math

from flask import request

from cincer_service.service import ServiceError, examples, verdicts

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


PREFER_DOC = {
    "in": "header", "name": "Prefer", "required": False, "schema": {"type": "string"},
    "example": "wait=1",
    "description": "RFC 7240 `wait=<seconds>` (0 < wait <= 10, at most 100 items): answer "
                   "within that many seconds with each item's verdict (accepted, "
                   "suspicious with its pair leased to an admin or annotator caller, "
                   "unscreened with the reason, or pending past the deadline); the answer "
                   "carries `Preference-Applied: wait=<seconds>`. Other preferences are "
                   "ignored."}


class BadPreference(ServiceError):
    """A ``Prefer`` header this endpoint cannot apply: a 400."""

    code = "bad_request"


def prefer_wait() -> float | None:
    """The ``wait`` preference of the request's ``Prefer`` headers (RFC 7240: comma-
    separated ``token[=value]`` with ``;`` parameters; the first ``wait`` counts, unknown
    preferences are ignored); ``None`` without one, ``BadPreference`` for a value that is
    not a number of seconds in ``0 < wait <= MAX_WAIT_SECONDS``."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            name, has_value, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            value = value.strip().strip('"').strip()
            try:
                wait = float(value) if has_value and value else None
            except ValueError:
                wait = None
            if wait is None or not math.isfinite(wait):
                raise BadPreference(f"Prefer: wait needs a number of seconds, got {value!r}",
                                    {"Prefer": ["wait=<seconds>, a number"]})
            if not 0 < wait <= verdicts.MAX_WAIT_SECONDS:
                raise BadPreference(
                    f"Prefer: wait must be more than 0 and at most "
                    f"{verdicts.MAX_WAIT_SECONDS:g} seconds, got {value}",
                    {"Prefer": [f"0 < wait <= {verdicts.MAX_WAIT_SECONDS:g}"]})
            return wait
    return None


@blp.route("", methods=["POST"])
@requires("ingest")
@blp.arguments(IngestSchema)
@blp.response(202, IngestResultSchema, headers={"Preference-Applied": {
    "description": "wait=<seconds> when the request waited for its verdicts",
    "schema": {"type": "string"}}})
@blp.doc(parameters=[PREFER_DOC])
def ingest(body, pid):
    """Ingest a batch (all or nothing); screening happens in the background. With
    `Prefer: wait=<seconds>` the answer waits (at most that long) for each item's verdict.
    The body may also be sent as MessagePack (`Content-Type: application/msgpack`), the same
    document encoded; the answer is JSON."""
    principal = current_principal()
    wait = prefer_wait()
    ctx = get_context()
    if wait is not None:
        verdicts.check_wait(wait, len(body["items"]))     # before anything is stored
    results = examples.ingest(ctx, pid, body["items"], actor=principal.name)
    if wait is None:
        return {"items": results}
    return ({"items": verdicts.wait_for_verdicts(ctx, pid, results, principal, wait)},
            {"Preference-Applied": f"wait={wait:g}"})


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
    """One example with its label history (an annotator token: without other annotators'
    votes, and other people's answers unnamed)."""
    return examples.get_example(get_context(), pid, eid, current_principal())
