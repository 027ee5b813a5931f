"""``LabelService``: every use case of the labeling service, over the store.

Requests (``ingest``, ``lease_next_query``, ``answer_query``, ...) only touch the database
and submit background jobs; jobs (``screen``, ``counterexample``, ``retrain``, ``audit``,
``reconcile``) do the model work. Every job is idempotent and claims its rows with a
compare-and-set UPDATE, so a repeated or lost message never corrupts or loses anything.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import secrets
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import and_, func, or_, select, update

from ..catalog import COUNTEREXAMPLE_DAMPING, DETECTOR_NAMES, STRATEGY_NAMES
from .dispatch import Dispatcher, NullDispatcher
from .errors import BadInput, Conflict, Forbidden, NotFound, Unauthorized
from .settings import Settings
from .store import (Audit, Example, LabelEvent, ModelVersion, Project, Query, Store, Token,
                    utcnow)

log = logging.getLogger(__name__)

ROLES = ("admin", "ingest", "annotator", "viewer")
MODEL_KINDS = ("lr", "fc", "cnn")
RETRAIN_MODES = ("scratch", "warm")
TRAINING = ("accepted", "reviewed")          # example statuses that form the training set
EXAMPLE_STATUSES = ("pending", "accepted", "suspicious", "reviewed")
JOBS = ("screen", "counterexample", "retrain", "audit", "reconcile")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, its project (None for the admin) and role."""

    token_id: int
    project_id: int | None
    role: str
    name: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def weights_to_bytes(weights) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, *weights)
    return buffer.getvalue()


def weights_from_bytes(blob: bytes) -> list[np.ndarray]:
    with np.load(io.BytesIO(blob)) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


class ModelCache:
    """Per-process cache of classifiers and ``ModelState`` s, one per model version, so the
    Fisher factor of a version is computed once however many queries use it."""

    def __init__(self, size: int = 4):
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def entry(self, project: Project, version: ModelVersion) -> dict:
        key = (project.id, version.version)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            from ..models import Classifier       # TensorFlow: only where jobs run
            clf = Classifier(project.model["kind"], project.input_shape, len(project.classes),
                             seed=project.model.get("seed", 0))
            clf.set_weights(weights_from_bytes(version.weights))
            entry = {"classifier": clf, "state": None, "lock": threading.Lock()}
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return entry


def _project_dict(p: Project, model_version: int | None) -> dict:
    return {"id": p.id, "name": p.name, "classes": list(p.classes),
            "input_shape": list(p.input_shape), "model": dict(p.model),
            "threshold": p.threshold, "strategy": p.strategy, "damping": p.damping,
            "bootstrap_size": p.bootstrap_size, "retrain": dict(p.retrain),
            "created_at": p.created_at, "model_version": model_version}


def _example_dict(e: Example, shape) -> dict:
    return {"id": e.id, "external_id": e.external_id, "source": e.source,
            "x": e.features(shape).tolist(), "label": e.label,
            "original_label": e.original_label, "status": e.status, "confirmed": e.confirmed,
            "created_at": e.created_at, "updated_at": e.updated_at}


