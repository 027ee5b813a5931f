"""Training: model versions, retrain requests and the ``retrain`` job.

A project wants a retrain while ``wanted_generation > trained_generation``. The ``retrain``
job claims the project with a lease on its row, trains on the current training set and
stores a new ``ModelVersion`` (weights included, so any worker can load it). Retrains are
coalesced: answers that arrive while training trigger exactly one more.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import numpy as np
from sqlalchemy import case, func, or_, select, update

from .context import TRAINING, ServiceContext, latest_version, project_row
from .errors import Conflict
from .model_cache import new_classifier, weights_from_bytes, weights_to_bytes
from .store import Example, ModelVersion, Project, utcnow

log = logging.getLogger(__name__)


def model_view(v: ModelVersion) -> dict:
    """A model version as the API shows it."""
    return {"version": v.version, "train_size": v.train_size, "mode": v.mode,
            "generation": v.generation, "metrics": dict(v.metrics),
            "created_at": v.created_at}


def list_models(ctx: ServiceContext, pid: int) -> list[dict]:
    """Every model version of the project, oldest first."""
    with ctx.store.session() as s:
        project_row(s, pid)
        return [model_view(v) for v in s.scalars(
            select(ModelVersion).where(ModelVersion.project_id == pid)
            .order_by(ModelVersion.version))]


def request_retrain(ctx: ServiceContext, pid: int) -> dict:
    """Ask for a retrain on the current labels (coalesced with one already wanted)."""
    with ctx.store.session() as s:
        project_row(s, pid)
        n_train = s.scalar(select(func.count(Example.id)).where(
            Example.project_id == pid, Example.status.in_(TRAINING)))
        if n_train < 2:
            raise Conflict("not enough training examples to train a model yet",
                           {"train_size": n_train})
        bumped = case((Project.generation > Project.trained_generation, Project.generation),
                      else_=Project.trained_generation + 1)
        wanted = s.execute(update(Project).where(Project.id == pid).values(
            generation=bumped, wanted_generation=bumped, answers_since_retrain=0)
            .returning(Project.wanted_generation)).scalar_one()
    ctx.submit("retrain", pid)
    return {"status": "queued", "wanted_generation": wanted}


def retrain(ctx: ServiceContext, pid: int, progress=None) -> int | None:
    """Train a new model version if one is wanted (job ``retrain``); returns its number,
    ``None`` when no retrain is wanted or another worker holds the project."""
    now = utcnow()
    lease = timedelta(seconds=ctx.settings.retrain_lease_seconds)
    with ctx.store.session() as s:
        claimed = s.execute(update(Project).where(
            Project.id == pid, Project.wanted_generation > Project.trained_generation,
            or_(Project.retrain_lease_until.is_(None), Project.retrain_lease_until < now))
            .values(retrain_lease_until=now + lease)
            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            return None
    try:
        with ctx.store.session() as s:
            project = project_row(s, pid)
            generation = project.generation
            rows = s.execute(select(Example.id, Example.x, Example.label).where(
                Example.project_id == pid, Example.status.in_(TRAINING))
                .order_by(Example.id)).all()
            previous = latest_version(s, pid)
            spec, shape, mode = dict(project.model), tuple(project.input_shape), \
                project.retrain["mode"]
            clf = new_classifier(project, max_epochs=spec.get("max_epochs", 100),
                                 warm_epochs=spec.get("warm_epochs", 5))
            previous_number = previous.version if previous is not None else 0
            fit_mode = "scratch"
            if mode == "warm" and previous is not None:
                clf.set_weights(weights_from_bytes(previous.weights))
                fit_mode = "warm"
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        X = np.stack([np.frombuffer(r[1], np.float32).reshape(shape) for r in rows])
        y = np.array([r[2] for r in rows], dtype=np.int64)
        started = time.perf_counter()
        report = clf.fit(X, y, mode=fit_mode)
        seconds = time.perf_counter() - started
        train_accuracy = float(np.mean(clf.predict(X) == y))
        with ctx.store.session() as s:
            version = ModelVersion(
                project_id=pid, version=previous_number + 1, generation=generation,
                mode=fit_mode, weights=weights_to_bytes(clf.get_weights()),
                train_ids=ids.tobytes(), train_size=len(ids),
                metrics={"train_accuracy": train_accuracy, "epochs": report.epochs,
                         "seconds": round(seconds, 3)})
            s.add(version)
            s.execute(update(Project).where(Project.id == pid).values(
                trained_generation=generation, retrain_lease_until=None))
            again = project_row(s, pid, lock=True).wanted_generation > generation
            number = version.version
    except BaseException:
        with ctx.store.session() as s:       # let the next attempt start at once
            s.execute(update(Project).where(Project.id == pid).values(retrain_lease_until=None))
        raise
    log.info("project %s: model version %s on %d examples (%.2f s)", pid, number, len(ids),
             seconds)
    if again:
        ctx.submit("retrain", pid)
    ctx.submit("screen", pid)
    return number
