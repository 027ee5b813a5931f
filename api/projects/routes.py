"""``/projects``: create and read projects, mint tokens, stats and export."""
from __future__ import annotations

from flask import Response

from ..auth import authenticated, current_principal, requires
from cincer_service.service import access, projects, reports

from ..extensions import get_context
from ..fields import Blueprint
from .schemas import (ExportArgsSchema, ProjectCreateSchema, ProjectListSchema, ProjectSchema,
                      StatsSchema, TokenCreateSchema, TokenSchema)

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
@blp.doc(responses={"200": {"description": "current and original label of every example",
                            "content": {"text/csv": {"schema": {"type": "string"}},
                                        "application/x-ndjson": {"schema": {"type": "string"}}}}})
def export(pid, format):
    """Every example's current and original label, as CSV or JSON lines."""
    text, mimetype = reports.export(get_context(), pid, format)
    return Response(text, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="project-{pid}.{format}"'})