class LabelService:
    """The labeling service's use cases; see docs/service.md for the contract."""

    def __init__(self, store: Store, dispatcher: Dispatcher | None = None,
                 settings: Settings | None = None):
        self.store = store
        self.settings = settings or Settings()
        self.dispatcher = dispatcher or NullDispatcher()
        self.models = ModelCache()
        self.job_counts: Counter = Counter()
        self.job_failures: Counter = Counter()

    def set_dispatcher(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def submit(self, name: str, arg=None) -> None:
        """Hand a job to the dispatcher; a failure is logged, the reconciler redoes it."""
        try:
            self.dispatcher.submit(name, arg)
        except Exception:
            log.exception("could not submit %s(%s); the reconciler will", name, arg)

    # -- tokens and authorisation ----------------------------------------------------------
    def ensure_admin_token(self, secret: str | None = None) -> str | None:
        """Create the admin token on first start (or register ``secret``); the new secret
        is returned once, ``None`` when an admin token already existed."""
        with self.store.session() as s:
            if secret:
                if s.scalar(select(Token).where(Token.secret_hash == hash_secret(secret))):
                    return None
            elif s.scalar(select(Token).where(Token.role == "admin",
                                              Token.project_id.is_(None))):
                return None
            secret = secret or secrets.token_urlsafe(32)
            s.add(Token(project_id=None, role="admin", name="admin",
                        secret_hash=hash_secret(secret)))
        return secret

    def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        with self.store.session() as s:
            token = s.scalar(select(Token).where(Token.secret_hash == hash_secret(secret)))
            if token is None:
                raise Unauthorized("unknown token")
            return Principal(token.id, token.project_id, token.role, token.name)

    def authorize(self, principal: Principal, pid: int | None, *roles: str) -> None:
        """Raise ``Forbidden`` unless ``principal`` may act on project ``pid`` in one of
        ``roles`` (no roles: any role of the project). The global admin may do anything."""
        if principal.role == "admin" and principal.project_id is None:
            return
        if pid is None or principal.project_id != pid:
            raise Forbidden("this token does not belong to that project"
                            if pid is not None else "only the admin token may do this")
        if roles and principal.role not in roles and principal.role != "admin":
            raise Forbidden(f"role {principal.role!r} may not do this; needs "
                            + " or ".join(roles), {"role": principal.role,
                                                   "allowed": list(roles)})

    def create_token(self, pid: int, role: str, name: str) -> dict:
        if role not in ROLES:
            raise BadInput(f"unknown role {role!r}", {"role": [f"one of {', '.join(ROLES)}"]})
        secret = secrets.token_urlsafe(32)
        with self.store.session() as s:
            self._project(s, pid)
            token = Token(project_id=pid, role=role, name=str(name or role),
                          secret_hash=hash_secret(secret))
            s.add(token)
            s.flush()
            return {"id": token.id, "project_id": pid, "role": role, "name": token.name,
                    "token": secret, "created_at": token.created_at}

    # -- projects ----------------------------------------------------------------------------
    def create_project(self, spec: dict, demo: bool = False) -> dict:
        fields = self._validate_project(spec)
        with self.store.session() as s:
            project = Project(**fields, demo=demo)
            s.add(project)
            s.flush()
            return _project_dict(project, None)

    def get_project(self, pid: int) -> dict:
        with self.store.session() as s:
            return _project_dict(self._project(s, pid), self._latest_version_number(s, pid))

    def list_projects(self) -> list[dict]:
        with self.store.session() as s:
            return [_project_dict(p, self._latest_version_number(s, p.id))
                    for p in s.scalars(select(Project).order_by(Project.id))]

    def _validate_project(self, spec: dict) -> dict:
        errors = {}
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            errors["name"] = ["a non-empty name is required"]
        classes = spec.get("classes")
        if (not isinstance(classes, list) or len(classes) < 2
                or len({str(c) for c in classes}) != len(classes)):
            errors["classes"] = ["at least two distinct class names"]
        shape = spec.get("input_shape")
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                           for d in shape)):
            errors["input_shape"] = ["a list of 1 to 3 positive integers"]
        model = {"kind": "fc", "seed": 0, "max_epochs": 100, "warm_epochs": 5,
                 **(spec.get("model") or {})}
        if model["kind"] not in MODEL_KINDS:
            errors["model.kind"] = [f"one of {', '.join(MODEL_KINDS)}"]
        elif model["kind"] == "cnn" and isinstance(shape, list) and len(shape) != 3:
            errors["model.kind"] = ["cnn needs input_shape [height, width, channels]"]
        threshold = spec.get("threshold", 0.2)
        if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            errors["threshold"] = ["a number in [0, 1]"]
        strategy = spec.get("strategy", "top_fisher")
        if strategy not in STRATEGY_NAMES:
            errors["strategy"] = [f"one of {', '.join(sorted(STRATEGY_NAMES))}"]
        damping = spec.get("damping", COUNTEREXAMPLE_DAMPING)
        if not isinstance(damping, (int, float)) or not damping > 0:
            errors["damping"] = ["a positive number"]
        bootstrap = spec.get("bootstrap_size", 100)
        if not isinstance(bootstrap, int) or bootstrap < 2:
            errors["bootstrap_size"] = ["an integer ≥ 2"]
        retrain = {"mode": "scratch", "every_n_answers": 10, **(spec.get("retrain") or {})}
        if retrain["mode"] not in RETRAIN_MODES:
            errors["retrain.mode"] = [f"one of {', '.join(RETRAIN_MODES)}"]
        if not isinstance(retrain["every_n_answers"], int) or retrain["every_n_answers"] < 1:
            errors["retrain.every_n_answers"] = ["a positive integer"]
        if errors:
            raise BadInput("invalid project", errors)
        return dict(name=name.strip(), classes=[str(c) for c in classes], input_shape=shape,
                    model=model, threshold=float(threshold), strategy=strategy,
                    damping=float(damping), bootstrap_size=bootstrap, retrain=retrain)

    def _project(self, s, pid: int, lock: bool = False) -> Project:
        project = s.get(Project, pid, with_for_update=lock or None)
        if project is None:
            raise NotFound(f"project {pid} does not exist", {"project_id": pid})
        return project

    def _latest_version(self, s, pid: int) -> ModelVersion | None:
        return s.scalar(select(ModelVersion).where(ModelVersion.project_id == pid)
                        .order_by(ModelVersion.version.desc()).limit(1))

    def _latest_version_number(self, s, pid: int) -> int | None:
        return s.scalar(select(func.max(ModelVersion.version))
                        .where(ModelVersion.project_id == pid))

    # -- examples ----------------------------------------------------------------------------
    def ingest(self, pid: int, items: list, actor: str = "ingest") -> list[dict]:
        """Store a batch (all or nothing). Until ``bootstrap_size`` examples exist they
        form the initial training set; later ones wait for screening."""
        if not isinstance(items, list) or not items:
            raise BadInput("the batch is empty", {"items": ["at least one item"]})
        if len(items) > self.settings.max_batch:
            raise BadInput(f"the batch has {len(items)} items, the limit is "
                           f"{self.settings.max_batch}", {"items": ["too many items"]})
        with self.store.session() as s:
            project = self._project(s, pid, lock=True)
            rows = self._validate_items(project, items)
            have = s.scalar(select(func.count(Example.id)).where(Example.project_id == pid))
            bootstrapping = project.trained_generation < 0 and project.wanted_generation == 0
            examples, now = [], utcnow()
            for row in rows:
                status = "pending"
                if bootstrapping and have < project.bootstrap_size:
                    status = "accepted"
                have += 1
                example = Example(project_id=pid, status=status, created_at=now,
                                  updated_at=now, **row)
                examples.append(example)
            s.add_all(examples)
            s.flush()
            s.add_all([LabelEvent(example_id=e.id, old_label=None, new_label=e.label,
                                  why="ingest", actor=actor, at=now) for e in examples])
            accepted = sum(e.status == "accepted" for e in examples)
            if accepted:
                project.generation += 1
            if bootstrapping and have >= project.bootstrap_size:
                project.wanted_generation = project.generation
            wants_model = project.wanted_generation > project.trained_generation
            result = [{"id": e.id, "status": e.status} for e in examples]
            pending = any(e.status == "pending" for e in examples)
        if wants_model and bootstrapping:
            self.submit("retrain", pid)
        if pending:
            self.submit("screen", pid)
        return result

    def _validate_items(self, project: Project, items: list) -> list[dict]:
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

    def list_examples(self, pid: int, status: str | None = None, source: str | None = None,
                      offset: int = 0, limit: int = 50) -> dict:
        if status is not None and status not in EXAMPLE_STATUSES:
            raise BadInput(f"unknown status {status!r}",
                           {"status": [f"one of {', '.join(EXAMPLE_STATUSES)}"]})
        if offset < 0 or not 1 <= limit <= self.settings.max_page:
            raise BadInput("bad page", {"limit": [f"1..{self.settings.max_page}"],
                                        "offset": ["≥ 0"]})
        with self.store.session() as s:
            project = self._project(s, pid)
            where = [Example.project_id == pid]
            if status:
                where.append(Example.status == status)
            if source:
                where.append(Example.source == source)
            total = s.scalar(select(func.count(Example.id)).where(*where))
            rows = s.scalars(select(Example).where(*where).order_by(Example.id)
                             .offset(offset).limit(limit))
            return {"items": [_example_dict(e, project.input_shape) for e in rows],
                    "total": total}

    def get_example(self, pid: int, eid: int) -> dict:
        with self.store.session() as s:
            project = self._project(s, pid)
            example = self._example(s, pid, eid)
            events = s.scalars(select(LabelEvent).where(LabelEvent.example_id == eid)
                               .order_by(LabelEvent.id))
            return {**_example_dict(example, project.input_shape),
                    "history": [{"at": ev.at, "actor": ev.actor, "old_label": ev.old_label,
                                 "new_label": ev.new_label, "why": ev.why,
                                 "query_id": ev.query_id} for ev in events]}

    def _example(self, s, pid: int, eid: int) -> Example:
        example = s.get(Example, eid)
        if example is None or example.project_id != pid:
            raise NotFound(f"example {eid} does not exist in project {pid}",
                           {"example_id": eid})
        return example

    # -- queries -----------------------------------------------------------------------------
    def _query_dict(self, s, q: Query, project: Project) -> dict:
        def side(example_id, probabilities):
            if example_id is None:
                return None
            e = s.get(Example, example_id)
            probs = list(probabilities) if probabilities is not None else None
            return {"id": e.id, "external_id": e.external_id,
                    "x": e.features(project.input_shape).tolist(), "label": e.label,
                    "prediction": int(np.argmax(probs)) if probs else None,
                    "probabilities": probs}

        answer = None
        if q.status == "answered":
            answer = {"example_label": q.answer_example_label,
                      "counterexample_label": q.answer_counterexample_label,
                      "annotator": q.answered_by, "answered_at": q.answered_at}
        return {"id": q.id, "status": q.status, "origin": q.origin,
                "example": side(q.example_id, q.probabilities),
                "counterexample": side(q.counterexample_id, q.counterexample_probabilities),
                "margin": q.margin, "strategy": q.strategy, "model_version": q.model_version,
                "note": q.note, "lease_expires_at": q.lease_expires_at if q.status == "leased"
                else None, "answer": answer, "created_at": q.created_at}

    def lease_next_query(self, pid: int, principal: Principal) -> dict | None:
        """Lease the oldest open query (or one whose lease expired) to ``principal``; the
        compare-and-set UPDATE makes two annotators never hold the same query."""
        lease = timedelta(seconds=self.settings.lease_seconds)
        with self.store.session() as s:
            project = self._project(s, pid)
            now = utcnow()
            held = s.scalar(select(Query).where(
                Query.project_id == pid, Query.status == "leased",
                Query.lease_holder == principal.token_id, Query.lease_expires_at >= now)
                .order_by(Query.id).limit(1))
            if held is not None:
                return self._query_dict(s, held, project)
            available = or_(Query.status == "open",
                            and_(Query.status == "leased", Query.lease_expires_at < now))
            candidates = s.scalars(select(Query.id).where(Query.project_id == pid, available)
                                   .order_by(Query.id).limit(20)).all()
            for qid in candidates:
                claimed = s.execute(update(Query).where(Query.id == qid, available).values(
                    status="leased", lease_holder=principal.token_id,
                    lease_expires_at=now + lease).execution_options(synchronize_session=False))
                if claimed.rowcount == 1:
                    s.commit()
                    return self._query_dict(s, s.get(Query, qid, populate_existing=True),
                                            project)
            return None

    def get_query(self, pid: int, qid: int) -> dict:
        with self.store.session() as s:
            project = self._project(s, pid)
            return self._query_dict(s, self._query(s, pid, qid), project)

    def _query(self, s, pid: int, qid: int) -> Query:
        q = s.get(Query, qid)
        if q is None or q.project_id != pid:
            raise NotFound(f"query {qid} does not exist in project {pid}", {"query_id": qid})
        return q

    def answer_query(self, pid: int, qid: int, example_label: int,
                     counterexample_label: int | None, principal: Principal) -> dict:
        """Apply an annotator's answer: relabel the example and/or the counter-example.

        Replaying the same answer returns the stored result; an answer on a lost lease or
        a different answer to an answered query is a ``Conflict``."""
        retrain = False
        with self.store.session() as s:
            project = self._project(s, pid)
            q = self._query(s, pid, qid)
            n_classes = len(project.classes)
            errors = {}
            for key, value in (("example_label", example_label),
                               ("counterexample_label", counterexample_label)):
                if value is None and key == "counterexample_label":
                    continue
                if not isinstance(value, int) or isinstance(value, bool) \
                        or not 0 <= value < n_classes:
                    errors[key] = [f"an integer class index in [0, {n_classes})"]
            if counterexample_label is not None and q.counterexample_id is None:
                errors["counterexample_label"] = ["this query has no counter-example"]
            if errors:
                raise BadInput("invalid answer", errors)
            if q.status == "answered":
                if (q.answer_example_label == example_label
                        and q.answer_counterexample_label == counterexample_label):
                    return self._query_dict(s, q, project)
                raise Conflict("this query was already answered differently",
                               {"query_id": qid, "status": q.status})
            now = utcnow()
            claimed = s.execute(update(Query).where(
                Query.id == qid, Query.status == "leased",
                Query.lease_holder == principal.token_id, Query.lease_expires_at >= now)
                .values(status="answered", answer_example_label=example_label,
                        answer_counterexample_label=counterexample_label,
                        answered_by=principal.name, answered_at=now)
                .execution_options(synchronize_session=False))
            if claimed.rowcount != 1:
                raise Conflict("you do not hold a lease on this query (it expired, was "
                               "taken by another annotator, or was never leased)",
                               {"query_id": qid, "status": q.status})
            self._relabel(s, q.example_id, example_label, "answer_example", principal.name, qid,
                          now)
            if counterexample_label is not None:
                self._relabel(s, q.counterexample_id, counterexample_label,
                              "answer_counterexample", principal.name, qid, now)
            project = self._project(s, pid, lock=True)
            project.generation += 1
            project.answers_since_retrain += 1
            if project.answers_since_retrain >= project.retrain["every_n_answers"]:
                project.answers_since_retrain = 0
                project.wanted_generation = project.generation
                retrain = True
            s.flush()
            result = self._query_dict(s, s.get(Query, qid, populate_existing=True), project)
        if retrain:
            self.submit("retrain", pid)
        return result

    def _relabel(self, s, eid: int, label: int, why: str, actor: str, qid: int, now) -> None:
        example = s.get(Example, eid)
        s.add(LabelEvent(example_id=eid, old_label=example.label, new_label=label, why=why,
                         actor=actor, query_id=qid, at=now))
        example.label = label
        example.confirmed = True
        example.updated_at = now
        if example.status == "suspicious":
            example.status = "reviewed"

    # -- models ------------------------------------------------------------------------------
    def list_models(self, pid: int) -> list[dict]:
        with self.store.session() as s:
            self._project(s, pid)
            rows = s.scalars(select(ModelVersion).where(ModelVersion.project_id == pid)
                             .order_by(ModelVersion.version))
            return [{"version": v.version, "train_size": v.train_size, "mode": v.mode,
                     "generation": v.generation, "metrics": dict(v.metrics),
                     "created_at": v.created_at} for v in rows]

    def request_retrain(self, pid: int) -> dict:
        with self.store.session() as s:
            project = self._project(s, pid, lock=True)
            n_train = s.scalar(select(func.count(Example.id)).where(
                Example.project_id == pid, Example.status.in_(TRAINING)))
            if n_train < 2:
                raise Conflict("not enough training examples to train a model yet",
                               {"train_size": n_train})
            if project.generation <= project.trained_generation:
                project.generation = project.trained_generation + 1
            project.wanted_generation = project.generation
            project.answers_since_retrain = 0
            wanted = project.wanted_generation
        self.submit("retrain", pid)
        return {"status": "queued", "wanted_generation": wanted}

    def stats(self, pid: int) -> dict:
        with self.store.session() as s:
            project = self._project(s, pid)
            examples = dict(s.execute(select(Example.status, func.count(Example.id))
                                      .where(Example.project_id == pid)
                                      .group_by(Example.status)).all())
            now = utcnow()
            queries = Counter()
            for status, expires, count in s.execute(
                    select(Query.status, Query.lease_expires_at < now, func.count(Query.id))
                    .where(Query.project_id == pid)
                    .group_by(Query.status, Query.lease_expires_at < now)).all():
                queries["open" if status == "leased" and expires else status] += count
            cleaned = s.scalar(select(func.count(Example.id)).where(
                Example.project_id == pid, Example.label != Example.original_label))
            relabelled = s.scalar(select(func.count(LabelEvent.id)).join(Example).where(
                Example.project_id == pid, LabelEvent.why != "ingest",
                LabelEvent.old_label != LabelEvent.new_label))
            return {"examples": {k: int(examples.get(k, 0)) for k in EXAMPLE_STATUSES},
                    "queries": {k: int(queries.get(k, 0))
                                for k in ("computing", "open", "leased", "answered")},
                    "cleaned": int(cleaned), "relabelled": int(relabelled),
                    "model_version": self._latest_version_number(s, pid),
                    "retrain_wanted": project.wanted_generation > project.trained_generation}

    def export(self, pid: int, fmt: str = "csv") -> tuple[str, str]:
        """Current and original labels of every example, as CSV or JSON lines."""
        if fmt not in ("csv", "jsonl"):
            raise BadInput(f"unknown format {fmt!r}", {"format": ["csv or jsonl"]})
        columns = ("id", "external_id", "source", "label", "original_label", "status",
                   "confirmed")
        with self.store.session() as s:
            self._project(s, pid)
            rows = s.execute(select(Example.id, Example.external_id, Example.source,
                                    Example.label, Example.original_label, Example.status,
                                    Example.confirmed)
                             .where(Example.project_id == pid).order_by(Example.id)).all()
        if fmt == "jsonl":
            text = "".join(json.dumps(dict(zip(columns, row))) + "\n" for row in rows)
            return text, "application/x-ndjson"
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue(), "text/csv"

    def metrics(self) -> dict:
        """Counters for ``/metrics``: rows per status, model versions, jobs run."""
        with self.store.session() as s:
            examples = s.execute(select(Example.project_id, Example.status,
                                        func.count(Example.id))
                                 .group_by(Example.project_id, Example.status)).all()
            queries = s.execute(select(Query.project_id, Query.status, func.count(Query.id))
                                .group_by(Query.project_id, Query.status)).all()
            versions = s.execute(select(ModelVersion.project_id, func.count(ModelVersion.id))
                                 .group_by(ModelVersion.project_id)).all()
        return {"examples": [(p, st, n) for p, st, n in examples],
                "queries": [(p, st, n) for p, st, n in queries],
                "model_versions": [(p, n) for p, n in versions],
                "jobs": dict(self.job_counts), "job_failures": dict(self.job_failures)}

    # -- background jobs ---------------------------------------------------------------------
    def run_job(self, name: str, arg=None, progress=None):
        """Run one background job by name; all are idempotent."""
        if name not in JOBS:
            raise ValueError(f"unknown job {name!r}")
        self.job_counts[name] += 1
        try:
            if name == "reconcile":
                return self.reconcile()
            if name == "audit":
                return self.run_audit(arg, progress=progress)
            return getattr(self, {"screen": "screen_pending", "counterexample":
                                  "compute_counterexample", "retrain": "retrain"}[name])(arg)
        except Exception:
            self.job_failures[name] += 1
            raise

    def screen_pending(self, pid: int) -> int:
        """Screen pending examples against the latest model: confident disagreements become
        queries (each gets a counter-example job), the rest join the training set."""
        from ..cleaning import screen_batch
        n_done, new_queries = 0, []
        while True:
            with self.store.session() as s:
                project = self._project(s, pid)
                version = self._latest_version(s, pid)
                if version is None:
                    return n_done           # the first retrain submits screening again
                batch = s.scalars(select(Example).where(
                    Example.project_id == pid, Example.status == "pending")
                    .order_by(Example.id).limit(self.settings.screen_batch)).all()
                if not batch:
                    break
                clf = self.models.entry(project, version)["classifier"]
                X = np.stack([e.features(project.input_shape) for e in batch])
                probs = clf.predict_proba(X)
                verdicts = screen_batch(probs, [e.label for e in batch], project.threshold)
                accepted, now = 0, utcnow()
                for e, p, v in zip(batch, probs, verdicts):
                    status = "suspicious" if v.suspicious else "accepted"
                    claimed = s.execute(update(Example).where(
                        Example.id == e.id, Example.status == "pending")
                        .values(status=status, updated_at=now)
                        .execution_options(synchronize_session=False))
                    if claimed.rowcount != 1:
                        continue
                    n_done += 1
                    if not v.suspicious:
                        accepted += 1
                        continue
                    q = Query(project_id=pid, example_id=e.id, model_version=version.version,
                              strategy=project.strategy, margin=float(v.margin),
                              prediction=int(v.prediction),
                              probabilities=[float(a) for a in p], status="computing",
                              origin="stream", created_at=now)
                    s.add(q)
                    s.flush()
                    new_queries.append(q.id)
                if accepted:
                    s.execute(update(Project).where(Project.id == pid)
                              .values(generation=Project.generation + 1))
            for qid in new_queries:
                self.submit("counterexample", qid)
            new_queries = []
        return n_done

    def _training_state(self, s, project: Project, version: ModelVersion) -> tuple:
        """(ModelState over the version's training set with *current* labels, example ids,
        classifier). The state and its Fisher factor are cached per version."""
        from ..state import ModelState
        entry = self.models.entry(project, version)
        ids = np.frombuffer(version.train_ids, dtype=np.int64)
        rows = dict((i, (label, confirmed)) for i, label, confirmed in s.execute(
            select(Example.id, Example.label, Example.confirmed)
            .where(Example.id.in_(ids.tolist()))).all())
        labels = np.array([rows[i][0] for i in ids], dtype=np.int64)
        confirmed = np.array([rows[i][1] for i in ids], dtype=bool)
        with entry["lock"]:
            state = entry["state"]
            if state is None:
                # train_ids are stored in id order, so rows ordered by id line up with them
                X = np.stack([e.features(project.input_shape) for e in s.scalars(
                    select(Example).where(Example.id.in_(ids.tolist())).order_by(Example.id))])
                state = ModelState.build(entry["classifier"], X, labels, project.damping)
                entry["state"] = state
            else:
                for k in np.flatnonzero(state.y != labels):
                    state.relabel(int(k), int(labels[k]))
        return state, ids, confirmed, entry

    def compute_counterexample(self, qid: int) -> int | None:
        """Find the query's counter-example with the project's strategy and open the query."""
        from ..counterexamples import NoCandidates, get_strategy
        with self.store.session() as s:
            q = s.get(Query, qid)
            if q is None or q.status != "computing":
                return None
            project = self._project(s, q.project_id)
            version = s.scalar(select(ModelVersion).where(
                ModelVersion.project_id == project.id,
                ModelVersion.version == q.model_version)) or self._latest_version(s, project.id)
            state, ids, confirmed, entry = self._training_state(s, project, version)
            example = s.get(Example, q.example_id)
            exclude = confirmed | (ids == example.id)
            ce_id, ce_probs, note = None, None, None
            started = time.perf_counter()
            with entry["lock"]:
                try:
                    ranking = get_strategy(q.strategy).rank(
                        state, example.features(project.input_shape), example.label, exclude)
                    ce_id = int(ids[ranking.best])
                    ce_probs = [float(a) for a in np.asarray(state.probs[ranking.best])]
                except NoCandidates as exc:
                    note = str(exc)
            elapsed_ms = (time.perf_counter() - started) * 1e3
            s.execute(update(Query).where(Query.id == qid, Query.status == "computing").values(
                counterexample_id=ce_id, counterexample_probabilities=ce_probs, note=note,
                status="open").execution_options(synchronize_session=False))
        log.info("query %s: counter-example %s in %.1f ms", qid, ce_id, elapsed_ms)
        return ce_id

    def retrain(self, pid: int) -> int | None:
        """Train a new model version if one is wanted; coalesced: answers that arrive while
        training trigger exactly one more retrain. Returns the new version number."""
        from ..models import Classifier
        now = utcnow()
        lease = timedelta(seconds=self.settings.retrain_lease_seconds)
        with self.store.session() as s:
            claimed = s.execute(update(Project).where(
                Project.id == pid, Project.wanted_generation > Project.trained_generation,
                or_(Project.retrain_lease_until.is_(None), Project.retrain_lease_until < now))
                .values(retrain_lease_until=now + lease)
                .execution_options(synchronize_session=False))
            if claimed.rowcount != 1:
                return None
        try:
            with self.store.session() as s:
                project = self._project(s, pid)
                generation = project.generation
                rows = s.execute(select(Example.id, Example.x, Example.label).where(
                    Example.project_id == pid, Example.status.in_(TRAINING))
                    .order_by(Example.id)).all()
                previous = self._latest_version(s, pid)
                spec, shape = dict(project.model), tuple(project.input_shape)
                mode, n_classes = project.retrain["mode"], len(project.classes)
                previous_weights = previous.weights if previous is not None else None
                previous_number = previous.version if previous is not None else 0
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            X = np.stack([np.frombuffer(r[1], np.float32).reshape(shape) for r in rows])
            y = np.array([r[2] for r in rows], dtype=np.int64)
            clf = Classifier(spec["kind"], shape, n_classes, seed=spec.get("seed", 0),
                             max_epochs=spec.get("max_epochs", 100),
                             warm_epochs=spec.get("warm_epochs", 5))
            fit_mode = "scratch"
            if mode == "warm" and previous_weights is not None:
                clf.set_weights(weights_from_bytes(previous_weights))
                fit_mode = "warm"
            started = time.perf_counter()
            report = clf.fit(X, y, mode=fit_mode)
            seconds = time.perf_counter() - started
            train_accuracy = float(np.mean(clf.predict(X) == y))
            with self.store.session() as s:
                project = self._project(s, pid, lock=True)
                version = ModelVersion(
                    project_id=pid, version=previous_number + 1, generation=generation,
                    mode=fit_mode, weights=weights_to_bytes(clf.get_weights()),
                    train_ids=ids.tobytes(), train_size=len(ids),
                    metrics={"train_accuracy": train_accuracy, "epochs": report.epochs,
                             "seconds": round(seconds, 3)})
                s.add(version)
                project.trained_generation = generation
                project.retrain_lease_until = None
                again = project.wanted_generation > generation
                number = version.version
        except BaseException:
            with self.store.session() as s:       # let the next attempt start at once
                s.execute(update(Project).where(Project.id == pid)
                          .values(retrain_lease_until=None))
            raise
        log.info("project %s: model version %s on %d examples (%.2f s)", pid, number,
                 len(ids), seconds)
        if again:
            self.submit("retrain", pid)
        self.submit("screen", pid)
        return number

    def reconcile(self) -> dict:
        """Re-submit whatever the database says is unfinished."""
        now = utcnow()
        submitted = Counter()
        with self.store.session() as s:
            with_model = set(s.scalars(select(ModelVersion.project_id).distinct()))
            screen = [pid for pid in s.scalars(select(Example.project_id).where(
                Example.status == "pending").distinct()) if pid in with_model]
            retrain = s.scalars(select(Project.id).where(
                Project.wanted_generation > Project.trained_generation,
                or_(Project.retrain_lease_until.is_(None),
                    Project.retrain_lease_until < now))).all()
            computing = s.scalars(select(Query.id).where(Query.status == "computing")
                                  .order_by(Query.id)).all()
            audits = s.scalars(select(Audit.id).where(or_(
                Audit.status == "queued",
                and_(Audit.status == "running", Audit.lease_until < now)))).all()
        for name, args in (("retrain", retrain), ("screen", screen),
                           ("counterexample", computing), ("audit", audits)):
            for arg in args:
                self.submit(name, arg)
                submitted[name] += 1
        return dict(submitted)

    # -- audits ------------------------------------------------------------------------------
    def create_audit(self, pid: int, detectors: list[str], top_k: int = 20) -> dict:
        known = set(DETECTOR_NAMES) | {"near_duplicates"}
        unknown = [d for d in detectors or [] if d not in known]
        if not detectors or unknown:
            raise BadInput("unknown or missing detectors",
                           {"detectors": [f"choose from {', '.join(sorted(known))}"],
                            "unknown": unknown})
        if not isinstance(top_k, int) or top_k < 1:
            raise BadInput("top_k must be a positive integer", {"top_k": ["≥ 1"]})
        with self.store.session() as s:
            self._project(s, pid)
            if self._latest_version(s, pid) is None:
                raise Conflict("the project has no model yet; ingest the bootstrap set first")
            audit = Audit(project_id=pid, detectors=list(detectors), top_k=top_k,
                          status="queued", progress=0.0)
            s.add(audit)
            s.flush()
            result = self._audit_dict(audit)
        self.submit("audit", result["id"])
        return result

    def get_audit(self, pid: int, aid: int) -> dict:
        with self.store.session() as s:
            return self._audit_dict(self._audit(s, pid, aid))

    def _audit(self, s, pid: int, aid: int) -> Audit:
        audit = s.get(Audit, aid)
        if audit is None or audit.project_id != pid:
            raise NotFound(f"audit {aid} does not exist in project {pid}", {"audit_id": aid})
        return audit

    @staticmethod
    def _audit_dict(a: Audit) -> dict:
        result = a.result or {}
        return {"id": a.id, "project_id": a.project_id, "status": a.status,
                "progress": a.progress, "detectors": list(a.detectors), "top_k": a.top_k,
                "suspects": result.get("suspects", []),
                "duplicates": result.get("duplicates", []),
                "leakage": result.get("leakage", []),
                "skipped": result.get("skipped", {}), "error": a.error,
                "created_at": a.created_at}

    def run_audit(self, aid: int, progress=None) -> str | None:
        """Score the training set with each detector; suspects ranked by mean rank."""
        from ..detectors import NotEnoughTrusted, TrustedSet, get_detector, near_duplicates
        from ..state import ModelState
        now = utcnow()
        with self.store.session() as s:
            claimed = s.execute(update(Audit).where(Audit.id == aid, or_(
                Audit.status == "queued",
                and_(Audit.status == "running", Audit.lease_until < now)))
                .values(status="running", lease_until=now + timedelta(
                    seconds=self.settings.retrain_lease_seconds))
                .execution_options(synchronize_session=False))
            if claimed.rowcount != 1:
                return None
            audit = s.get(Audit, aid)
            project = self._project(s, audit.project_id)
            version = self._latest_version(s, project.id)
            rows = s.execute(select(Example.id, Example.x, Example.label, Example.confirmed)
                             .where(Example.project_id == project.id,
                                    Example.status.in_(TRAINING))
                             .order_by(Example.id)).all()
            detectors, top_k = list(audit.detectors), audit.top_k
            entry = self.models.entry(project, version)
        shape = tuple(project.input_shape)
        try:
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            X = np.stack([np.frombuffer(r[1], np.float32).reshape(shape) for r in rows])
            y = np.array([r[2] for r in rows], dtype=np.int64)
            trusted_rows = np.flatnonzero([r[3] for r in rows])
            state = ModelState.build(entry["classifier"], X, y, project.damping)
            trusted = TrustedSet.from_state(state, trusted_rows) if len(trusted_rows) else None
            scores, skipped, duplicates, leakage = {}, {}, [], []
            for i, name in enumerate(detectors):
                self._audit_progress(aid, i / len(detectors), progress, name)
                if name == "near_duplicates":
                    predictions = np.asarray(np.argmax(state.probs, axis=1))
                    report = near_duplicates(X, y, predictions)
                    duplicates = [{"first": int(ids[p.first]), "second": int(ids[p.second]),
                                   "similarity": float(p.similarity), "label": int(p.label),
                                   "prediction": int(p.prediction)} for p in report.pairs]
                    continue
                try:
                    scores[name] = np.asarray(get_detector(name).score(state, trusted),
                                              dtype=np.float64)
                except (NotEnoughTrusted, ValueError, RuntimeError) as exc:
                    skipped[name] = str(exc)
            suspects = []
            if scores:
                # Mean rank across detectors: scales differ, ranks compare.
                ranks = np.mean([np.argsort(np.argsort(-v, kind="stable")) for v in
                                 scores.values()], axis=0)
                for k in np.argsort(ranks, kind="stable")[:top_k]:
                    suspects.append({"example_id": int(ids[k]), "label": int(y[k]),
                                     "score": float(1.0 - ranks[k] / max(len(ids) - 1, 1)),
                                     "scores": {n: float(v[k]) for n, v in scores.items()}})
            result = {"suspects": suspects, "duplicates": duplicates, "leakage": leakage,
                      "skipped": skipped}
            with self.store.session() as s:
                s.execute(update(Audit).where(Audit.id == aid).values(
                    status="done", progress=1.0, result=result, lease_until=None))
        except Exception as exc:
            with self.store.session() as s:
                s.execute(update(Audit).where(Audit.id == aid).values(
                    status="failed", error=f"{type(exc).__name__}: {exc}", lease_until=None))
            raise
        return "done"

    def _audit_progress(self, aid: int, fraction: float, progress, message: str) -> None:
        with self.store.session() as s:
            s.execute(update(Audit).where(Audit.id == aid).values(progress=float(fraction)))
        if progress is not None:
            progress(fraction, 1.0, message)

    def enqueue_audit(self, pid: int, aid: int, top_k: int | None = None) -> dict:
        """Turn an audit's top suspects into review queries (each gets a counter-example)."""
        created = []
        with self.store.session() as s:
            project = self._project(s, pid)
            audit = self._audit(s, pid, aid)
            if audit.status != "done":
                raise Conflict(f"audit {aid} is {audit.status}, not done")
            version = self._latest_version(s, pid)
            clf = self.models.entry(project, version)["classifier"]
            suspects = (audit.result or {}).get("suspects", [])[:top_k or audit.top_k]
            busy = set(s.scalars(select(Query.example_id).where(
                Query.project_id == pid, Query.status != "answered")))
            for suspect in suspects:
                example = s.get(Example, suspect["example_id"])
                if example is None or example.id in busy or example.confirmed:
                    continue
                p = clf.predict_proba(example.features(project.input_shape)[None])[0]
                prediction = int(np.argmax(p))
                q = Query(project_id=pid, example_id=example.id, model_version=version.version,
                          strategy=project.strategy, origin="audit", status="computing",
                          margin=float(p[prediction] - p[example.label]),
                          prediction=prediction, probabilities=[float(a) for a in p])
                s.add(q)
                s.flush()
                created.append(q.id)
        for qid in created:
            self.submit("counterexample", qid)
        return {"audit_id": aid, "query_ids": created, "enqueued": len(created)}


def build_service(settings: Settings | None = None,
                  dispatcher: Dispatcher | None = None) -> LabelService:
    """A ``LabelService`` on ``settings.database`` (data dir created, schema migrated)."""
    import os
    settings = settings or Settings.from_env()
    os.makedirs(settings.data_dir, exist_ok=True)
    store = Store(settings.database)
    store.upgrade()
    return LabelService(store, dispatcher, settings)
