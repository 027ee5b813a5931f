"""Projects: create, read, list, change their settings (with a history) and delete them.

A project is created from a ``ProjectSpec`` (``cincer_service.spec``), which the caller has
validated (the API schema builds it); this module trusts it and stores its columns. The
same holds for settings changes (``update_project``): the API schema checks the ranges;
each change is recorded as a ``ProjectEvent``.
"""
from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import and_, delete, or_, select

from ..spec import CrowdPolicy, ProjectSpec
from . import jobs
from .context import ServiceContext, latest_version_number, project_row
from .errors import BadInput, Conflict
from .store import (
    Annotator,
    Answer,
    Audit,
    Example,
    IdempotencyKey,
    JobBackoff,
    LabelEvent,
    ModelVersion,
    Overview,
    Project,
    ProjectEvent,
    Query,
    Token,
    WebhookDelivery,
    WebhookEndpoint,
)
from .training import bootstrap_progress, lifecycle

# Settings a project may change after creation; name, classes, input shape and kind,
# feature names, model and holdout share are fixed (examples, labels, model versions and
# the held-out set depend on them).
MUTABLE_SETTINGS = ("threshold", "strategy", "damping", "bootstrap_size", "retrain",
                    "query_budget", "queue_order", "crowd")
NESTED_SETTINGS = ("retrain", "crowd")     # a change may give some of their keys
FIXED_SETTINGS = ("name", "classes", "input_shape", "input_kind", "feature_names", "model",
                  "holdout_share")


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
            "input_shape": list(p.input_shape), "input_kind": p.input_kind,
            "feature_names": None if p.feature_names is None else list(p.feature_names),
            "model": dict(p.model),
            "threshold": p.threshold, "strategy": p.strategy, "damping": p.damping,
            "bootstrap_size": p.bootstrap_size, "retrain": dict(p.retrain),
            "created_at": p.created_at, "model_version": model_version,
            "state": lifecycle(p),
            "threshold_mode": "fixed" if p.query_budget is None else "budget",
            "query_budget": p.query_budget, "queue_order": p.queue_order,
            "holdout_share": p.holdout_share, "crowd": crowd_policy(p)}


def crowd_policy(p: Project) -> dict:
    """The project's ``spec.CrowdPolicy`` as a dict (its defaults where none is stored)."""
    return {**asdict(CrowdPolicy()), **(p.crowd or {})}


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


def event_view(e: ProjectEvent) -> dict:
    """A settings change as the API shows it."""
    return {"id": e.id, "project_id": e.project_id, "actor": e.actor,
            "changes": dict(e.changes), "at": e.at}


def update_project(ctx: ServiceContext, pid: int, changes: dict, actor: str) -> dict:
    """Change some of a project's settings (``MUTABLE_SETTINGS``; ``retrain`` may give only
    ``mode`` or ``every_n_answers``, the other part is kept) and record what changed as one
    ``ProjectEvent`` (``{field: {"old", "new"}}``) by ``actor``; returns the project.

    Values are trusted to be in range (the API schema checks them). Setting a value to
    what it already is records nothing. ``BadInput`` for no settings or a fixed one (name,
    classes, input shape, model); ``NotFound`` for an unknown project; ``Conflict`` when
    ``bootstrap_size`` changes after the bootstrap set was complete (the first model is
    trained or training). Lowering ``bootstrap_size`` to what the project already holds
    completes the bootstrap set: the first model is queued. ``threshold`` and ``strategy``
    apply to examples screened from now on; ``damping`` to model versions whose
    counter-example state is built from now on (a worker that already cached the current
    version's state keeps it until the next version)."""
    fixed = sorted(k for k in changes if k in FIXED_SETTINGS)
    unknown = sorted(k for k in changes if k not in MUTABLE_SETTINGS and k not in fixed)
    if fixed or unknown:
        raise BadInput("only " + ", ".join(MUTABLE_SETTINGS) + " may change",
                       {**{k: ["cannot be changed after creation"] for k in fixed},
                        **{k: ["unknown setting"] for k in unknown}})
    if not changes:
        raise BadInput("no settings to change", {"_schema": [
            "give at least one of " + ", ".join(MUTABLE_SETTINGS)]})
    with ctx.store.session() as s:
        project = project_row(s, pid, lock=True)
        recorded = {}
        for key, value in changes.items():
            nested = key in NESTED_SETTINGS
            old = (crowd_policy(project) if key == "crowd" else dict(project.retrain)) \
                if nested else getattr(project, key)
            new = {**old, **value} if nested else value
            if new != old:
                recorded[key] = {"old": old, "new": new}
        if "bootstrap_size" in recorded:
            if project.wanted_generation >= 0 or project.trained_generation >= 0:
                raise Conflict("the bootstrap set is already complete; bootstrap_size can "
                               "only change while the project collects it",
                               {"bootstrap_size": project.bootstrap_size,
                                "state": lifecycle(project)})
        crowd = recorded.get("crowd", {}).get("new")
        if crowd and crowd["answers_per_query"] > crowd["max_answers_per_query"]:
            raise BadInput("answers_per_query may not exceed max_answers_per_query",
                           {"crowd": [f"answers_per_query {crowd['answers_per_query']} > "
                                      f"max_answers_per_query "
                                      f"{crowd['max_answers_per_query']}"]})
        for key, change in recorded.items():
            setattr(project, key, change["new"])
        if "bootstrap_size" in recorded:
            s.flush()
            if bootstrap_progress(s, project)["ready"]:
                project.wanted_generation = project.generation
                jobs.follow(s, jobs.RETRAIN(pid))
        if recorded:
            s.add(ProjectEvent(project_id=pid, actor=actor, changes=recorded))
        s.flush()
        return project_view(project, latest_version_number(s, pid))


