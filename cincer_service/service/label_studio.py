"""Label Studio: the ML backend protocol's use cases, annotations as examples, paired
review tasks and the ``label_studio_sync`` job.

A Label Studio project is connected to one of our projects by pointing its ML backend at
``/integrations/label-studio/<pid>/`` (the API layer, ``api.integrations.label_studio``)
with HTTP basic auth whose password is one of the project's tokens.

* ``setup`` parses the project's label config (one single-choice ``Choices`` over a
  ``Text``, ``Image`` or ``Table`` data field, its choices among our classes) and stores the
  link: the Label Studio project, its host and access token (Label Studio sends both), the
  URL it reached us by and the Authorization header it used, so that the sync can register
  our ``/webhook`` with the same credentials.
* ``predict`` answers Label Studio's result format with the current model's prediction,
  ``score`` and ``model_version``.
* ``handle_webhook`` turns ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` into labelled
  examples through ``examples.ingest`` (external id ``ls-task-<task id>``; one example per
  task, labelled by the task's latest live annotation), idempotent by task and annotation
  id (``LabelStudioAnnotation``); ``ANNOTATIONS_DELETED`` relabels from the remaining
  annotations or removes the example. It only records: screening runs as the ``screen``
  job. An annotation of a *review* task (``data.cincer_query_id``) is the answer to that
  query, applied through ``queries.answer_query`` with the Label Studio user as annotator.
* Paired review tasks: when a query opens (``webhooks`` event ``query.opened``) the sync
  job follows; it creates the review project (two sides, two ``Choices``) once, and one
  task per open query with the model's prediction pre-filled and the suspicion and
  influence scores in its data. A review task whose query closed or was answered elsewhere
  is deleted from Label Studio.
* ``sync`` (job ``label_studio_sync``) also pulls every annotation of the connected project
  (on setup, on demand with ``request_sync``, and every ``PULL_SECONDS``) and ingests what
  a missed webhook dropped: Label Studio's webhooks are unsigned and never retried. A
  Label Studio that is down makes the job fail; the runner logs it and retries with backoff,
  and the link keeps the last error.

Label Studio is reached through ``client_factory(hostname, access_token)`` (``RestClient``,
plain ``requests`` against Label Studio's REST API); tests swap in a fake.
"""
from __future__ import annotations

import base64
import io
import logging
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import numpy as np
import requests
from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from . import examples, freshness, jobs, queries, webhooks
from .access import Principal
from .context import ServiceContext, latest_version, project_row
from .errors import BadInput, Conflict, NotFound, ServiceError
from .labels import LabelChange, change_labels
from .projects import label_name
from .store import Base, Example, Project, Query, Token, UTCDateTime, retry_transaction, utcnow

log = logging.getLogger(__name__)

OBJECT_KINDS = {"Text": "text", "HyperText": "text", "Image": "image", "Table": "tabular"}
# Control tags we cannot serve, and why (a clear error instead of wrong predictions).
UNSUPPORTED = {"Labels": "spans (Labels)", "HyperTextLabels": "spans (HyperTextLabels)",
               "ParagraphLabels": "spans (ParagraphLabels)",
               "RectangleLabels": "boxes (RectangleLabels)", "Rectangle": "boxes (Rectangle)",
               "PolygonLabels": "polygons", "Polygon": "polygons",
               "KeyPointLabels": "key points", "KeyPoint": "key points",
               "BrushLabels": "masks (BrushLabels)", "Brush": "masks (Brush)",
               "EllipseLabels": "ellipses", "Ellipse": "ellipses",
               "TextArea": "free text (TextArea)", "Taxonomy": "taxonomies",
               "Rating": "ratings", "Number": "numbers", "DateTime": "dates",
               "Ranker": "rankings", "Pairwise": "pairwise comparisons",
               "TimeSeriesLabels": "time-series spans", "VideoRectangle": "video boxes"}
MAX_SCHEMA_CHARS = 200_000
SUSPICION_FIELD = "cincer_suspicion"        # task data: the Data Manager sorts by it
PAIR_TAG = "cincer_pair"                    # task data of a review task
QUERY_FIELD = "cincer_query_id"
PULL_SECONDS = 300.0                        # the scheduled pull of every annotation
PAGE = 100
HTTP_TIMEOUT = 10.0
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]
CREATED = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
DELETED = ("ANNOTATIONS_DELETED", "ANNOTATION_DELETED")
OPEN_STATUSES = ("open", "leased")


# -- tables (migration 0010_label_studio) ---------------------------------------------------
class LabelStudioLink(Base):
    """One of our projects connected to a Label Studio project (``setup``)."""

    __tablename__ = "label_studio_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, unique=True)
    ls_project: Mapped[str] = mapped_column(String(100))       # "<id>.<created timestamp>"
    ls_project_id: Mapped[int] = mapped_column(Integer)
    hostname: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    access_token: Mapped[str | None] = mapped_column(String(200), nullable=True)
    backend_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    auth_header: Mapped[str | None] = mapped_column(String(400), nullable=True)
    token_id: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict] = mapped_column(JSON)
    users: Mapped[dict | None] = mapped_column(JSON, nullable=True)     # id -> email
    review_project_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    webhooks_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    pull_wanted: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LabelStudioAnnotation(Base):
    """One Label Studio annotation as we ingested it (the idempotency key)."""

    __tablename__ = "label_studio_annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    ls_task_id: Mapped[int] = mapped_column(Integer)
    ls_annotation_id: Mapped[int] = mapped_column(Integer)
    example_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    label: Mapped[int] = mapped_column(Integer)
    annotator: Mapped[str] = mapped_column(String(200))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # The screening margin last written into the task's ``data.cincer_suspicion``.
    suspicion_pushed: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LabelStudioReview(Base):
    """The review task of one query: ``pending`` (to create), ``open``, ``answered``,
    ``removed`` (its query closed or was answered elsewhere)."""

    __tablename__ = "label_studio_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    query_id: Mapped[int] = mapped_column(Integer, unique=True)
    ls_project_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ls_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LabelStudioUnavailable(ServiceError):
    """Label Studio did not answer, or answered with an error."""

    code = "label_studio_unavailable"


