"""Training: model versions, retrain requests and the ``retrain`` job.

A project wants a retrain while ``wanted_generation > trained_generation``; the first model
waits for the bootstrap set (``bootstrap_size`` examples of at least two classes). The
``retrain`` job claims the project with a short lease that it renews while it trains
(``leases``), trains on the current training set and stores a new ``ModelVersion``
(weights included, so any worker can load it). Retrains are coalesced: answers that arrive
while training trigger exactly one more. The first model also queues an audit of the
bootstrap set whose top suspects become queries, since the bootstrap is never screened.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from sqlalchemy import case, func, or_, select, update

from ..spec import (
    BOOTSTRAP_AUDIT_DETECTORS,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_WARM_EPOCHS,
    bootstrap_audit_size,
    training_defaults,
)
from . import evaluation, jobs, webhooks
from .context import TRAINING, ServiceContext, latest_version, project_row
from .errors import Conflict
from .leases import RowLease
from .model_cache import new_classifier, weights_from_bytes, weights_to_bytes
from .store import Audit, Example, ModelVersion, Project

log = logging.getLogger(__name__)


def model_view(v: ModelVersion) -> dict:
    """A model version as the API shows it."""
    return {"version": v.version, "train_size": v.train_size, "mode": v.mode,
            "generation": v.generation, "training": v.metrics.get("training"),
            "metrics": dict(v.metrics), "created_at": v.created_at}


def training_view(clf, project: Project) -> dict:
    """How a version was trained: its schedule (``schedule``; the rule a fit applied is
    ``metrics.schedule``), standardization, epochs, and the project's damping then."""
    return {"schedule": clf.schedule, "standardize": clf.standardize,
            "max_epochs": clf.max_epochs, "warm_epochs": clf.warm_epochs,
            "early_stop_accuracy": clf.early_stop_accuracy, "patience": clf.patience,
            "monitor": clf.monitor, "refit": clf.refit, "damping": project.damping}


def list_models(ctx: ServiceContext, pid: int) -> list[dict]:
    """Every model version of the project, oldest first."""
    with ctx.store.session() as s:
        project_row(s, pid)
        return [model_view(v) for v in s.scalars(
            select(ModelVersion).where(ModelVersion.project_id == pid)
            .order_by(ModelVersion.version))]


