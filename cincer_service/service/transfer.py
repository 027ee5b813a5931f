"""Export and import: a project's examples as CSV or JSON lines, and those records read back
into another project (``POST /projects/{pid}/import``).

An export record (one CSV row, one JSON line) carries, in ``EXPORT_COLUMNS`` order: the
example's ``id``, ``external_id`` and ``source``; its ``label`` and ``original_label`` as
indices, each with its class name (``label_name``, ``original_label_name``); ``status``
and ``confirmed``; the last label change's actor and time (``changed_by``,
``changed_at``) and ``created_at``. Then the input:

* tabular: ``x`` (JSON: nested lists; CSV: one column per value, named by the project's
  feature names, else ``x0``, ``x1``, ...);
* image: ``image``, a base64 PNG to look at, and ``x``, the exact values (as above);
* text: ``text``, and ``embedding`` when the stored features are not the text's hashed
  features (the caller sent its own; CSV: a JSON list in one column, empty otherwise).

JSON lines add ``history``: every label event, oldest first (``at``, ``actor``,
``old_label``, ``old_label_name``, ``new_label``, ``new_label_name``, ``why``,
``reason``, ``query_id``), and the crowd (``service.crowd_transfer``): each record's gold
mark (``gold``, ``gold_label``) and answered ``queries`` with every annotator's answer;
the first record carries the annotators (``crowd``). Tokens are secrets and are never
exported. An ``annotator`` token's export holds what that annotator may see: their own
answers, no one else's votes (``examples.visible_events``).

**Import** takes such records (``id`` is ignored: the new project numbers its own) and stores
them as they were, all or nothing: inputs, labels (``label_name`` wins over ``label``, by
the one label rule: a string is a class name, an integer an index), original labels,
statuses, ``confirmed`` and timestamps. Each recorded history event becomes one label event
with why ``import``, its actor and time, and the original cause, query and reason in its
``reason``; a record without ``history`` (a CSV row) gets the events its columns imply
(ingest of the original label; the change to the current one by ``changed_by`` at
``changed_at``). Gold marks, answered queries with their answers, and the annotators come
back as they were (``crowd_transfer``; history events then name the imported query);
queries without answers are not carried (a ``suspicious`` example stays suspicious until
someone confirms or relabels it). Examples that
join the training set want a retrain (the first model, once the bootstrap set is complete).
An ``external_id`` already in the project is a ``Conflict``: import into a new project.
"""
from __future__ import annotations

import base64
import csv
import io
import json
from collections import Counter
from datetime import datetime, timezone

import numpy as np
from sqlalchemy import select, update

from ..featurize import text_features
from . import crowd_transfer, evaluation, jobs, training
from .context import EXAMPLE_STATUSES, TRAINING, ServiceContext, project_row
from .errors import BadInput, Conflict
from .examples import IMPORTED, validate_items, visible_events
from .projects import label_index, label_name
from .store import Example, LabelEvent, Project, utcnow

EXPORT_COLUMNS = ("id", "external_id", "source", "label", "label_name", "original_label",
                  "original_label_name", "status", "confirmed", "changed_by", "changed_at",
                  "created_at")
HISTORY_KEYS = ("at", "actor", "old_label", "old_label_name", "new_label", "new_label_name",
                "why", "reason", "query_id")
# Every status an export shows, and so every status an import takes ("evaluation": the
# data owner's evaluation set, examples ingested with split "evaluation").
IMPORT_STATUSES = (*EXAMPLE_STATUSES, evaluation.HOLDOUT_STATUS, "evaluation")
IMPORT_CAUSE = IMPORTED
FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


# -- export ----------------------------------------------------------------------------------
def export(ctx: ServiceContext, pid: int, fmt: str = "csv",
           viewer=None) -> tuple[str, str]:
    """``(text, mimetype)``: every example as a CSV row or a JSON line (``fmt``), in id
    order, as ``viewer`` may see it (see the module docstring)."""
    records, project = export_records(ctx, pid, viewer)
    if fmt == "jsonl":
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        return text, FORMATS["jsonl"]
    return _csv_text(records, project), FORMATS["csv"]