def project_history(ctx: ServiceContext, pid: int) -> list[dict]:
    """Every settings change of the project, oldest first; ``NotFound`` for an unknown
    project."""
    with ctx.store.session() as s:
        project_row(s, pid)
        return [event_view(e) for e in s.scalars(
            select(ProjectEvent).where(ProjectEvent.project_id == pid)
            .order_by(ProjectEvent.id))]


def delete_project(ctx: ServiceContext, pid: int) -> dict:
    """Delete project ``pid`` and everything it owns, in one transaction, children first:
    webhook deliveries and endpoints, its tokens' idempotency keys, its job backoff rows,
    settings history, overview, audits, queries, label events, model versions, examples,
    tokens, then the project. Returns how many rows of each table went; ``NotFound`` for an
    unknown project.

    A background job still running for the project fails when it writes its result; that
    is logged and its work is gone with the project."""
    examples = select(Example.id).where(Example.project_id == pid)
    endpoints = select(WebhookEndpoint.id).where(WebhookEndpoint.project_id == pid)
    tokens = select(Token.id).where(Token.project_id == pid)
    queries = select(Query.id).where(or_(Query.project_id == pid,
                                         Query.example_id.in_(examples),
                                         Query.counterexample_id.in_(examples)))
    steps = (
        ("webhook_deliveries", delete(WebhookDelivery).where(
            WebhookDelivery.endpoint_id.in_(endpoints))),
        ("webhook_endpoints", delete(WebhookEndpoint).where(WebhookEndpoint.project_id == pid)),
        ("idempotency_keys", delete(IdempotencyKey).where(IdempotencyKey.token_id.in_(tokens))),
        ("job_backoff", delete(JobBackoff).where(or_(
            JobBackoff.project_id == pid,
            *(and_(JobBackoff.name == job.name, JobBackoff.arg.in_(job.arg.keys_of_project(pid)))
              for job in jobs.JOBS.values())))),
        ("project_events", delete(ProjectEvent).where(ProjectEvent.project_id == pid)),
        ("overviews", delete(Overview).where(Overview.project_id == pid)),
        ("audits", delete(Audit).where(Audit.project_id == pid)),
        ("answers", delete(Answer).where(or_(Answer.project_id == pid,
                                             Answer.query_id.in_(queries)))),
        ("annotators", delete(Annotator).where(Annotator.project_id == pid)),
        ("queries", delete(Query).where(or_(Query.project_id == pid,
                                            Query.example_id.in_(examples),
                                            Query.counterexample_id.in_(examples)))),
        ("label_events", delete(LabelEvent).where(LabelEvent.example_id.in_(examples))),
        ("model_versions", delete(ModelVersion).where(ModelVersion.project_id == pid)),
        ("examples", delete(Example).where(Example.project_id == pid)),
        ("tokens", delete(Token).where(Token.project_id == pid)),
        ("projects", delete(Project).where(Project.id == pid)),
    )
    with ctx.store.session() as s:
        project_row(s, pid, lock=True)
        removed = {}
        for table, statement in steps:
            result = s.execute(statement.execution_options(synchronize_session=False))
            removed[table] = result.rowcount
        return removed
