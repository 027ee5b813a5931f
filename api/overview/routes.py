"""``/projects/<pid>/overview``: the data owner's overview, its cells and batch actions."""
from __future__ import annotations

from flask import Response

from cincer_service.service import overview

from ..auth import current_principal, requires
from ..errors import ErrorSchema
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import (
    ActionInSchema,
    ActionResultSchema,
    CellArgsSchema,
    CellSchema,
    OverviewSchema,
    ProgressSchema,
)

blp = Blueprint("overview", __name__, url_prefix="/projects/<int:pid>/overview",
                description="The data owner's overview: given label → prediction cells "
                            "with mismatch scores, near-duplicates and batch fixes.")


@blp.route("", methods=["GET"])
@requires()
@blp.response(200, OverviewSchema)
def get_overview(pid):
    """The stored overview (``status`` computing / done / failed / missing)."""
    return overview.get_overview(get_context(), pid)


@blp.route("", methods=["POST"])
@requires("admin")
@blp.response(202, OverviewSchema)
@blp.alt_response(409, schema=ErrorSchema, description="the project has no model yet")
def request_overview(pid):
    """(Re)compute the overview from the latest model, in the background."""
    return overview.request_overview(get_context(), pid)


@blp.route("/cells/<int:label>/<int:prediction>", methods=["GET"])
@requires()
@blp.arguments(CellArgsSchema, location="query")
@blp.response(200, CellSchema)
def get_cell(args, pid, label, prediction):
    """One cell's examples within a mismatch-score range, highest score first."""
    return overview.get_cell(get_context(), pid, label, prediction,
                             args["min_score"], args["max_score"])


@blp.route("/actions", methods=["POST"])
@requires("admin")
@blp.arguments(ActionInSchema)
@blp.response(200, ActionResultSchema)
def apply_action(body, pid):
    """Relabel, confirm (trusted set) or remove (out of training) the chosen examples."""
    return overview.apply_action(get_context(), pid, body["action"], body["example_ids"],
                                 current_principal().name, label=body["label"],
                                 reason=body["reason"])


@blp.route("/progress", methods=["GET"])
@requires()
@blp.response(200, ProgressSchema)
def progress(pid):
    """Answers and label changes per model version."""
    return {"items": overview.cleaning_progress(get_context(), pid)}


@blp.route("/progress.png", methods=["GET"])
@requires()
@blp.doc(responses={"200": {"description": "the cleaning-progress plot",
                            "content": {"image/png": {"schema": {"type": "string",
                                                                 "format": "binary"}}}}})
def progress_png(pid):
    """The cleaning progress as a PNG plot (rendered here with matplotlib's Agg)."""
    return Response(overview.progress_plot(get_context(), pid), mimetype="image/png",
                    headers={"Cache-Control": "no-store"})


@blp.route("/curve.png", methods=["GET"])
@requires()
@blp.doc(responses={"200": {"description": "the cleaning-curve plot",
                            "content": {"image/png": {"schema": {"type": "string",
                                                                 "format": "binary"}}}}})
def curve_png(pid):
    """The cleaning curve as a PNG plot: accuracy and macro-F1 on the evaluation set against
    the answers given and against the model version (the numbers are in ``/stats``)."""
    return Response(overview.curve_plot(get_context(), pid), mimetype="image/png",
                    headers={"Cache-Control": "no-store"})