# -- the label config ----------------------------------------------------------------------
def parse_config(schema, project: Project) -> dict:
    """What we serve from a Label Studio label config: ``{from_name, to_name, tag, kind,
    data_field, choices}`` (``choices``: Label Studio's choice values in config order, each
    one of the project's class names). ``BadInput`` naming what cannot be served."""
    if not isinstance(schema, str) or not schema.strip():
        raise BadInput("the label config is missing", {"schema": ["the project's label config"]})
    if len(schema) > MAX_SCHEMA_CHARS:
        raise BadInput("the label config is too long", {"schema": [f"at most {MAX_SCHEMA_CHARS}"]})
    if "<!DOCTYPE" in schema or "<!ENTITY" in schema:
        raise BadInput("the label config may not declare entities", {"schema": ["plain XML"]})
    try:
        root = ET.fromstring(schema)
    except ET.ParseError as exc:
        raise BadInput(f"the label config is not XML ({exc})", {"schema": ["valid XML"]}) from None
    tags = list(root.iter())
    unsupported = sorted({UNSUPPORTED[t.tag] for t in tags if t.tag in UNSUPPORTED})
    choices_tags = [t for t in tags if t.tag == "Choices"]
    if unsupported:
        raise BadInput("unsupported label config: cincer-service serves one single-choice "
                       f"Choices over Text, Image or Table, not {', '.join(unsupported)}",
                       {"schema": unsupported})
    if len(choices_tags) != 1:
        raise BadInput("unsupported label config: it needs exactly one Choices tag "
                       f"(found {len(choices_tags)})", {"schema": ["one Choices tag"]})
    control = choices_tags[0]
    if control.get("choice", "single") not in ("single", "single-radio"):
        raise BadInput("unsupported label config: multi-label Choices (choice="
                       f"\"{control.get('choice')}\"); use choice=\"single\"",
                       {"schema": ["single-choice Choices"]})
    to_name = control.get("toName", "")
    objects = {t.get("name"): t for t in tags if t.tag in OBJECT_KINDS}
    target = objects.get(to_name)
    if target is None:
        raise BadInput(f"unsupported label config: Choices must point (toName) at a Text, "
                       f"Image or Table tag; {to_name!r} is none", {"schema": ["toName"]})
    value = target.get("value", "")
    if not value.startswith("$") or len(value) < 2:
        raise BadInput("unsupported label config: the data tag's value must be a data field "
                       "($field)", {"schema": ["value=\"$field\""]})
    kind = OBJECT_KINDS[target.tag]
    if kind != project.input_kind:
        raise BadInput(f"the label config shows {target.tag} ({kind}) but project "
                       f"{project.id} takes {project.input_kind} inputs",
                       {"schema": [f"a tag for {project.input_kind} inputs"]})
    values = [c.get("value", c.get("alias")) for c in control.iter("Choice")]
    classes = [str(c) for c in project.classes]
    unknown = [v for v in values if v not in classes]
    if not values or unknown:
        raise BadInput("the config's choices must be the project's classes",
                       {"schema": [f"unknown classes {unknown[:20]}" if unknown
                                   else "no Choice tags"], "classes": classes})
    return {"from_name": control.get("name"), "to_name": to_name, "tag": target.tag,
            "kind": kind, "data_field": value[1:], "choices": values}


def model_version_name(pid: int, version: int | None) -> str:
    return f"cincer-{pid}-v{version or 0}"


# -- Label Studio's REST API ---------------------------------------------------------------
class RestClient:
    """The few calls of Label Studio's REST API the integration makes (``Token`` auth: the
    legacy token Label Studio hands its ML backends in ``/setup``)."""

    def __init__(self, hostname: str, access_token: str):
        if not hostname or not access_token:
            raise LabelStudioUnavailable("Label Studio's host or access token is unknown: "
                                         "connect the ML backend again (setup)")
        self.base = hostname.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {access_token}"

    def _call(self, method: str, path: str, missing_ok: bool = False, **kwargs):
        try:
            response = self.session.request(method, self.base + path, timeout=HTTP_TIMEOUT,
                                            **kwargs)
        except requests.RequestException as exc:
            raise LabelStudioUnavailable(f"Label Studio at {self.base} is unreachable: "
                                         f"{type(exc).__name__}: {exc}") from None
        if response.status_code == 404 and (missing_ok or method == "DELETE"):
            return None
        if response.status_code >= 400:
            raise LabelStudioUnavailable(f"Label Studio answered {response.status_code} to "
                                         f"{method} {path}: {response.text[:300]}")
        return response.json() if response.content else None

    def create_project(self, title: str, label_config: str) -> int:
        return self._call("POST", "/api/projects/", json={"title": title,
                                                          "label_config": label_config})["id"]

    def webhooks(self, project: int) -> list[dict]:
        return self._call("GET", "/api/webhooks/", params={"project": project}) or []

    def create_webhook(self, project: int, url: str, headers: dict) -> int:
        return self._call("POST", "/api/webhooks/", json={
            "project": project, "url": url, "send_payload": True, "send_for_all_actions": False,
            "headers": headers, "is_active": True, "actions": WEBHOOK_ACTIONS})["id"]

    def update_webhook(self, webhook_id: int, headers: dict) -> None:
        self._call("PATCH", f"/api/webhooks/{webhook_id}/", json={
            "headers": headers, "send_payload": True, "send_for_all_actions": False,
            "is_active": True, "actions": WEBHOOK_ACTIONS})

    def create_task(self, project: int, data: dict, predictions: list[dict]) -> int:
        task = self._call("POST", "/api/tasks/", json={"project": project, "data": data})
        for p in predictions:
            self._call("POST", "/api/predictions/", json={"task": task["id"], **p})
        return task["id"]

    def users(self) -> list[dict]:
        answer = self._call("GET", "/api/users/")
        return answer.get("results", []) if isinstance(answer, dict) else answer or []

    def task(self, task_id: int) -> dict | None:
        """The task, or ``None`` when it was deleted."""
        return self._call("GET", f"/api/tasks/{task_id}/", missing_ok=True)

    def update_task_data(self, task_id: int, data: dict) -> None:
        self._call("PATCH", f"/api/tasks/{task_id}/", json={"data": data})

    def delete_task(self, task_id: int) -> None:
        self._call("DELETE", f"/api/tasks/{task_id}/")

    def tasks(self, project: int):
        """Every task of ``project`` with its annotations, page by page."""
        page = 1
        while True:
            answer = self._call("GET", "/api/tasks/", params={
                "project": project, "page": page, "page_size": PAGE, "fields": "all"})
            items = answer.get("tasks", []) if isinstance(answer, dict) else answer or []
            for task in items:
                if "annotations" not in task:
                    task["annotations"] = self._call(
                        "GET", f"/api/tasks/{task['id']}/annotations/") or []
                yield task
            total = answer.get("total") if isinstance(answer, dict) else None
            if len(items) < PAGE or (total is not None and page * PAGE >= total):
                return
            page += 1