def export_records(ctx: ServiceContext, pid: int, viewer=None) -> tuple[list[dict], dict]:
    """The JSON-lines records (with ``history`` and the crowd) and ``{input_kind,
    input_shape, feature_names}`` of the project, as ``viewer`` may see them."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        rows = list(s.scalars(select(Example).where(Example.project_id == pid)
                              .order_by(Example.id)))
        history: dict[int, list[dict]] = {}
        for ev in visible_events(s.scalars(select(LabelEvent).join(Example).where(
                Example.project_id == pid).order_by(LabelEvent.id)), viewer):
            history.setdefault(ev.example_id, []).append(_event_record(ev, project.classes))
        answered, crowd = crowd_transfer.export_crowd(
            s, project, _time, {e.id: e.external_id for e in rows}, viewer)
        gold = {e.id: crowd_transfer.gold_fields(e, project.classes, viewer) for e in rows}
        classes, kind = list(project.classes), project.input_kind
        shape = tuple(project.input_shape)
        layout = {"input_kind": kind, "input_shape": list(shape),
                  "feature_names": project.feature_names}
    hashed = _hashed_texts(rows, shape) if kind == "text" else {}
    records = []
    for e in rows:
        events = history.get(e.id, [])
        last = events[-1] if events else {}
        record = {"id": e.id, "external_id": e.external_id, "source": e.source,
                  "label": e.label, "label_name": label_name(classes, e.label),
                  "original_label": e.original_label,
                  "original_label_name": label_name(classes, e.original_label),
                  "status": e.status, "confirmed": bool(e.confirmed),
                  "changed_by": last.get("actor"), "changed_at": last.get("at"),
                  "created_at": _time(e.created_at)}
        x = e.features(shape)
        if kind == "text":
            record["text"] = e.raw
            if not hashed.get(e.id, False):
                record["embedding"] = x.tolist()
        else:
            if kind == "image":
                record["image"] = png_base64(x)
            record["x"] = x.tolist()
        record["history"] = events
        record.update(gold[e.id])
        record["queries"] = answered.get(e.id, [])
        records.append(record)
    if records and crowd is not None:
        records[0]["crowd"] = crowd
    return records, layout


def _event_record(ev: LabelEvent, classes) -> dict:
    return {"at": _time(ev.at), "actor": ev.actor, "old_label": ev.old_label,
            "old_label_name": label_name(classes, ev.old_label), "new_label": ev.new_label,
            "new_label_name": label_name(classes, ev.new_label), "why": ev.why,
            "reason": ev.reason, "query_id": ev.query_id}


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _hashed_texts(rows: list[Example], shape) -> dict[int, bool]:
    """Which text examples' features are their text's hashed features (no embedding was
    sent with them)."""
    texts = [e for e in rows if e.raw]
    if not texts:
        return {}
    hashed = text_features([e.raw for e in texts], shape[0])
    return {e.id: bool(np.array_equal(e.features(shape).reshape(-1), hashed[i]))
            for i, e in enumerate(texts)}


def png_base64(x: np.ndarray) -> str:
    """An image's values (``[0, 1]``, height x width [x channels]) as a base64 PNG."""
    from PIL import Image
    pixels = np.clip(np.rint(np.nan_to_num(x) * 255.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    mode = {2: "L"}.get(pixels.ndim) or {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    out = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def feature_columns(layout: dict) -> list[str]:
    """The CSV columns of ``x``'s values: the feature names of a tabular project (when they
    name every value and clash with no other column), else ``x0``, ``x1``, ..."""
    size = int(np.prod(layout["input_shape"]))
    names = layout.get("feature_names")
    reserved = set(EXPORT_COLUMNS) | {"image", "text", "embedding"}
    if (layout["input_kind"] == "tabular" and names and len(names) == size
            and len(set(names)) == size and not reserved & set(names)):
        return [str(n) for n in names]
    return [f"x{i}" for i in range(size)]


def _csv_text(records: list[dict], layout: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    kind = layout["input_kind"]
    if kind == "text":
        embedded = any("embedding" in r for r in records)
        writer.writerow([*EXPORT_COLUMNS, "text", *(["embedding"] if embedded else [])])
        for r in records:
            extra = [json.dumps(r["embedding"]) if "embedding" in r else ""] if embedded else []
            writer.writerow([_cell(r[c]) for c in EXPORT_COLUMNS] + [r["text"], *extra])
        return out.getvalue()
    columns = feature_columns(layout)
    image = ["image"] if kind == "image" else []
    writer.writerow([*EXPORT_COLUMNS, *image, *columns])
    for r in records:
        values = np.asarray(r["x"], dtype=np.float32).reshape(-1).tolist()
        writer.writerow([_cell(r[c]) for c in EXPORT_COLUMNS]
                        + ([r["image"]] if image else []) + [repr(v) for v in values])
    return out.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    return str(value)


# -- import ----------------------------------------------------------------------------------
def import_examples(ctx: ServiceContext, pid: int, records: list,
                    actor: str = "import") -> dict:
    """Store exported ``records`` in project ``pid`` as they were (module docstring), all or
    nothing; ``{imported, events, statuses, items: [{id, external_id, status}]}``.
    ``BadInput`` names every bad field (``items.3.status``); an ``external_id`` the project
    already holds is a ``Conflict``."""
    if not isinstance(records, list) or not records:
        raise BadInput("nothing to import", {"items": ["at least one record"]})
    if len(records) > ctx.settings.max_batch:
        raise BadInput(f"{len(records)} records, the limit is {ctx.settings.max_batch} per "
                       "request (send the rest in further requests)",
                       {"items": ["too many records"]})
    now = utcnow()
    with ctx.store.session() as s:
        project = project_row(s, pid, lock=True)
        classes = list(project.classes)
        errors: dict[str, list[str]] = {}
        parsed = [_read_record(r, i, classes, project.input_kind, actor, now, errors,
                               project.strategy)
                  for i, r in enumerate(records)]
        try:
            rows = validate_items(project, [p["item"] if p else r
                                            for p, r in zip(parsed, records)])
        except BadInput as exc:
            errors.update(exc.details or {})
            rows = []
        if errors:
            raise BadInput(f"{len(errors)} invalid field(s); nothing was imported",
                           dict(sorted(errors.items())))
        ids = [row["external_id"] for row in rows if row["external_id"] is not None]
        taken = list(s.scalars(select(Example.external_id).where(
            Example.project_id == pid, Example.external_id.in_(ids)))) if ids else []
        if taken:
            raise Conflict("these external ids are already in the project; import into a new "
                           "project", {"external_ids": sorted(taken)[:50]})
        results, statuses, events, stored = [], Counter(), 0, []
        for row, record in zip(rows, parsed):
            row.pop("split", None)
            row["original_label"] = record["original_label"]
            crowd = record["crowd"]
            example = Example(project_id=pid, status=record["status"],
                              confirmed=record["confirmed"], created_at=record["created_at"],
                              updated_at=record["updated_at"], gold=crowd["gold"],
                              gold_label=crowd["gold_label"], **row)
            s.add(example)
            stored.append((example, crowd, record["export_id"]))
            statuses[example.status] += 1
        s.flush()
        carried = crowd_transfer.store_crowd(s, project, stored)
        for (example, _, _), record in zip(stored, parsed):
            for ev in record["history"]:
                query = carried["queries"].get(ev.pop("original_query"))
                s.add(LabelEvent(example_id=example.id, **ev, query_id=query))
            events += len(record["history"])
            results.append({"id": example.id, "external_id": example.external_id,
                            "status": example.status})
        s.flush()
        _wanted_work(s, project, statuses)
    return {"imported": len(results), "events": events, "statuses": dict(statuses),
            **carried["counts"], "items": results}


def _wanted_work(s, project: Project, statuses: Counter) -> None:
    """Training examples bump the generation and want a retrain (the first model once the
    bootstrap set is complete); pending ones are screened."""
    pid = project.id
    if any(statuses[t] for t in TRAINING):
        s.execute(update(Project).where(Project.id == pid)
                  .values(generation=Project.generation + 1))
        first = project.trained_generation < 0 and project.wanted_generation < 0
        if not first or training.bootstrap_progress(s, project)["ready"]:
            s.execute(update(Project).where(Project.id == pid)
                      .values(wanted_generation=Project.generation))
            jobs.follow(s, jobs.RETRAIN(pid))
    if statuses["pending"]:
        jobs.follow(s, jobs.SCREEN(pid))


def _read_record(record, i: int, classes: list, kind: str, actor: str, now: datetime,
                 errors: dict, strategy: str) -> dict | None:
    """One record checked (problems go to ``errors`` under ``items.{i}.field``): the ingest
    item for ``validate_items`` and what import adds (labels, status, times, history);
    only used when no record has an error."""
    where = f"items.{i}"
    if not isinstance(record, dict):
        return None                     # validate_items names it

    def fail(field: str, message: str):
        errors.setdefault(f"{where}.{field}", []).append(message)

    label = _label(record, "label", classes, fail)
    original = _label(record, "original_label", classes, fail)
    if original is None and "original_label" not in record \
            and "original_label_name" not in record:
        original = label
    status = record.get("status")
    if status not in IMPORT_STATUSES:
        fail("status", f"one of {', '.join(IMPORT_STATUSES)}")
    confirmed = record.get("confirmed", False)
    if confirmed is None:
        confirmed = False
    if not isinstance(confirmed, bool):
        fail("confirmed", "true or false")
    created_at = _parse_time(record.get("created_at"), now, "created_at", fail)
    changed_at = _parse_time(record.get("changed_at"), created_at, "changed_at", fail)
    changed_by = record.get("changed_by")
    if changed_by is not None and not isinstance(changed_by, str):
        fail("changed_by", "a string")
    for field in ("external_id", "source"):
        if record.get(field) is not None and not isinstance(record[field], str):
            fail(field, "a string")
    item = {"external_id": record.get("external_id"), "source": record.get("source"),
            "label": label if label is not None else record.get("label")}
    if kind == "text":
        item.update(text=record.get("text"), embedding=record.get("embedding"))
    elif kind == "image" and record.get("x") is None:
        item["image"] = record.get("image")
    else:
        item["x"] = record.get("x")
    history = record.get("history")
    if history is None:
        history = _implied_history(label, original, changed_by or actor, created_at,
                                   changed_at, actor)
    else:
        history = _history(history, classes, actor, created_at, fail)
    crowd = crowd_transfer.read_crowd(
        record, classes, strategy,
        lambda d, key, bad: _label(d, key, classes, bad),
        _parse_time, now, fail)
    export_id = record.get("id")
    if isinstance(export_id, bool) or not isinstance(export_id, int):
        export_id = None
    return {"item": item, "original_label": original, "status": status,
            "confirmed": confirmed, "created_at": created_at,
            "updated_at": max(changed_at, created_at), "history": history, "crowd": crowd,
            "export_id": export_id}


def _label(record: dict, key: str, classes: list, fail) -> int | None:
    """``key``'s class index: its ``_name`` column (a class name) wins over the index;
    a string is a class name, an integer an index."""
    name = record.get(f"{key}_name")
    if name is not None:
        index = label_index(classes, name) if isinstance(name, str) else None
        if index is None:
            fail(f"{key}_name", f"one of the project's classes {classes[:10]}")
        return index
    if record.get(key) is None:
        return None
    index = label_index(classes, record[key])
    if index is None and key != "label":            # validate_items names a bad label
        fail(key, f"a class name or an index in [0, {len(classes)})")
    return index


def _parse_time(value, default: datetime, field: str, fail) -> datetime:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    fail(field, "an ISO 8601 time, like 2024-05-01T12:00:00+00:00")
    return default


def _implied_history(label, original, changed_by, created_at, changed_at, actor) -> list:
    """The events a record without ``history`` implies: its original label's ingest, and
    the change to its current label."""
    if label is None:
        return []
    events = [{"old_label": None, "new_label": original, "actor": actor, "at": created_at,
               "why": IMPORT_CAUSE, "reason": "ingest", "original_query": None}]
    if label != original:
        events.append({"old_label": original, "new_label": label, "actor": changed_by,
                       "at": changed_at, "why": IMPORT_CAUSE, "reason": "label change",
                       "original_query": None})
    return events


def _history(history, classes: list, actor: str, created_at: datetime, fail) -> list:
    """A record's recorded ``history`` as label events (why ``import``; the original cause,
    query and reason in ``reason``)."""
    if not isinstance(history, list):
        fail("history", "a list of label events")
        return []
    events = []
    for j, event in enumerate(history):
        field = f"history.{j}"
        if not isinstance(event, dict):
            fail(field, "an object with new_label, actor and at")
            continue

        def fail_event(key: str, message: str, _field=field):
            fail(f"{_field}.{key}", message)

        new = _label(event, "new_label", classes, fail_event)
        if new is None:
            fail_event("new_label", "a class name or an index")
            continue
        old = _label(event, "old_label", classes, fail_event)
        who = event.get("actor")
        if who is not None and not isinstance(who, str):
            fail_event("actor", "a string")
        why, reason, query = event.get("why"), event.get("reason"), event.get("query_id")
        if why is not None and not isinstance(why, str):
            fail_event("why", "a string")
        if reason is not None and not isinstance(reason, str):
            fail_event("reason", "a string")
        if query is not None and (isinstance(query, bool) or not isinstance(query, int)):
            fail_event("query_id", "an integer")
        at = _parse_time(event.get("at"), created_at, "at", fail_event)
        note = " ".join(str(part) for part in (
            why or "unknown", f"(query {query})" if query is not None else None) if part)
        if reason:
            note = f"{note}: {reason}"
        events.append({"old_label": old, "new_label": new, "actor": (who or actor)[:200],
                       "at": at, "why": IMPORT_CAUSE, "reason": note,
                       "original_query": query})
    return events
