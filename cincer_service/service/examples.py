"""Examples: ingest a batch (idempotent by ``external_id``), list a page, read one with its
label history.

Until the bootstrap set is complete, ingested examples form the initial training set
(status ``accepted``); later ones wait (``pending``) for the ``screen`` job. Items with
``split: "evaluation"`` form the evaluation set instead (status ``evaluation``, label
trusted): never trained on, screened or queried, only scored on (``evaluation``).
"""
from __future__ import annotations

import numpy as np
from sqlalchemy import String, cast, func, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from ..featurize import BadItem, featurize
from . import evaluation, jobs
from .context import EXAMPLE_STATUSES, TRAINING, ServiceContext, example_row, project_row
from .errors import BadInput, Conflict
from .labels import LabelChange, change_labels
from .projects import label_error, label_index, label_name
from .store import Example, LabelEvent, Project, insert_rows, retry_transaction, utcnow

# Every example status a list can ask for: the lifecycle's and the sets kept aside from it
# (``holdout``, ``evaluation``).
STATUSES = (*EXAMPLE_STATUSES, *evaluation.SET_ASIDE)
# What an annotator sees of other people's answers in a label history (``visible_events``).
CROWD_ANSWER = "crowd_answer"
ANSWER_CAUSES = ("answer_example", "answer_counterexample", "correction")
OTHER_ANNOTATOR = "another annotator"
IMPORTED = "import"        # an imported event's why; its original cause opens its reason


def example_view(e: Example, project: Project) -> dict:
    """The example as the API shows it, labels with their class names."""
    return {"id": e.id, "external_id": e.external_id, "source": e.source,
            "x": e.features(project.input_shape).tolist(), "text": e.raw, "label": e.label,
            "label_name": label_name(project.classes, e.label),
            "original_label": e.original_label,
            "original_label_name": label_name(project.classes, e.original_label),
            "status": e.status, "confirmed": e.confirmed, "created_at": e.created_at,
            "updated_at": e.updated_at}


def event_view(ev: LabelEvent, classes) -> dict:
    """One label-history entry."""
    return {"at": ev.at, "actor": ev.actor, "old_label": ev.old_label,
            "old_label_name": label_name(classes, ev.old_label), "new_label": ev.new_label,
            "new_label_name": label_name(classes, ev.new_label), "why": ev.why,
            "reason": ev.reason, "query_id": ev.query_id}


def ingest(ctx: ServiceContext, pid: int, items: list, actor: str = "ingest") -> list[dict]:
    """Store a batch (all or nothing) and return ``[{id, status, outcome}]``.

    Idempotent by ``external_id`` (unique per project): an item already stored with the same
    input and label is a replay (``outcome: replayed``, nothing stored); the same input with
    another label is a label change recorded in the history as ``ingest_update``
    (``outcome: updated``); another input, or the other split, under a stored
    ``external_id`` is a ``Conflict``. Until the bootstrap set is complete
    (``bootstrap_size`` examples of at least two classes) new examples join the training
    set; later ones wait for screening. An item with ``split: "evaluation"`` joins the
    evaluation set (status ``evaluation``, ``confirmed``) and changes nothing else."""
    if not isinstance(items, list) or not items:
        raise BadInput("the batch is empty", {"items": ["at least one item"]})
    if len(items) > ctx.settings.max_batch:
        raise BadInput(f"the batch has {len(items)} items, the limit is "
                       f"{ctx.settings.max_batch}", {"items": ["too many items"]})
    try:
        return _ingest(ctx, pid, items, actor)
    except IntegrityError:
        # A concurrent request stored some of these external ids first: now they replay.
        return _ingest(ctx, pid, items, actor)