client_factory = RestClient          # (hostname, access_token) -> client; tests swap it


def client_of(link: LabelStudioLink):
    return client_factory(link.hostname, link.access_token)


# -- setup and predict ---------------------------------------------------------------------
def parse_ls_project(value) -> tuple[str, int]:
    """``("12.1700000000", 12)`` from Label Studio's project uid (or a bare id)."""
    text = str(value if value is not None else "").strip()
    head = text.partition(".")[0]
    if not head.isdigit():
        raise BadInput("missing or invalid Label Studio project", {"project": [
            "Label Studio's project uid, '<id>.<timestamp>'"]})
    return text[:100], int(head)


@retry_transaction
def setup(ctx: ServiceContext, pid: int, principal: Principal, payload: dict,
          backend_url: str | None = None, auth_header: str | None = None) -> dict:
    """Label Studio's ``POST /setup``: check the label config, store the link, ask for a
    sync (webhooks, review project, first pull). ``{"model_version": ...}``."""
    if not isinstance(payload, dict):
        raise BadInput("the setup body must be an object", {"body": ["an object"]})
    ls_project, ls_project_id = parse_ls_project(payload.get("project"))
    with ctx.store.session() as s:
        project = project_row(s, pid, lock=True)
        config = parse_config(payload.get("schema"), project)
        now = utcnow()
        link = s.scalar(select(LabelStudioLink).where(LabelStudioLink.project_id == pid))
        if link is None:
            link = LabelStudioLink(project_id=pid, created_at=now)
            s.add(link)
        elif link.ls_project_id != ls_project_id:
            link.review_project_id = None
        link.webhooks_ready = False         # checked again (the credentials may be new)
        hostname = payload.get("hostname")
        token = payload.get("access_token")
        link.ls_project, link.ls_project_id, link.config = ls_project, ls_project_id, config
        link.hostname = str(hostname)[:2000] if hostname else link.hostname
        link.access_token = str(token)[:200] if token else link.access_token
        link.backend_url = (backend_url or link.backend_url or "")[:2000] or None
        link.auth_header = (auth_header or link.auth_header or "")[:400] or None
        link.token_id, link.pull_wanted, link.updated_at = principal.token_id, True, now
        version = latest_version(s, pid)
        jobs.follow(s, jobs.LABEL_STUDIO_SYNC(pid))
        return {"model_version": model_version_name(pid, version and version.version)}


def _link(s, pid: int) -> LabelStudioLink:
    link = s.scalar(select(LabelStudioLink).where(LabelStudioLink.project_id == pid))
    if link is None:
        raise NotFound(f"project {pid} is not connected to Label Studio: connect its ML "
                       "backend first (setup)", {"project_id": pid})
    return link


def task_item(project: Project, config: dict, task) -> dict:
    """The ingest item (without label) for a Label Studio task; ``BadInput`` when the task
    lacks the configured data field or it does not fit the project."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise BadInput("the task has no data", {"task.data": ["an object"]})
    field = config["data_field"]
    value = task["data"].get(field)
    if value is None:
        raise BadInput(f"the task has no data field {field!r}", {f"task.data.{field}": [
            "required by the label config"]})
    kind = config["kind"]
    if kind == "text":
        return {"text": value}
    if kind == "image":
        if not isinstance(value, str) or not value.startswith("data:image"):
            raise BadInput("only images sent inline as data: URLs can be featurized",
                           {f"task.data.{field}": ["a data:image/...;base64 URL"]})
        return {"image": value}
    if isinstance(value, dict):
        names = project.feature_names or list(value)
        missing = [n for n in names if n not in value]
        if missing:
            raise BadInput("the task's table lacks features", {f"task.data.{field}": [
                f"missing {missing[:10]}"]})
        value = [value[n] for n in names]
    return {"x": value}


def predict(ctx: ServiceContext, pid: int, payload: dict) -> dict:
    """Label Studio's ``POST /predict``: one prediction per task (the current model's class,
    its probability as ``score``). A task we cannot featurize gets an empty result."""
    tasks = payload.get("tasks") if isinstance(payload, dict) else None
    if not isinstance(tasks, list):
        raise BadInput("the body needs a list of tasks", {"tasks": ["a list"]})
    with ctx.store.session() as s:
        project = project_row(s, pid)
        link = _link(s, pid)
        config = link.config
        version = latest_version(s, pid)
        name = model_version_name(pid, version and version.version)
        shape = tuple(project.input_shape)
        rows, results = [], [{"result": [], "score": 0.0, "model_version": name} for _ in tasks]
        from ..featurize import BadItem, featurize
        for i, task in enumerate(tasks):
            try:
                x, _ = featurize(project.input_kind, task_item(project, config, task), shape)
            except (BadInput, BadItem) as exc:
                log.info("label studio predict: task %s skipped: %s",
                         task.get("id") if isinstance(task, dict) else None, exc)
                continue
            rows.append((i, x))
        if version is None or not rows:
            return {"results": results, "model_version": name}
        clf = ctx.models.classifier(project, version)
        probs = clf.predict_proba(np.stack([x for _, x in rows]))
    classes = [str(c) for c in project.classes]
    for (i, _), p in zip(rows, probs):
        best = int(np.argmax(p))
        if classes[best] not in config["choices"]:
            continue
        results[i] = {"model_version": name, "score": float(p[best]), "result": [{
            "from_name": config["from_name"], "to_name": config["to_name"],
            "type": "choices", "value": {"choices": [classes[best]]}}]}
    return {"results": results, "model_version": name}


# -- webhooks ------------------------------------------------------------------------------
def annotation_label(config: dict, classes: list, annotation: dict, from_name=None,
                     required: bool = True) -> int | None:
    """The class index an annotation chose in ``from_name`` (default: the config's
    Choices); ``BadInput`` for a class the config does not offer."""
    from_name = from_name or config["from_name"]
    chosen = None
    for region in annotation.get("result") or []:
        if isinstance(region, dict) and region.get("from_name") == from_name \
                and region.get("type", "choices") == "choices":
            values = (region.get("value") or {}).get("choices") or []
            if len(values) != 1:
                raise BadInput("an annotation must choose exactly one class",
                               {"annotation.result": [f"one choice in {from_name}"]})
            chosen = values[0]
    if chosen is None:
        if required:
            raise BadInput(f"the annotation chooses nothing in {from_name!r}",
                           {"annotation.result": [f"a choice in {from_name}"]})
        return None
    names = [str(c) for c in classes]
    if chosen not in names or (config.get("choices") and chosen not in config["choices"]):
        raise BadInput(f"the annotation names class {chosen!r}, which is not in the label "
                       "config", {"annotation.result": [f"one of {config.get('choices')}"]})
    return names.index(chosen)


def annotator_name(annotation: dict, users: dict | None = None) -> str:
    """``label-studio:<email>`` of the annotation's author (its id when the email is not
    known yet: the sync reads Label Studio's users)."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("username") or who.get("id")
    elif who is not None and users:
        who = users.get(str(who), who)
    return f"label-studio:{who if who is not None else 'unknown'}"[:200]


