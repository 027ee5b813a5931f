"""Audits: score a project's training set offline, then queue the top suspects.

The detectors and the way their ranks combine live in the core
(``cincer_service.detectors.find_issues``, shared with the ``audit`` command); this module
only claims the audit row (a lease its worker renews), loads the rows, calls it and stores
the report. The first model of a project audits its bootstrap set automatically
(``auto_enqueue``): those suspects become queries with origin ``bootstrap``.
"""
from __future__ import annotations

import numpy as np
from sqlalchemy import and_, or_, select, update

from ..catalog import DETECTOR_NAMES
from . import freshness, jobs, webhooks
from .context import TRAINING, ServiceContext, audit_row, latest_version, project_row
from .errors import BadInput, Conflict
from .leases import RowLease
from .store import Audit, Example, Query


def audit_view(a: Audit) -> dict:
    """The audit as the API shows it (the report's lists empty until it is done)."""
    result = a.result or {}
    return {"id": a.id, "project_id": a.project_id, "status": a.status,
            "progress": a.progress, "detectors": list(a.detectors), "top_k": a.top_k,
            "suspects": result.get("suspects", []), "duplicates": result.get("duplicates", []),
            "leakage": result.get("leakage", []), "skipped": result.get("skipped", {}),
            "error": a.error, "created_at": a.created_at}


def create_audit(ctx: ServiceContext, pid: int, detectors: list[str], top_k: int = 20) -> dict:
    """Queue an audit of the training set with the named detectors."""
    unknown = [d for d in detectors if d not in DETECTOR_NAMES]
    if not detectors or unknown:
        raise BadInput("unknown or missing detectors",
                       {"detectors": [f"choose from {', '.join(sorted(DETECTOR_NAMES))}"],
                        "unknown": unknown})
    with ctx.store.session() as s:
        project_row(s, pid)
        if latest_version(s, pid) is None:
            raise Conflict("the project has no model yet; ingest the bootstrap set first")
        audit = Audit(project_id=pid, detectors=list(detectors), top_k=top_k,
                      status="queued", progress=0.0)
        s.add(audit)
        s.flush()
        jobs.follow(s, jobs.AUDIT(audit.id))
        result = audit_view(audit)
    return result


def get_audit(ctx: ServiceContext, pid: int, aid: int) -> dict:
    """An audit's status, progress and, when done, its report."""
    with ctx.store.session() as s:
        return audit_view(audit_row(s, pid, aid))


