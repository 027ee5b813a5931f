"""Projects: create, read and list them.

A project is created from a ``ProjectSpec`` (``cincer_service.spec``), which the caller has
validated (the API schema builds it); this module trusts it and stores its columns.
"""
from __future__ import annotations

from sqlalchemy import select

from ..spec import ProjectSpec
from .context import ServiceContext, latest_version_number, project_row
from .training import lifecycle
from .store import Project


def label_index(classes, value) -> int | None:
    """The class index a caller meant: an index ``0..len(classes)-1`` or a class name;
    ``None`` when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < len(classes) else None
    if isinstance(value, str):
        try:
            return list(classes).index(value)
        except ValueError:
            return None
    return None


def label_error(classes) -> str:
    """What a valid label looks like, for error messages."""
    shown = ", ".join(repr(c) for c in list(classes)[:10])
    more = ", ..." if len(classes) > 10 else ""
    return f"a class name ({shown}{more}) or an index in [0, {len(classes)})"


def label_name(classes, index: int | None) -> str | None:
    """The class name of ``index`` (``None`` stays ``None``)."""
    return None if index is None else classes[index]


def project_view(p: Project, model_version: int | None) -> dict:
    """The project as the API shows it."""
    return {"id": p.id, "name": p.name, "classes": list(p.classes),
            "input_shape": list(p.input_shape), "model": dict(p.model),
            "threshold": p.threshold, "strategy": p.strategy, "damping": p.damping,
            "bootstrap_size": p.bootstrap_size, "retrain": dict(p.retrain),
            "created_at": p.created_at, "model_version": model_version,
            "state": lifecycle(p)}


def create_project(ctx: ServiceContext, spec: ProjectSpec, demo: bool = False) -> dict:
    """Store a new project from a validated ``spec``."""
    with ctx.store.session() as s:
        project = Project(**spec.columns(), demo=demo)
        s.add(project)
        s.flush()
        return project_view(project, None)


def get_project(ctx: ServiceContext, pid: int) -> dict:
    """One project with its latest model version number."""
    with ctx.store.session() as s:
        return project_view(project_row(s, pid), latest_version_number(s, pid))


def list_projects(ctx: ServiceContext) -> list[dict]:
    """Every project, oldest first."""
    with ctx.store.session() as s:
        return [project_view(p, latest_version_number(s, p.id))
                for p in s.scalars(select(Project).order_by(Project.id))]