def _int(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise BadInput(f"missing or invalid {field}", {field: ["an integer id"]})
    return value


def handle_webhook(ctx: ServiceContext, pid: int, principal: Principal, payload: dict) -> dict:
    """Label Studio's ``POST /webhook``: record the event and return (screening follows as
    a job). ``{"action", "outcome", ...}``; unknown actions are acknowledged and ignored."""
    if not isinstance(payload, dict):
        raise BadInput("the webhook body must be an object", {"body": ["an object"]})
    action = payload.get("action")
    if action in CREATED and isinstance(payload.get("annotation"), list):
        tasks = {t.get("id"): t for t in payload.get("task") or [] if isinstance(t, dict)}
        items = []
        for annotation in payload["annotation"]:
            if not isinstance(annotation, dict):
                continue
            one = {"action": action, "annotation": annotation,
                   "task": tasks.get(annotation.get("task"))}
            try:
                items.append(handle_webhook(ctx, pid, principal, one))
            except (BadInput, Conflict) as exc:     # the others still count; sync retries
                items.append({"outcome": "rejected", "error": exc.message})
        return {"action": action, "outcome": "batch", "items": items}
    if action in CREATED:
        annotation, task = payload.get("annotation"), payload.get("task")
        if not isinstance(annotation, dict):
            raise BadInput("the event has no annotation", {"annotation": ["an object"]})
        if not isinstance(task, dict):
            task = {"id": annotation.get("task"), "data": None}
        if isinstance(task.get("data"), dict) and QUERY_FIELD in task["data"]:
            return {"action": action, **apply_review_answer(ctx, pid, principal, task,
                                                            annotation)}
        return {"action": action, **ingest_annotation(ctx, pid, task, annotation)}
    if action in DELETED:
        ids = [_int(a.get("id") if isinstance(a, dict) else a, "annotations.id")
               for a in payload.get("annotations") or [payload.get("annotation") or {}]]
        return {"action": action, **delete_annotations(ctx, pid, ids)}
    return {"action": action, "outcome": "ignored"}


def ingest_annotation(ctx: ServiceContext, pid: int, task: dict, annotation: dict,
                      actor: str | None = None) -> dict:
    """Make the task's example carry the annotation's label, idempotent by task and
    annotation id. Validates everything before storing anything."""
    task_id = _int(task.get("id"), "task.id")
    annotation_id = _int(annotation.get("id"), "annotation.id")
    with ctx.store.session() as s:
        project = project_row(s, pid)
        link = _link(s, pid)
        config, classes = link.config, list(project.classes)
        actor = actor or annotator_name(annotation, link.users)
        known = s.scalar(select(LabelStudioAnnotation).where(
            LabelStudioAnnotation.project_id == pid,
            LabelStudioAnnotation.ls_annotation_id == annotation_id))
    if annotation.get("was_cancelled"):
        return {"outcome": "ignored", "reason": "skipped annotation"}
    label = annotation_label(config, classes, annotation)
    if known is not None and known.ls_task_id != task_id:
        raise Conflict("this annotation id was recorded for another task",
                       {"annotation_id": annotation_id, "task_id": known.ls_task_id})
    if known is not None and not known.deleted and known.label == label \
            and known.example_id is not None:
        return {"outcome": "replayed", "example_id": known.example_id}
    data = task.get("data")
    if not isinstance(data, dict):
        raise BadInput("the event's task has no data", {"task.data": ["an object"]})
    item = task_item(project, config, task)
    # The task's label: this annotation's, unless a later live annotation says otherwise.
    with ctx.store.session() as s:
        later = s.scalar(select(LabelStudioAnnotation.label).where(
            LabelStudioAnnotation.project_id == pid, LabelStudioAnnotation.ls_task_id == task_id,
            LabelStudioAnnotation.deleted.is_(False),
            LabelStudioAnnotation.ls_annotation_id > annotation_id)
            .order_by(LabelStudioAnnotation.ls_annotation_id.desc()).limit(1))
    item.update(external_id=f"ls-task-{task_id}", label=classes[label if later is None else later],
                source="label-studio")
    result = examples.ingest(ctx, pid, [item], actor=actor)[0]
    _record_annotation(ctx, pid, task_id, annotation_id, result["id"], label, actor)
    return {"outcome": result["outcome"], "example_id": result["id"], "status": result["status"]}


@retry_transaction
def _record_annotation(ctx, pid, task_id, annotation_id, example_id, label, actor) -> None:
    now = utcnow()
    try:
        with ctx.store.session() as s:
            row = s.scalar(select(LabelStudioAnnotation).where(
                LabelStudioAnnotation.project_id == pid,
                LabelStudioAnnotation.ls_annotation_id == annotation_id).with_for_update())
            if row is None:
                s.add(LabelStudioAnnotation(project_id=pid, ls_task_id=task_id,
                                            ls_annotation_id=annotation_id, example_id=example_id,
                                            label=label, annotator=actor, deleted=False,
                                            updated_at=now))
            else:
                row.example_id, row.label, row.deleted, row.updated_at = \
                    example_id, label, False, now
    except IntegrityError:          # the same annotation recorded concurrently: a replay
        pass


def delete_annotations(ctx: ServiceContext, pid: int, annotation_ids: list[int]) -> dict:
    """Label Studio deleted annotations: each task's example takes the label of its latest
    remaining annotation, or is removed when none remains. Unknown ids are ignored."""
    changed = 0
    for annotation_id in annotation_ids:
        changed += _delete_one(ctx, pid, annotation_id)
    return {"outcome": "deleted", "examples_changed": changed}


@retry_transaction
def _delete_one(ctx: ServiceContext, pid: int, annotation_id: int) -> int:
    with ctx.store.session() as s:
        project_row(s, pid, lock=True)
        row = s.scalar(select(LabelStudioAnnotation).where(
            LabelStudioAnnotation.project_id == pid,
            LabelStudioAnnotation.ls_annotation_id == annotation_id))
        if row is None or row.deleted:
            return 0
        row.deleted, row.updated_at = True, utcnow()
        if row.example_id is None:
            return 0
        remaining = s.scalar(select(LabelStudioAnnotation.label).where(
            LabelStudioAnnotation.project_id == pid,
            LabelStudioAnnotation.ls_task_id == row.ls_task_id,
            LabelStudioAnnotation.deleted.is_(False))
            .order_by(LabelStudioAnnotation.ls_annotation_id.desc()).limit(1))
        change = LabelChange(row.example_id, None, "overview_remove") if remaining is None \
            else LabelChange(row.example_id, remaining, "ingest_update")
        outcome = change_labels(s, pid, [change], row.annotator,
                                reason=f"Label Studio annotation {annotation_id} deleted",
                                skip_unchanged=True)
        if outcome.training_changed:
            s.execute(update(Project).where(Project.id == pid)
                      .values(generation=Project.generation + 1))
        return len(outcome.recorded)


# -- review tasks --------------------------------------------------------------------------
REVIEW_OBJECT = {"text": "Text", "image": "Image", "tabular": "Table"}


def review_config(kind: str, classes: list) -> str:
    """The review project's label config: the suspicious example and its counter-example
    side by side, a single-choice ``Choices`` under each, the reason below."""
    tag = REVIEW_OBJECT[kind]
    choices = "".join(f'<Choice value="{_xml(str(c))}"/>' for c in classes)

    def side(name: str, title: str, required: str) -> str:
        return ('<View style="flex: 1; padding: 0 1em"><Header value="$' + name + '_title"/>'
                f'<{tag} name="{name}" value="${name}"/>'
                f'<Choices name="{name}_label" toName="{name}" choice="single" '
                f'showInline="true" required="{required}">{choices}</Choices></View>')
    return ('<View><Header value="' + _xml(title_text()) + '"/>'
            '<View style="display: flex">' + side("example", "Suspicious example", "true")
            + side("counterexample", "Counter-example", "false") + '</View>'
            '<Text name="why" value="$why"/></View>')


def title_text() -> str:
    return ("CINCER: the model doubts the example's label. Check both labels; the "
            "counter-example is the training example that most supports the model's view.")


def _xml(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def side_value(project: Project, e: Example):
    if project.input_kind == "text":
        return e.raw
    x = e.features(project.input_shape)
    if project.input_kind == "image":
        return png_data_url(x)
    names = project.feature_names or [f"x{i}" for i in range(x.size)]
    return {str(n): round(float(v), 6) for n, v in zip(names, x.ravel())}


def png_data_url(x: np.ndarray) -> str:
    from PIL import Image
    pixels = np.clip(np.asarray(x, dtype=np.float32) * 255.0, 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    image = Image.fromarray(pixels)
    if image.size[0] < 128:
        image = image.resize((128 * image.size[0] // max(image.size[0], 1),
                              128 * image.size[1] // max(image.size[0], 1)), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def review_task(s, project: Project, q: Query) -> tuple[dict, list[dict]]:
    """The review task's data and its pre-filled prediction for query ``q``."""
    classes = [str(c) for c in project.classes]
    example = s.get(Example, q.example_id)
    counter = s.get(Example, q.counterexample_id) if q.counterexample_id else None
    explanation = queries.explain(q, project, example.label,
                                  None if counter is None else counter.label)
    influence = q.ranking[0]["score"] if q.ranking else None
    data = {QUERY_FIELD: q.id, PAIR_TAG: True, SUSPICION_FIELD: round(float(q.margin), 6),
            "cincer_example_id": example.id, "cincer_external_id": example.external_id,
            "cincer_influence": None if influence is None else round(float(influence), 6),
            "example": side_value(project, example),
            "example_title": f"Suspicious example: labelled {classes[example.label]}, the "
                             f"model predicts {classes[q.prediction]} "
                             f"(suspicion {q.margin:.2f})",
            "example_label": classes[example.label], "prediction": classes[q.prediction],
            "counterexample": "" if counter is None else side_value(project, counter),
            "counterexample_title": "No counter-example" if counter is None else
            f"Counter-example: labelled {classes[counter.label]}"
            + ("" if influence is None else f" (influence {influence:.3g})"),
            "counterexample_label": None if counter is None else classes[counter.label],
            "why": " ".join(explanation["sentences"])}
    result = [{"from_name": "example_label", "to_name": "example", "type": "choices",
               "value": {"choices": [classes[q.prediction]]}}]
    if counter is not None:
        result.append({"from_name": "counterexample_label", "to_name": "counterexample",
                       "type": "choices", "value": {"choices": [classes[counter.label]]}})
    prediction = {"model_version": model_version_name(project.id, q.model_version),
                  "score": round(float(q.margin), 6), "result": result}
    return data, [prediction]


def apply_review_answer(ctx: ServiceContext, pid: int, principal: Principal | None, task: dict,
                        annotation: dict) -> dict:
    """An annotation of a review task is the answer to its query: leased to the
    integration's token (compare-and-set), then ``queries.answer_query`` with the Label
    Studio user as annotator. A query no longer open gets ``outcome: stale``."""
    qid = _int(task["data"].get(QUERY_FIELD), f"task.data.{QUERY_FIELD}")
    with ctx.store.session() as s:
        project = project_row(s, pid)
        link = _link(s, pid)
        q = s.get(Query, qid)
        if q is None or q.project_id != pid:
            raise BadInput(f"review task {task.get('id')} names query {qid}, which is not in "
                           f"project {pid}", {QUERY_FIELD: ["a query of this project"]})
        token = s.get(Token, principal.token_id if principal else link.token_id)
        classes = list(project.classes)
        config = {"choices": [str(c) for c in classes]}
        example_label = annotation_label(config, classes, annotation, "example_label")
        counter_label = annotation_label(config, classes, annotation, "counterexample_label",
                                         required=False)
        if q.counterexample_id is None:
            counter_label = None
        status, counter_id = q.status, q.counterexample_id
        stored = (q.answered_by, q.answer_example_label, q.answer_counterexample_label)
        actor = annotator_name(annotation, link.users)
    if token is None:
        raise BadInput("the integration's token is gone", {"token": ["connect again"]})
    who = Principal(token.id, pid, token.role, actor)
    if status not in ("open", "leased", "answered"):
        _set_review(ctx, qid, "removed", f"query {status}")
        return {"outcome": "stale", "query_id": qid, "query_status": status}
    if stored == (actor, example_label, counter_label):
        # Label Studio delivered this annotation again (its webhooks retry): the answer
        # stands; sending it to ``answer_query`` again would be a second answer (a 409).
        _set_review(ctx, qid, "answered", None)
        return {"outcome": "answered", "query_id": qid, "query_status": status,
                "annotator": actor}
    if status != "answered":
        now = utcnow()
        with ctx.store.session() as s:
            s.execute(update(Query).where(
                Query.id == qid, freshness.available_condition(now)).values(
                status="leased", lease_holder=who.token_id,
                lease_expires_at=now + timedelta(seconds=ctx.settings.lease_seconds))
                .execution_options(synchronize_session=False))
    try:
        view = queries.answer_query(ctx, pid, qid, example_label, counter_label, who,
                                    counterexample_not_sure=counter_id is not None
                                    and counter_label is None)
    except Conflict as exc:
        _set_review(ctx, qid, "open", exc.message)
        raise
    _set_review(ctx, qid, "answered", None)
    return {"outcome": "answered", "query_id": qid, "query_status": view["status"],
            "annotator": actor}


def _set_review(ctx: ServiceContext, qid: int, status: str, error: str | None) -> None:
    with ctx.store.session() as s:
        s.execute(update(LabelStudioReview).where(LabelStudioReview.query_id == qid)
                  .values(status=status, error=error, updated_at=utcnow()))


def on_query_event(s, pid: int, data: dict) -> None:
    """``webhooks`` listener: a query opened or was answered in a connected project; the
    sync job follows the commit (to create or remove its review task)."""
    cache = s.info.setdefault("label_studio_links", {})
    if pid not in cache:
        cache[pid] = s.scalar(select(LabelStudioLink.id).where(
            LabelStudioLink.project_id == pid)) is not None
    if cache[pid]:
        jobs.follow(s, jobs.LABEL_STUDIO_SYNC(pid))


webhooks.on("query.opened", on_query_event)
webhooks.on("query.answered", on_query_event)


# -- the sync job --------------------------------------------------------------------------
def request_sync(ctx: ServiceContext, pid: int) -> dict:
    """Ask for a full pull of the Label Studio project now (the job follows)."""
    with ctx.store.session() as s:
        link = _link(s, pid)
        link.pull_wanted = True
        jobs.follow(s, jobs.LABEL_STUDIO_SYNC(pid))
        return status_view(link)


def status_view(link: LabelStudioLink) -> dict:
    return {"project_id": link.project_id, "ls_project_id": link.ls_project_id,
            "review_project_id": link.review_project_id, "config": link.config,
            "webhooks_ready": link.webhooks_ready, "pull_wanted": link.pull_wanted,
            "synced_at": link.synced_at, "last_error": link.last_error}


def get_status(ctx: ServiceContext, pid: int) -> dict:
    with ctx.store.session() as s:
        return status_view(_link(s, pid))


def sync(ctx: ServiceContext, pid: int) -> dict:
    """Job ``label_studio_sync``: webhooks and review project in place, a pull of every
    annotation when one is due, review tasks for open queries, removal of those whose query
    closed. Raises ``LabelStudioUnavailable`` (after recording it on the link) when Label
    Studio is down: the runner retries with backoff."""
    try:
        return _sync(ctx, pid)
    except LabelStudioUnavailable as exc:
        with ctx.store.session() as s:
            s.execute(update(LabelStudioLink).where(LabelStudioLink.project_id == pid)
                      .values(last_error=exc.message[:2000], updated_at=utcnow()))
        log.warning("label studio sync of project %s failed: %s", pid, exc.message)
        raise


def _sync(ctx: ServiceContext, pid: int) -> dict:
    counts = {"ingested": 0, "rejected": 0, "answered": 0, "created": 0, "removed": 0}
    with ctx.store.session() as s:
        link = s.scalar(select(LabelStudioLink).where(LabelStudioLink.project_id == pid))
        if link is None:
            return counts
        project = project_row(s, pid)
        kind, classes, title = project.input_kind, list(project.classes), project.name
        now = utcnow()
        due = link.pull_wanted or link.synced_at is None \
            or link.synced_at < now - timedelta(seconds=PULL_SECONDS)
        snapshot = (link.ls_project_id, link.review_project_id, link.webhooks_ready,
                    link.backend_url, link.auth_header)
    client = client_of(link)
    ls_project_id, review_project_id, ready, backend_url, auth_header = snapshot
    if due or not ready:
        users = {str(u["id"]): u.get("email") or u.get("username") or str(u["id"])
                 for u in client.users() if isinstance(u, dict) and "id" in u}
        _update_link(ctx, pid, users=users)
    if review_project_id is None:
        review_project_id = client.create_project(
            f"{title} · CINCER review"[:50], review_config(kind, classes))
        _update_link(ctx, pid, review_project_id=review_project_id, webhooks_ready=False)
        ready = False
    if not ready and backend_url:
        url = backend_url.rstrip("/") + "/webhook"
        headers = {"Authorization": auth_header} if auth_header else {}
        for target in (ls_project_id, review_project_id):
            # Label Studio registers ``<backend>/webhook`` itself, without credentials: ours
            # get added to it (and it is limited to annotation events).
            ours = [w for w in client.webhooks(target) if w.get("url") == url]
            if not ours:
                client.create_webhook(target, url, headers)
            for hook in ours:
                if (hook.get("headers") or {}) != headers or hook.get("send_for_all_actions"):
                    client.update_webhook(hook["id"], headers)
        _update_link(ctx, pid, webhooks_ready=True)
    if due:
        for task in client.tasks(ls_project_id):
            for annotation in task.get("annotations") or []:
                if annotation.get("was_cancelled"):
                    continue
                try:
                    outcome = ingest_annotation(ctx, pid, task, annotation)
                    counts["ingested"] += outcome["outcome"] != "replayed"
                except (BadInput, Conflict) as exc:
                    counts["rejected"] += 1
                    log.info("label studio sync: task %s annotation %s rejected: %s",
                             task.get("id"), annotation.get("id"), exc.message)
        for task in client.tasks(review_project_id):
            done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
            if done and isinstance(task.get("data"), dict) and QUERY_FIELD in task["data"]:
                qid = task["data"][QUERY_FIELD]
                with ctx.store.session() as s:
                    q = s.get(Query, qid) if isinstance(qid, int) else None
                    pending = q is not None and q.project_id == pid and q.status in OPEN_STATUSES
                if pending:
                    try:
                        apply_review_answer(ctx, pid, None, task, done[-1])
                        counts["answered"] += 1
                    except (BadInput, Conflict) as exc:
                        log.info("label studio sync: review of query %s: %s", qid, exc.message)
    counts["removed"] = _remove_reviews(ctx, pid, client)
    counts["created"] = _push_reviews(ctx, pid, client, review_project_id)
    counts["suspicion"] = _push_suspicion(ctx, pid, client)
    _update_link(ctx, pid, synced_at=utcnow() if due else None, pull_wanted=False if due else None,
                 last_error=None)
    return counts


def _update_link(ctx: ServiceContext, pid: int, **values) -> None:
    values = {k: v for k, v in values.items() if v is not None or k == "last_error"}
    with ctx.store.session() as s:
        s.execute(update(LabelStudioLink).where(LabelStudioLink.project_id == pid)
                  .values(updated_at=utcnow(), **values))


def _push_reviews(ctx: ServiceContext, pid: int, client, review_project_id: int) -> int:
    """One review task per open query that has none; returns how many were created."""
    created = 0
    while True:
        with ctx.store.session() as s:
            project = project_row(s, pid)
            q = s.scalar(select(Query).outerjoin(
                LabelStudioReview, LabelStudioReview.query_id == Query.id).where(
                Query.project_id == pid, Query.status.in_(OPEN_STATUSES),
                LabelStudioReview.id.is_(None)).order_by(Query.id).limit(1))
            if q is None:
                return created
            now = utcnow()
            review = LabelStudioReview(project_id=pid, query_id=q.id, status="pending",
                                       ls_project_id=review_project_id, created_at=now,
                                       updated_at=now)
            s.add(review)
            data, predictions = review_task(s, project, q)
        try:
            task_id = client.create_task(review_project_id, data, predictions)
        except LabelStudioUnavailable:
            with ctx.store.session() as s:       # created next time
                s.execute(LabelStudioReview.__table__.delete().where(
                    LabelStudioReview.query_id == q.id, LabelStudioReview.status == "pending"))
            raise
        with ctx.store.session() as s:
            s.execute(update(LabelStudioReview).where(LabelStudioReview.query_id == q.id)
                      .values(ls_task_id=task_id, status="open", updated_at=utcnow()))
        created += 1


def _suspicion_due(s, pid: int | None = None):
    """``(task id, margin)`` of annotated tasks whose screening margin is not yet in their
    data (one per task: its latest live annotation)."""
    where = [LabelStudioAnnotation.deleted.is_(False), Example.screen_margin.is_not(None),
             or_(LabelStudioAnnotation.suspicion_pushed.is_(None),
                 LabelStudioAnnotation.suspicion_pushed != Example.screen_margin)]
    if pid is not None:
        where.append(LabelStudioAnnotation.project_id == pid)
    return select(LabelStudioAnnotation.project_id, LabelStudioAnnotation.ls_task_id,
                  Example.screen_margin).join(
        Example, Example.id == LabelStudioAnnotation.example_id).where(*where).distinct()


def _push_suspicion(ctx: ServiceContext, pid: int, client) -> int:
    """Write screened tasks' margins into their data (``cincer_suspicion``), so Label
    Studio's Data Manager can sort by it. Review tasks come first: this stops as soon as
    the project has an example waiting for screening or a counter-example being computed
    (checked before each task: two calls to Label Studio), and the reconciler submits the
    sync again while some are due."""
    with ctx.store.session() as s:
        due = s.execute(_suspicion_due(s, pid).limit(500)).all()
    done = 0
    for _, task_id, margin in due:
        with ctx.store.session() as s:
            busy = s.scalar(select(Example.id).where(
                Example.project_id == pid, Example.status == "pending").limit(1)) is not None \
                or s.scalar(select(Query.id).where(
                    Query.project_id == pid, Query.status == "computing").limit(1)) is not None
        if busy:
            break
        task = client.task(task_id)
        if task is not None:
            data = dict(task.get("data") or {})
            data[SUSPICION_FIELD] = round(float(margin), 6)
            client.update_task_data(task_id, data)
        with ctx.store.session() as s:
            s.execute(update(LabelStudioAnnotation).where(
                LabelStudioAnnotation.project_id == pid,
                LabelStudioAnnotation.ls_task_id == task_id).values(suspicion_pushed=margin))
        done += 1
    return done


def _remove_reviews(ctx: ServiceContext, pid: int, client) -> int:
    """Delete the review tasks whose query closed or was answered elsewhere, and those of
    pairs rebuilt since (``refresh``: their review task is created again, current)."""
    with ctx.store.session() as s:
        rows = s.execute(select(LabelStudioReview.query_id, LabelStudioReview.ls_task_id,
                                Query.status.in_(OPEN_STATUSES))
                         .join(Query, Query.id == LabelStudioReview.query_id).where(
            LabelStudioReview.project_id == pid, LabelStudioReview.status == "open",
            or_(Query.status.not_in(OPEN_STATUSES),
                Query.refreshed_at > LabelStudioReview.created_at))).all()
    for qid, task_id, rebuilt in rows:
        if task_id is not None:
            client.delete_task(task_id)
        if rebuilt:
            with ctx.store.session() as s:
                s.execute(LabelStudioReview.__table__.delete().where(
                    LabelStudioReview.query_id == qid))
        else:
            _set_review(ctx, qid, "removed", None)
    return len(rows)


def unfinished(s, now) -> list[int]:
    """Connected projects with work for the sync: a pull due or asked for, an open query
    without a review task, a review task whose query is no longer open."""
    due = now - timedelta(seconds=PULL_SECONDS)
    pids = set(s.scalars(select(LabelStudioLink.project_id).where(or_(
        LabelStudioLink.pull_wanted.is_(True), LabelStudioLink.synced_at.is_(None),
        LabelStudioLink.synced_at < due))))
    pids |= set(s.scalars(select(Query.project_id).join(
        LabelStudioLink, LabelStudioLink.project_id == Query.project_id).outerjoin(
        LabelStudioReview, LabelStudioReview.query_id == Query.id).where(
        Query.status.in_(OPEN_STATUSES), LabelStudioReview.id.is_(None)).distinct()))
    pids |= {row.project_id for row in s.execute(_suspicion_due(s))}
    pids |= set(s.scalars(select(LabelStudioReview.project_id).join(
        Query, Query.id == LabelStudioReview.query_id).where(and_(
            LabelStudioReview.status == "open", or_(
                Query.status.not_in(OPEN_STATUSES),
                Query.refreshed_at > LabelStudioReview.created_at))).distinct()))
    return sorted(pids)


jobs.LABEL_STUDIO_SYNC.bind(sync, unfinished=unfinished)


# -- Label Studio's JSON task format -------------------------------------------------------
def export_tasks(ctx: ServiceContext, pid: int) -> list[dict]:
    """The project's examples as Label Studio tasks: data (the configured field), one
    annotation with the current label, one prediction from screening when there is one."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        link = _link(s, pid)
        config, classes = link.config, [str(c) for c in project.classes]
        out = []
        for e in s.scalars(select(Example).where(Example.project_id == pid)
                           .order_by(Example.id)):
            value = side_value(project, e)
            if config["kind"] == "tabular":
                value = (value if project.feature_names else
                         [float(v) for v in e.features(project.input_shape).ravel()])
            choice = {"from_name": config["from_name"], "to_name": config["to_name"],
                      "type": "choices"}
            task = {"data": {config["data_field"]: value, "cincer_example_id": e.id,
                             "cincer_external_id": e.external_id},
                    "annotations": [{"result": [{**choice, "value": {
                        "choices": [classes[e.label]]}}]}], "predictions": []}
            if e.screen_prediction is not None:
                task["data"][SUSPICION_FIELD] = e.screen_margin
                task["predictions"].append({
                    "model_version": model_version_name(pid, None), "score": float(
                        max(e.screen_probabilities or [0.0])),
                    "result": [{**choice, "value": {"choices": [classes[e.screen_prediction]]}}]})
            out.append(task)
        return out


def import_tasks(ctx: ServiceContext, pid: int, tasks: list) -> dict:
    """Label Studio JSON tasks with annotations into examples (all or nothing): each task's
    last annotation is its label; external id ``ls-task-<id>`` when the task has an id."""
    if not isinstance(tasks, list) or not tasks:
        raise BadInput("no tasks", {"tasks": ["a non-empty list of Label Studio tasks"]})
    with ctx.store.session() as s:
        project = project_row(s, pid)
        config, classes = _link(s, pid).config, list(project.classes)
    items, errors = [], {}
    for i, task in enumerate(tasks):
        try:
            annotations = [a for a in (task.get("annotations") or [])
                           if isinstance(a, dict) and not a.get("was_cancelled")]
            if not annotations:
                raise BadInput("no annotation", {"annotations": ["at least one"]})
            label = annotation_label(config, classes, annotations[-1])
            item = task_item(project, config, task)
        except (BadInput, AttributeError) as exc:
            errors[f"tasks.{i}"] = [getattr(exc, "message", str(exc))]
            continue
        item.update(label=classes[label], source="label-studio",
                    external_id=f"ls-task-{task['id']}" if task.get("id") is not None
                    else (task.get("data") or {}).get("cincer_external_id"))
        items.append(item)
    if errors:
        raise BadInput(f"{len(errors)} invalid task(s); nothing was stored", errors)
    results = examples.ingest(ctx, pid, items, actor="label-studio:import")
    return {"items": results}


def label_of(project: Project, index: int | None) -> str | None:
    return label_name([str(c) for c in project.classes], index)