def run_audit(ctx: ServiceContext, aid: int, progress=None) -> str | None:
    """Run a queued audit (job ``audit``); ``None`` when another worker holds its lease.
    An automatic audit (the first model's bootstrap set) then queues its top suspects."""
    from ..detectors import TrustedSet, find_issues
    from ..state import ModelState
    lease = RowLease(ctx.store, Audit, aid, ctx.settings.retrain_lease_seconds)
    if not lease.claim(Audit.status.in_(("queued", "running")), status="running"):
        return None
    try:
        with ctx.store.session() as s:
            audit = s.get(Audit, aid)
            project = project_row(s, audit.project_id)
            rows = s.execute(select(Example.id, Example.x, Example.label, Example.confirmed)
                             .where(Example.project_id == project.id,
                                    Example.status.in_(TRAINING))
                             .order_by(Example.id)).all()
            detectors, top_k, auto = list(audit.detectors), audit.top_k, audit.auto_enqueue
            classifier = ctx.models.classifier(project, latest_version(s, project.id))
        shape = tuple(project.input_shape)

        def report_progress(done, total, message=""):
            fraction = float(done) / max(float(total), 1e-12)
            with ctx.store.session() as s:
                s.execute(update(Audit).where(Audit.id == aid).values(progress=fraction))
            if progress is not None:
                progress(fraction, 1.0, message)

        ids = np.array([r[0] for r in rows], dtype=np.int64)
        X = np.stack([np.frombuffer(r[1], np.float32).reshape(shape) for r in rows])
        y = np.array([r[2] for r in rows], dtype=np.int64)
        trusted_rows = np.flatnonzero([r[3] for r in rows])
        state = ModelState.build(classifier, X, y, project.damping)
        trusted = TrustedSet.from_state(state, trusted_rows) if len(trusted_rows) else None
        report = find_issues(state, detectors, trusted=trusted, inputs=X, top_k=top_k,
                             progress=report_progress)
        with ctx.store.session() as s:
            done = s.execute(update(Audit).where(lease.held_by_me()).values(
                status="done", progress=1.0, result=report.to_dict(ids),
                **lease.release_values()))
            if done.rowcount == 1:
                webhooks.emit(s, project.id, "audit.finished", {
                    "audit_id": aid, "status": "done", "detectors": detectors,
                    "top_k": top_k, "automatic": auto, "error": None})
                if auto:      # in the same transaction: done means its queries exist
                    _enqueue(ctx, s, project.id, s.get(Audit, aid, populate_existing=True),
                             None, "bootstrap")
    except Exception as exc:
        lease.stop()
        with ctx.store.session() as s:
            failed = s.execute(update(Audit).where(lease.held_by_me()).values(
                status="failed", error=f"{type(exc).__name__}: {exc}",
                **lease.release_values()))
            pid = s.get(Audit, aid).project_id
            if failed.rowcount == 1:
                webhooks.emit(s, pid, "audit.finished", {
                    "audit_id": aid, "status": "failed",
                    "error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        lease.stop()
    return "done"


def enqueue_audit(ctx: ServiceContext, pid: int, aid: int, top_k: int | None = None,
                  origin: str = "audit") -> dict:
    """Turn a finished audit's top suspects into review queries (each then gets a
    counter-example); suspects already confirmed or under review are skipped."""
    with ctx.store.session() as s:
        audit = audit_row(s, pid, aid)
        if audit.status != "done":
            raise Conflict(f"audit {aid} is {audit.status}, not done")
        created = _enqueue(ctx, s, pid, audit, top_k, origin)
    return {"audit_id": aid, "query_ids": created, "enqueued": len(created)}


def _enqueue(ctx: ServiceContext, s, pid: int, audit: Audit, top_k: int | None,
             origin: str) -> list[int]:
    """Create the ``computing`` queries of a done audit's top suspects in session ``s``;
    their ids (each gets its counter-example after the commit)."""
    from ..cleaning import margin  # TensorFlow: only where models run
    project = project_row(s, pid)
    version = latest_version(s, pid)
    clf = ctx.models.classifier(project, version)
    suspects = (audit.result or {}).get("suspects", [])[:top_k or audit.top_k]
    busy, created = freshness.busy_examples(s, pid), []
    for suspect in suspects:
        example = s.get(Example, suspect["example_id"])
        if example is None or example.id in busy or example.confirmed:
            continue
        p = clf.predict_proba(example.features(project.input_shape)[None])[0]
        prediction, mu = margin(p, example.label)
        q = Query(project_id=pid, example_id=example.id, model_version=version.version,
                  strategy=project.strategy, origin=origin, status="computing",
                  margin=mu, prediction=prediction, probabilities=[float(a) for a in p])
        s.add(q)
        s.flush()
        created.append(q.id)
        jobs.follow(s, jobs.COUNTEREXAMPLE(q.id))
    return created


def list_audits(ctx: ServiceContext, pid: int, offset: int = 0, limit: int = 50) -> dict:
    """One page ``{items, total}`` of the project's audits, newest first (each as
    ``get_audit`` shows it); ``NotFound`` for an unknown project."""
    from sqlalchemy import func
    with ctx.store.session() as s:
        project_row(s, pid)
        total = s.scalar(select(func.count(Audit.id)).where(Audit.project_id == pid))
        rows = s.scalars(select(Audit).where(Audit.project_id == pid)
                         .order_by(Audit.id.desc()).offset(offset).limit(limit))
        return {"items": [audit_view(a) for a in rows], "total": total}


def unfinished_audits(s, now) -> list[int]:
    """Audits queued, or running under an expired lease (the reconciler's ``audit``
    work)."""
    return s.scalars(select(Audit.id).where(or_(
        Audit.status == "queued",
        and_(Audit.status == "running", Audit.lease_until < now))).order_by(Audit.id)).all()


jobs.AUDIT.bind(run_audit, unfinished=unfinished_audits)
