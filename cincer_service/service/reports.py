"""Reports: a project's statistics and label export, and the service-wide counters.

Read-only views over the database; ``metrics`` adds this process's job counters.
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from . import budget, evaluation, jobs, training, transfer
from .context import ServiceContext, latest_version_number, project_row
from .examples import STATUSES
from .store import Example, LabelEvent, ModelVersion, Query, utcnow

QUERY_STATUSES = ("computing", "open", "leased", "collecting", "answered", "closed")


def stats(ctx: ServiceContext, pid: int) -> dict:
    """Examples and queries per status, labels cleaned so far, latest model version, the
    project's state (collecting its bootstrap set, training its first model, ready), jobs
    that are failing with their last error, the screening threshold in use (``threshold``:
    the fixed τ or the question budget's), the newest version's held-out metrics
    (``heldout``), its scores on the evaluation set (``evaluation``) and the cleaning curve:
    every version's evaluation scores with the answers it was trained after
    (``cleaning_curve``, see ``evaluation.cleaning_curve``)."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        examples = dict(s.execute(select(Example.status, func.count(Example.id))
                                  .where(Example.project_id == pid)
                                  .group_by(Example.status)).all())
        now = utcnow()
        queries = Counter()
        for status, expired, count in s.execute(
                select(Query.status, Query.lease_expires_at < now, func.count(Query.id))
                .where(Query.project_id == pid)
                .group_by(Query.status, Query.lease_expires_at < now)).all():
            queries["open" if status == "leased" and expired else status] += count
        cleaned = s.scalar(select(func.count(Example.id)).where(
            Example.project_id == pid, Example.label != Example.original_label))
        relabelled = s.scalar(select(func.count(LabelEvent.id)).join(Example).where(
            Example.project_id == pid, LabelEvent.why != "ingest",
            LabelEvent.old_label != LabelEvent.new_label))
        return {"examples": {k: int(examples.get(k, 0)) for k in STATUSES},
                "queries": {k: int(queries.get(k, 0)) for k in QUERY_STATUSES},
                "cleaned": int(cleaned), "relabelled": int(relabelled),
                "model_version": latest_version_number(s, pid),
                "state": training.lifecycle(project),
                "bootstrap": training.bootstrap_progress(s, project),
                "retrain_wanted": project.wanted_generation > project.trained_generation,
                "failing_jobs": jobs.failing_jobs(s, pid),
                "threshold": budget.threshold_view(project),
                "heldout": evaluation.latest_heldout(s, pid),
                "evaluation": evaluation.latest_evaluation(s, pid),
                "cleaning_curve": evaluation.cleaning_curve(s, pid)}


def export(ctx: ServiceContext, pid: int, fmt: str = "csv") -> tuple[str, str]:
    """``(text, mimetype)``: every example with its labels (indices and class names),
    input, status and last change, as CSV or JSON lines (with the label history);
    ``service.transfer`` writes it, and reads it back on import."""
    return transfer.export(ctx, pid, fmt)


def metrics(ctx: ServiceContext) -> dict:
    """Counters for ``/metrics``: rows per project and status, model versions, jobs run."""
    with ctx.store.session() as s:
        examples = s.execute(select(Example.project_id, Example.status, func.count(Example.id))
                             .group_by(Example.project_id, Example.status)).all()
        queries = s.execute(select(Query.project_id, Query.status, func.count(Query.id))
                            .group_by(Query.project_id, Query.status)).all()
        versions = s.execute(select(ModelVersion.project_id, func.count(ModelVersion.id))
                             .group_by(ModelVersion.project_id)).all()
    return {"examples": [tuple(r) for r in examples], "queries": [tuple(r) for r in queries],
            "model_versions": [tuple(r) for r in versions],
            "jobs": dict(ctx.job_counts), "job_failures": dict(ctx.job_failures)}