@retry_transaction
def _ingest(ctx: ServiceContext, pid: int, items: list, actor: str) -> list[dict]:
    with ctx.store.session() as s:
        # Validated before the project's lock (its classes and input never change), so
        # concurrent batches and screening wait only for the writes.
        rows = validate_items(project_row(s, pid), items)
        project = project_row(s, pid, lock=True)
        known = known_examples(s, pid, [r["external_id"] for r in rows if r["external_id"]])
        clashes = [r["external_id"] for r in rows
                   if r["external_id"] in known and known[r["external_id"]].x != r["x"]]
        if clashes:
            raise Conflict("these external ids are stored with a different input; nothing "
                           "was stored", {"external_ids": clashes[:50]})
        crossing = [r["external_id"] for r in rows if r["external_id"] in known
                    and _split_of(known[r["external_id"]]) != r["split"]]
        if crossing:
            raise Conflict("these external ids are stored in the other split (training or "
                           "evaluation); nothing was stored", {"external_ids": crossing[:50]})
        bootstrapping = project.wanted_generation < 0 and project.trained_generation < 0
        have, labels = 0, set()
        if bootstrapping:
            have = s.scalar(select(func.count(Example.id)).where(
                Example.project_id == pid, Example.status.in_(TRAINING)))
            labels = set(s.scalars(select(Example.label).where(
                Example.project_id == pid, Example.status.in_(TRAINING)).distinct()))
        now, results, training_changed, updates = utcnow(), [], False, []
        created: list[tuple[dict, dict]] = []         # (row to insert, its result)
        for row in rows:
            old = known.get(row["external_id"])
            if old is None:
                split = row.pop("split")
                ready = have >= project.bootstrap_size and len(labels) >= 2
                status = "accepted" if bootstrapping and not ready else "pending"
                if split == "evaluation":
                    status = evaluation.EVALUATION_STATUS
                elif status == "accepted":
                    have, training_changed = have + 1, True
                    labels.add(row["label"])
                result = {"id": None, "status": status, "outcome": "created"}
                created.append(({**row, "project_id": pid, "status": status, "created_at": now,
                                 "updated_at": now, "confirmed": split == "evaluation"},
                                result))
                results.append(result)
            elif old.label == row["label"]:
                results.append({"id": old.id, "status": old.status, "outcome": "replayed"})
            else:
                updates.append(LabelChange(old.id, row["label"], "ingest_update"))
                results.append({"id": old.id, "status": old.status, "outcome": "updated"})
        insert_examples(s, created, actor, now)
        if updates:
            training_changed |= change_labels(s, pid, updates, actor, now=now).training_changed
        changes = {"generation": Project.generation + 1} if training_changed else {}
        bootstrap_done = bootstrapping and have >= project.bootstrap_size and len(labels) >= 2
        if bootstrap_done:
            changes["wanted_generation"] = Project.generation + (1 if training_changed else 0)
        if changes:
            s.execute(update(Project).where(Project.id == pid).values(**changes))
        if bootstrap_done:
            jobs.follow(s, jobs.RETRAIN(pid))
        if any(r["status"] == "pending" and r["outcome"] == "created" for r in results):
            jobs.follow(s, jobs.SCREEN(pid))
    return results


def known_examples(s, pid: int, external_ids: list[str]) -> dict[str, Example]:
    """Project ``pid``'s stored examples with these external ids, by external id.

    On PostgreSQL, one probe of the unique index per id (a ``LATERAL`` lookup over the ids
    as an array), whatever the planner's statistics say. An ``IN`` list, or a plain join,
    over a table not analysed since it grew was planned as a scan of the project's rows:
    0.5–1.2 s for a batch of 1,000 at 300k–630k examples, against 4 ms."""
    if not external_ids:
        return {}
    if s.get_bind().dialect.name == "postgresql":
        wanted = func.unnest(cast(external_ids, ARRAY(String))).table_valued(
            "external_id").render_derived(name="wanted")
        match = (select(Example).where(Example.project_id == pid,
                                       Example.external_id == wanted.c.external_id)
                 .limit(1).lateral("match"))
        statement = select(aliased(Example, match)).select_from(wanted).join(match, true())
    else:
        statement = select(Example).where(Example.project_id == pid,
                                          Example.external_id.in_(external_ids))
    return {e.external_id: e for e in s.scalars(statement)}