def request_retrain(ctx: ServiceContext, pid: int) -> dict:
    """Ask for a retrain on the current labels (coalesced with one already wanted); the
    first model still waits for a complete bootstrap set."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        progress = bootstrap_progress(s, project)
        if project.trained_generation < 0 and not progress["ready"]:
            raise Conflict("the bootstrap set is not complete: the first model needs "
                           f"{progress['need']} examples of at least two classes",
                           {"bootstrap": progress})
        bumped = case((Project.generation > Project.trained_generation, Project.generation),
                      else_=Project.trained_generation + 1)
        wanted = s.execute(update(Project).where(Project.id == pid).values(
            generation=bumped, wanted_generation=bumped, answers_since_retrain=0)
            .returning(Project.wanted_generation)).scalar_one()
        jobs.follow(s, jobs.RETRAIN(pid))
    return {"status": "queued", "wanted_generation": wanted}


def bootstrap_progress(s, project: Project) -> dict:
    """How far the bootstrap set is: ``{have, need, classes, ready}``; the first model waits
    for ``bootstrap_size`` training examples covering at least two classes."""
    have, classes = s.execute(select(func.count(Example.id),
                                     func.count(func.distinct(Example.label)))
                              .where(Example.project_id == project.id,
                                     Example.status.in_((*TRAINING,
                                                         evaluation.HOLDOUT_STATUS)))).one()
    return {"have": int(have), "need": project.bootstrap_size, "classes": int(classes),
            "ready": have >= project.bootstrap_size and classes >= 2}


def lifecycle(project: Project) -> str:
    """``collecting_bootstrap`` (no model wanted yet), ``training_first_model`` or
    ``ready`` (a model exists)."""
    if project.trained_generation >= 0:
        return "ready"
    return "collecting_bootstrap" if project.wanted_generation < 0 else "training_first_model"


def retrain(ctx: ServiceContext, pid: int, progress=None) -> int | None:
    """Train a new model version if one is wanted (job ``retrain``); returns its number,
    ``None`` when none is wanted, the bootstrap is incomplete, or another worker holds the
    project's lease (renewed by that worker while it trains)."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        if project.trained_generation < 0 and not bootstrap_progress(s, project)["ready"]:
            return None
    lease = RowLease(ctx.store, Project, pid, ctx.settings.retrain_lease_seconds,
                     until="retrain_lease_until", holder="retrain_lease_holder")
    if not lease.claim(Project.wanted_generation > Project.trained_generation):
        return None
    try:
        with ctx.store.session() as s:
            project = project_row(s, pid)
            generation = project.generation
            rows = s.execute(select(Example.id, Example.x, Example.label).where(
                Example.project_id == pid, Example.status.in_(TRAINING))
                .order_by(Example.id)).all()
            previous = latest_version(s, pid)
            spec, shape = dict(project.model), tuple(project.input_shape)
            # A project stores its schedule and standardization (spec.TRAINING_DEFAULTS);
            # one made before they were stored trains with its retrain mode's schedule.
            standardize = {} if spec.get("standardize") is None else {
                "standardize": spec["standardize"]}
            clf = new_classifier(project, max_epochs=spec.get("max_epochs", DEFAULT_MAX_EPOCHS),
                                 warm_epochs=spec.get("warm_epochs", DEFAULT_WARM_EPOCHS),
                                 schedule=spec.get("schedule") or training_defaults(
                                     project.retrain["mode"]).schedule, **standardize)
            fit_mode = "scratch"
            if project.retrain["mode"] == "warm" and previous is not None:
                clf.set_weights(weights_from_bytes(previous.weights))
                fit_mode = "warm"
            first, number = previous is None, (previous.version if previous else 0) + 1
            audit_size = bootstrap_audit_size(project.bootstrap_size)
            heldout = evaluation.load_sets(s, project, rows, first)   # held-out metrics' rows
            rows = heldout.training_rows(rows)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        y = np.array([r[2] for r in rows], dtype=np.int64)
        if len(np.unique(y)) < 2:
            raise RuntimeError(f"the training set of project {pid} has {len(ids)} examples of "
                               "fewer than two classes; relabel or ingest more")
        X = np.stack([np.frombuffer(r[1], np.float32).reshape(shape) for r in rows])
        started = time.perf_counter()
        report = clf.fit(X, y, mode=fit_mode)
        seconds = time.perf_counter() - started
        train_accuracy = float(np.mean(clf.predict(X) == y))
        heldout_metrics = evaluation.version_metrics(clf.predict_proba, heldout, ids,
                                                     len(project.classes))
        gold_metrics = evaluation.evaluation_metrics(clf.predict_proba, heldout,
                                                     len(project.classes))
        with ctx.store.session() as s:
            held = s.execute(update(Project).where(lease.held_by_me()).values(
                trained_generation=generation, **lease.release_values())
                .execution_options(synchronize_session=False))
            if held.rowcount != 1:
                log.warning("project %s: lost the retrain lease; dropping this model", pid)
                return None
            s.add(ModelVersion(
                project_id=pid, version=number, generation=generation, mode=fit_mode,
                weights=weights_to_bytes(clf.get_weights()), train_ids=ids.tobytes(),
                train_size=len(ids), metrics={"train_accuracy": train_accuracy,
                                              "epochs": report.epochs,
                                              "schedule": report.schedule,
                                              "training": training_view(clf, project),
                                              "best_epoch": report.best_epoch,
                                              "refit_epochs": report.refit_epochs,
                                              "validation_loss": report.validation_loss,
                                              "seconds": round(seconds, 3),
                                              "heldout": heldout_metrics,
                                              "evaluation": gold_metrics,
                                              "answers": heldout.answers}))
            evaluation.mark_holdout(s, heldout)
            webhooks.emit(s, pid, "model.created", {
                "version": number, "generation": generation, "mode": fit_mode,
                "train_size": len(ids), "train_accuracy": train_accuracy})
            audit = None
            if first and audit_size:
                audit = Audit(project_id=pid, detectors=list(BOOTSTRAP_AUDIT_DETECTORS),
                              top_k=audit_size, status="queued", progress=0.0,
                              auto_enqueue=True)
                s.add(audit)
                s.flush()
                jobs.follow(s, jobs.AUDIT(audit.id))
            if project_row(s, pid, lock=True).wanted_generation > generation:
                jobs.follow(s, jobs.RETRAIN(pid))
            jobs.follow(s, jobs.SCREEN(pid))
            jobs.follow(s, jobs.REFRESH(pid))       # open pairs of older versions
    except BaseException:
        lease.release()           # let the next attempt start at once
        raise
    finally:
        lease.stop()
    log.info("project %s: model version %s on %d examples (%.2f s)", pid, number, len(ids),
             seconds)
    warm_state(ctx, pid, number)
    return number


def warm_state(ctx: ServiceContext, pid: int, number: int) -> None:
    """Write (or map) model version ``number``'s columnar state and build its Top-Fisher
    factor now, in the retrain job (on the project's owner, with affinity), so the first
    counter-example under the new version does not wait for them. A failure only logs:
    the first use builds them instead."""
    try:
        with ctx.store.session() as s:
            project = project_row(s, pid)
            strategy = project.strategy
            version = s.scalar(select(ModelVersion).where(ModelVersion.project_id == pid,
                                                          ModelVersion.version == number))
            if version is None:
                return
            state, _, _, entry = ctx.models.training_state(s, project, version)
        if hasattr(state, "columns"):          # older versions' files: this one and one more
            from .. import columnar
            columnar.prune(state.columns.path, keep=2)
        if strategy == "top_fisher":
            with entry["lock"]:
                _ = state.top_fisher_factor_np
    except Exception:
        log.warning("project %s: could not prepare the state of version %s", pid, number,
                    exc_info=True)


def wanted_retrains(s, now) -> list[int]:
    """Projects that want a retrain nobody is doing, with a model or a complete bootstrap
    set (the reconciler's ``retrain`` work)."""
    with_model = set(s.scalars(select(ModelVersion.project_id).distinct()))
    wanted = s.scalars(select(Project).where(
        Project.wanted_generation > Project.trained_generation,
        or_(Project.retrain_lease_until.is_(None), Project.retrain_lease_until < now))).all()
    return [p.id for p in wanted if p.id in with_model or bootstrap_progress(s, p)["ready"]]


jobs.RETRAIN.bind(retrain, unfinished=wanted_retrains)
