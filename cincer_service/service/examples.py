"""Examples: ingest a batch, list a page, read one with its label history.

Until ``bootstrap_size`` examples exist, ingested examples form the initial training set
(status ``accepted``); later ones wait (``pending``) for the ``screen`` job.
"""
from __future__ import annotations

import numpy as np
from sqlalchemy import func, select, update

from .context import ServiceContext, example_row, project_row
from .errors import BadInput
from .store import Example, LabelEvent, Project, utcnow


def example_view(e: Example, shape) -> dict:
    """The example as the API shows it."""
    return {"id": e.id, "external_id": e.external_id, "source": e.source,
            "x": e.features(shape).tolist(), "label": e.label,
            "original_label": e.original_label, "status": e.status, "confirmed": e.confirmed,
            "created_at": e.created_at, "updated_at": e.updated_at}


def event_view(ev: LabelEvent) -> dict:
    """One label-history entry."""
    return {"at": ev.at, "actor": ev.actor, "old_label": ev.old_label,
            "new_label": ev.new_label, "why": ev.why, "query_id": ev.query_id}


def ingest(ctx: ServiceContext, pid: int, items: list, actor: str = "ingest") -> list[dict]:
    """Store a batch (all or nothing) and return ``[{id, status}]``; submits screening."""
    if not isinstance(items, list) or not items:
        raise BadInput("the batch is empty", {"items": ["at least one item"]})
    if len(items) > ctx.settings.max_batch:
        raise BadInput(f"the batch has {len(items)} items, the limit is "
                       f"{ctx.settings.max_batch}", {"items": ["too many items"]})
    with ctx.store.session() as s:
        project = project_row(s, pid, lock=True)
        rows = validate_items(project, items)
        have = s.scalar(select(func.count(Example.id)).where(Example.project_id == pid))
        bootstrapping = project.trained_generation < 0 and project.wanted_generation == 0
        examples, now = [], utcnow()
        for row in rows:
            status = "accepted" if bootstrapping and have < project.bootstrap_size else "pending"
            have += 1
            examples.append(Example(project_id=pid, status=status, created_at=now,
                                    updated_at=now, **row))
        s.add_all(examples)
        s.flush()
        s.add_all([LabelEvent(example_id=e.id, old_label=None, new_label=e.label,
                              why="ingest", actor=actor, at=now) for e in examples])
        changes = {}
        if any(e.status == "accepted" for e in examples):
            changes["generation"] = Project.generation + 1
        bootstrap_done = bootstrapping and have >= project.bootstrap_size
        if bootstrap_done:
            changes["wanted_generation"] = Project.generation + (1 if changes else 0)
        if changes:
            s.execute(update(Project).where(Project.id == pid).values(**changes))
        result = [{"id": e.id, "status": e.status} for e in examples]
        pending = any(e.status == "pending" for e in examples)
    if bootstrap_done:
        ctx.submit("retrain", pid)
    if pending:
        ctx.submit("screen", pid)
    return result


def validate_items(project: Project, items: list) -> list[dict]:
    """Check each item against the project's input shape and classes; ``BadInput`` listing
    every bad field, or the rows to store."""
    shape, n_classes = tuple(project.input_shape), len(project.classes)
    errors, rows = {}, []
    for i, item in enumerate(items):
        where = f"items.{i}"
        if not isinstance(item, dict):
            errors[where] = ["an object with x and label"]
            continue
        label = item.get("label")
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < n_classes:
            errors[f"{where}.label"] = [f"an integer class index in [0, {n_classes})"]
        try:
            x = np.asarray(item.get("x"), dtype=np.float32)
        except (TypeError, ValueError):
            errors[f"{where}.x"] = [f"a nested list of numbers of shape {list(shape)}"]
            continue
        if x.shape != shape:
            errors[f"{where}.x"] = [f"shape {list(x.shape)} does not match input_shape "
                                    f"{list(shape)}"]
            continue
        if not np.isfinite(x).all():
            errors[f"{where}.x"] = ["NaN or infinite values"]
            continue
        if where + ".label" in errors:
            continue
        external_id, source = item.get("external_id"), item.get("source")
        rows.append({"external_id": None if external_id is None else str(external_id)[:200],
                     "source": None if source is None else str(source)[:200],
                     "x": np.ascontiguousarray(x).tobytes(), "label": label,
                     "original_label": label})
    if errors:
        raise BadInput(f"{len(errors)} invalid field(s); nothing was stored", errors)
    return rows


def list_examples(ctx: ServiceContext, pid: int, status: str | None = None,
                  source: str | None = None, offset: int = 0, limit: int = 50) -> dict:
    """One page ``{items, total}`` of the project's examples in id order."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        where = [Example.project_id == pid]
        if status:
            where.append(Example.status == status)
        if source:
            where.append(Example.source == source)
        total = s.scalar(select(func.count(Example.id)).where(*where))
        rows = s.scalars(select(Example).where(*where).order_by(Example.id)
                         .offset(offset).limit(limit))
        return {"items": [example_view(e, project.input_shape) for e in rows], "total": total}


def get_example(ctx: ServiceContext, pid: int, eid: int) -> dict:
    """One example with its full label history."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        example = example_row(s, pid, eid)
        events = s.scalars(select(LabelEvent).where(LabelEvent.example_id == eid)
                           .order_by(LabelEvent.id))
        return {**example_view(example, project.input_shape),
                "history": [event_view(ev) for ev in events]}