def insert_examples(s, created: list[tuple[dict, dict]], actor: str, now) -> None:
    """Insert the new examples and their first history events in two bulk statements
    (``store.insert_rows``, not one ORM object and flush per row) and fill each result's
    ``id``."""
    if not created:
        return
    ids = insert_rows(s, Example.__table__, [row for row, _ in created])
    for (_, result), eid in zip(created, ids):
        result["id"] = eid
    insert_rows(s, LabelEvent.__table__, [{"example_id": eid, "new_label": row["label"]}
                                          for (row, _), eid in zip(created, ids)],
                fixed={"old_label": None, "why": "ingest", "actor": actor, "at": now})


def _split_of(example: Example) -> str:
    """``evaluation`` for an example of the evaluation set, else ``training``."""
    return "evaluation" if example.status == evaluation.EVALUATION_STATUS else "training"


def validate_items(project: Project, items: list) -> list[dict]:
    """Check each item against the project's input kind, shape and classes (a label is a
    class name or index) and featurize it; ``BadInput`` listing every bad field, or the
    rows to store."""
    shape, classes = tuple(project.input_shape), project.classes
    errors, rows, seen = {}, [], set()
    for i, item in enumerate(items):
        where = f"items.{i}"
        if not isinstance(item, dict):
            errors[where] = ["an object with x and label"]
            continue
        label = label_index(classes, item.get("label"))
        if label is None:
            errors[f"{where}.label"] = [label_error(classes)]
        external_id = item.get("external_id")
        external_id = None if external_id is None else str(external_id)[:200]
        if external_id is not None:
            if external_id in seen:
                errors[f"{where}.external_id"] = ["appears twice in this batch"]
            seen.add(external_id)
        split = item.get("split", "training")
        if split is None:
            split = "training"
        if split not in evaluation.SPLITS:
            errors[f"{where}.split"] = [f"one of {', '.join(evaluation.SPLITS)}"]
        try:
            x, raw = featurize(project.input_kind, item, shape)
        except BadItem as exc:
            errors.update({f"{where}.{field}": messages
                           for field, messages in exc.errors.items()})
            continue
        if label is None or split not in evaluation.SPLITS:
            continue
        source = item.get("source")
        rows.append({"external_id": external_id,
                     "source": None if source is None else str(source)[:200],
                     "x": np.ascontiguousarray(x, dtype=np.float32).tobytes(), "raw": raw,
                     "label": label,
                     "original_label": label, "split": split})
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
        return {"items": [example_view(e, project) for e in rows], "total": total}


def get_example(ctx: ServiceContext, pid: int, eid: int, viewer=None) -> dict:
    """One example with its label history: all of it, or what an ``annotator`` ``viewer``
    may see (``visible_events``)."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        example = example_row(s, pid, eid)
        events = s.scalars(select(LabelEvent).where(LabelEvent.example_id == eid)
                           .order_by(LabelEvent.id))
        return {**example_view(example, project),
                "history": [event_view(ev, project.classes)
                            for ev in visible_events(events, viewer)]}


def visible_events(events, viewer=None) -> list:
    """The label events a ``viewer`` (a ``Principal``, or None: the service itself) may
    see. An annotator never sees anyone else's answer: other annotators' crowd votes
    (``crowd_answer``) are left out, and the label changes other people's answers and
    corrections made are shown without their name (``OTHER_ANNOTATOR``). Every other
    role sees everything."""
    events = list(events)
    if viewer is None or viewer.role != "annotator":
        return events
    shown = []
    for ev in events:
        cause = ev.why
        if cause == IMPORTED and ev.reason:          # an imported event: "why (query n): ..."
            cause = ev.reason.split(" ", 1)[0].rstrip(":")
        if ev.actor == viewer.name:
            shown.append(ev)
        elif cause == CROWD_ANSWER:
            continue
        elif cause in ANSWER_CAUSES:
            shown.append(LabelEvent(example_id=ev.example_id, old_label=ev.old_label,
                                    new_label=ev.new_label, why=ev.why,
                                    actor=OTHER_ANNOTATOR, query_id=ev.query_id,
                                    reason=None, at=ev.at))
        else:
            shown.append(ev)
    return shown
