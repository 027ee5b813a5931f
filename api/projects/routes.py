"""``/projects``: create, read, change and delete projects; mint, list and revoke tokens;
settings history, stats and export."""
from __future__ import annotations

from flask import Response

from cincer_service.service import access, projects, reports, transfer

from ..auth import authenticated, current_principal, requires
from ..errors import ErrorSchema
from ..extensions import get_context
from ..fields import Blueprint
from .schemas import (
    ExportArgsSchema,
    ImportResultSchema,
    ImportSchema,
    ProjectCreateSchema,
    ProjectHistorySchema,
    ProjectListSchema,
    ProjectSchema,
    ProjectUpdateSchema,
    StatsSchema,
    TokenCreateSchema,
    TokenListSchema,
    TokenSchema,
)

blp = Blueprint("projects", __name__, url_prefix="/projects",
                description="Projects, their tokens, statistics and label export.")


@blp.route("", methods=["GET"])
@authenticated
@blp.response(200, ProjectListSchema)
def list_projects():
    """List projects: every project for the admin token, its own for a project token."""
    principal = current_principal()
    items = projects.list_projects(get_context())
    if principal.project_id is not None:
        items = [p for p in items if p["id"] == principal.project_id]
    return {"items": items}


@blp.route("", methods=["POST"])
@requires("admin")
@blp.arguments(ProjectCreateSchema)
@blp.response(201, ProjectSchema)
def create_project(spec):
    """Create a project (admin token)."""
    return projects.create_project(get_context(), spec)


@blp.route("/<int:pid>", methods=["GET"])
@requires()
@blp.response(200, ProjectSchema)
def get_project(pid):
    """One project, with its latest model version."""
    return projects.get_project(get_context(), pid)


@blp.route("/<int:pid>", methods=["PATCH"])
@requires("admin")
@blp.arguments(ProjectUpdateSchema)
@blp.response(200, ProjectSchema)
@blp.alt_response(409, schema=ErrorSchema, description="bootstrap_size changed after the "
                                                      "bootstrap set was complete")
def update_project(body, pid):
    """Change settings (threshold, strategy, damping, bootstrap_size, retrain) with the
    ranges of creation; each change is recorded in the project's history. Name, classes,
    input_shape and model cannot change (422)."""
    return projects.update_project(get_context(), pid, body, current_principal().name)


@blp.route("/<int:pid>", methods=["DELETE"])
@requires("admin")
@blp.response(204)
def delete_project(pid):
    """Delete the project with all its data (examples, label history, queries, models,
    audits, tokens, webhooks); global admin token only."""
    access.authorize(current_principal(), None, "admin")
    projects.delete_project(get_context(), pid)


@blp.route("/<int:pid>/history", methods=["GET"])
@requires()
@blp.response(200, ProjectHistorySchema)
def history(pid):
    """The project's settings changes, oldest first: who changed what, from what to what."""
    return {"items": projects.project_history(get_context(), pid)}


@blp.route("/<int:pid>/tokens", methods=["GET"])
@requires("admin")
@blp.response(200, TokenListSchema)
def list_tokens(pid):
    """The project's tokens (revoked ones flagged); never their secrets."""
    return {"items": access.list_tokens(get_context(), pid)}


@blp.route("/<int:pid>/tokens/<int:tid>", methods=["DELETE"])
@requires("admin")
@blp.response(204)
@blp.alt_response(409, schema=ErrorSchema, description="the token is already revoked")
def revoke_token(pid, tid):
    """Revoke a token: it stops authenticating at once and its leased queries reopen."""
    access.revoke_token(get_context(), pid, tid)


@blp.route("/<int:pid>/tokens", methods=["POST"])
@requires("admin")
@blp.arguments(TokenCreateSchema)
@blp.response(201, TokenSchema)
def create_token(body, pid):
    """Mint a project token with a role; the secret is shown only in this answer."""
    return access.create_token(get_context(), pid, body["role"], body.get("name") or body["role"])


@blp.route("/<int:pid>/stats", methods=["GET"])
@requires()
@blp.response(200, StatsSchema)
def stats(pid):
    """Examples and queries per status, labels cleaned so far, model version."""
    return reports.stats(get_context(), pid)


@blp.route("/<int:pid>/export", methods=["GET"])
@requires()
@blp.arguments(ExportArgsSchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": {"description": "every example: labels with class names, input, "
                                           "status, last change (JSON lines: the history)",
                            "content": {"text/csv": {"schema": {"type": "string"}},
                                        "application/x-ndjson": {"schema": {"type": "string"}}}}})
def export(pid, format):
    """Every example as a CSV row or a JSON line: id, external_id, source, label and
    label_name, original_label and original_label_name, status, confirmed, changed_by and
    changed_at (the last label change), created_at, the input (x; image as base64 PNG and
    x; text, and embedding when one was sent) and, in JSON lines, the label history and
    the crowd: gold (gold, gold_label), the answered queries with every annotator's answer
    (queries), and on the first record the annotators (crowd). Tokens are secrets and are
    never exported. An annotator token's export holds only their own answers. CSV puts x's
    values in one column each (named by feature_names, else x0, x1, ...)."""
    text, mimetype = transfer.export(get_context(), pid, format, current_principal())
    return Response(text, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="project-{pid}.{format}"'})


@blp.route("/<int:pid>/import", methods=["POST"])
@requires("admin")
@blp.arguments(ImportSchema)
@blp.response(201, ImportResultSchema)
@blp.alt_response(409, schema=ErrorSchema, description="an external_id is already in the "
                                                      "project: import into a new one")
def import_examples(body, pid):
    """Import an export's records (admin), all or nothing: inputs, labels, statuses,
    confirmed, timestamps and label history are kept (each history event becomes one event
    with why "import", its original cause in reason), gold marks, answered queries with
    their answers, and the annotators (names, suspension, consensus counts; tokens are not
    exported: mint new ones with the same names). Only pending examples are screened;
    queries without answers are not carried. Send a JSON-lines export as a list:
    ``jq -s '{items: .}' project-3.jsonl``, or use ``python -m clients PID import FILE``
    (.jsonl or .csv)."""
    return transfer.import_examples(get_context(), pid, body["items"],
                                    actor=current_principal().name)
