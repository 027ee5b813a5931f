"""The data owner's overview (after De-Confusion): label → prediction cells and batch fixes.

This module owns the ``overviews`` table and everything the overview page needs:

* the ``overview`` job (``compute_overview``) runs the latest model over the project's
  examples, scores each with the mismatch score ``(max_j p_j + 1 − p_label) / 2``, groups
  them into (given label, prediction) cells, lays each cell out in 2-D (t-SNE, or a grid
  below ``TSNE_MIN`` examples) and finds near-duplicate pairs inside cells; the result is
  stored, because predictions need the model and the API process never loads one;
* reads for the API: the matrix (``get_overview``), one cell's examples (``get_cell``) and
  the cleaning progress per model version (``cleaning_progress``, ``progress_plot``);
* batch actions on examples picked in a cell: ``relabel_examples``, ``confirm_examples``
  (the trusted set) and ``remove_examples`` (status ``removed``: out of the training set,
  kept with its history). Each records one label event per example.
"""
from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
from sqlalchemy import and_, func, or_, select, update

from . import evaluation, jobs
from .context import ServiceContext, latest_version, project_row
from .errors import BadInput, Conflict
from .labels import REMOVED, LabelChange, change_labels, count_towards_retrain
from .projects import label_error, label_index
from .store import Audit, Example, LabelEvent, ModelVersion, Overview, Query, retry_transaction, utcnow

ACTIONS = ("relabel", "confirm", "remove")
HISTOGRAM_BINS = 10                 # mismatch scores lie in [0.5, 1]
TSNE_MIN = 6                        # fewer examples in a cell are laid out on a grid
EMBED_MAX = 300                     # the highest-scoring examples of a cell get positions


# -- pure pieces ---------------------------------------------------------------------------
def mismatch_scores(probs, labels) -> np.ndarray:
    """De-Confusion's mismatch score per example: ``(max_j p_j + 1 − p_label) / 2``.

    0.5 when the model agrees with the label; close to 1 when it is sure of another class."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return (probs.max(axis=1) + 1.0 - probs[np.arange(len(labels)), labels]) / 2.0


def score_histogram(scores, bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts of ``scores`` in ``bins`` equal bins over [0.5, 1]."""
    counts, _ = np.histogram(np.clip(scores, 0.5, 1.0), bins=bins, range=(0.5, 1.0))
    return [int(c) for c in counts]


def layout_2d(X, seed: int = 0) -> np.ndarray:
    """2-D positions in [0, 1]² for the rows of ``X``: t-SNE for ``TSNE_MIN`` rows or more,
    a square grid below that (t-SNE says nothing about a handful of points)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    n = len(X)
    if n == 0:
        return np.zeros((0, 2))
    if n < TSNE_MIN:
        side = int(np.ceil(np.sqrt(n)))
        grid = np.array([(k % side, k // side) for k in range(n)], dtype=np.float64)
        return (grid + 0.5) / side
    from sklearn.manifold import TSNE
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    Y = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
             max_iter=500).fit_transform(X)
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    return 0.05 + 0.9 * (Y - lo) / np.where(hi - lo > 0, hi - lo, 1.0)


def build_cells(ids, X, labels, predictions, scores, duplicate_pairs=()) -> list[dict]:
    """The overview's cells, largest first: ``{label, prediction, count, histogram,
    duplicates, examples: [{id, score, xy}]}`` with examples by decreasing score."""
    ids, labels, predictions = (np.asarray(a) for a in (ids, labels, predictions))
    scores = np.asarray(scores, dtype=np.float64)
    dup_count: dict = {}
    for pair in duplicate_pairs:
        key = (pair["label"], pair["prediction"])
        dup_count[key] = dup_count.get(key, 0) + 1
    cells = []
    for label, prediction in sorted(set(zip(labels.tolist(), predictions.tolist()))):
        members = np.flatnonzero((labels == label) & (predictions == prediction))
        members = members[np.argsort(-scores[members], kind="stable")]
        xy = layout_2d(X[members[:EMBED_MAX]])
        examples = [{"id": int(ids[m]), "score": round(float(scores[m]), 4),
                     "xy": [round(float(v), 4) for v in xy[k]] if k < len(xy) else None}
                    for k, m in enumerate(members)]
        cells.append({"label": int(label), "prediction": int(prediction),
                      "count": int(len(members)), "histogram": score_histogram(scores[members]),
                      "duplicates": dup_count.get((int(label), int(prediction)), 0),
                      "examples": examples})
    cells.sort(key=lambda c: (-c["count"], c["label"], c["prediction"]))
    return cells


# -- the job ---------------------------------------------------------------------------------
def request_overview(ctx: ServiceContext, pid: int) -> dict:
    """Ask for the overview to be (re)computed from the latest model; submits the job.
    A computation already under way is kept. Returns the overview's summary."""
    now = utcnow()
    with ctx.store.session() as s:
        project_row(s, pid)
        if latest_version(s, pid) is None:
            raise Conflict("the project has no model yet; the overview needs predictions")
        row = s.scalar(select(Overview).where(Overview.project_id == pid))
        if row is None:
            s.add(Overview(project_id=pid, status="computing", requested_at=now))
        elif row.status != "computing":
            s.execute(update(Overview).where(Overview.id == row.id).values(
                status="computing", requested_at=now, error=None, lease_until=None))
        jobs.follow(s, jobs.OVERVIEW(pid))
    return get_overview(ctx, pid, resubmit=False)


def compute_overview(ctx: ServiceContext, pid: int, progress=None) -> str | None:
    """Compute and store the project's overview (job ``overview``); ``None`` when none is
    wanted or another worker holds it."""
    from ..detectors.duplicates import near_duplicates  # TensorFlow: only in jobs
    now = utcnow()
    lease = timedelta(seconds=ctx.settings.retrain_lease_seconds)
    with ctx.store.session() as s:
        claimed = s.execute(update(Overview).where(
            Overview.project_id == pid, Overview.status == "computing",
            (Overview.lease_until.is_(None)) | (Overview.lease_until < now))
            .values(lease_until=now + lease).execution_options(synchronize_session=False))
        if claimed.rowcount != 1:
            return None
    try:
        with ctx.store.session() as s:
            project = project_row(s, pid)
            version = latest_version(s, pid)
            if version is None:
                raise Conflict("the project has no model yet")
            # the evaluation set is the yardstick, not data to clean: not in the overview
            rows = s.execute(select(Example.id, Example.x, Example.label)
                             .where(Example.project_id == pid,
                                    Example.status.notin_((REMOVED,
                                                           evaluation.EVALUATION_STATUS)))
                             .order_by(Example.id)).all()
            clf = ctx.models.classifier(project, version)
            shape, generation = tuple(project.input_shape), project.generation
            number, classes = version.version, list(project.classes)
        if not rows:
            raise Conflict("the project has no examples")
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        X = np.stack([np.frombuffer(r[1], np.float32).reshape(shape) for r in rows])
        labels = np.array([r[2] for r in rows], dtype=np.int64)
        probs = np.asarray(clf.predict_proba(X))
        predictions = probs.argmax(axis=1)
        scores = mismatch_scores(probs, labels)
        if progress is not None:
            progress(0.3, 1.0, "predicted")
        found = near_duplicates(X, labels, predictions)
        duplicates = [{"first": int(ids[p.first]), "second": int(ids[p.second]),
                       "similarity": round(float(p.similarity), 4), "label": p.label,
                       "prediction": p.prediction} for p in found.pairs]
        cells = build_cells(ids, X, labels, predictions, scores, duplicates)
        result = {"classes": classes, "n_examples": int(len(ids)), "cells": cells,
                  "duplicates": duplicates, "bins": HISTOGRAM_BINS}
        with ctx.store.session() as s:
            s.execute(update(Overview).where(Overview.project_id == pid).values(
                status="done", result=result, model_version=number, generation=generation,
                computed_at=utcnow(), lease_until=None, error=None))
    except Exception as exc:
        with ctx.store.session() as s:
            s.execute(update(Overview).where(Overview.project_id == pid).values(
                status="failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                lease_until=None))
        if isinstance(exc, Conflict):
            return "failed"
        raise
    return "done"


# -- reads -----------------------------------------------------------------------------------
def get_overview(ctx: ServiceContext, pid: int, resubmit: bool = True) -> dict:
    """The stored overview without per-example lists: ``{status, stale, model_version,
    computed_at, error, classes, n_examples, bins, cells: [{label, prediction, count,
    histogram, duplicates}], duplicates, audit}``. ``status`` is ``missing`` before the
    first request; ``stale`` says labels changed since it was computed. A computation
    whose worker vanished (lease run out) is submitted again."""
    now = utcnow()
    with ctx.store.session() as s:
        project = project_row(s, pid)
        row = s.scalar(select(Overview).where(Overview.project_id == pid))
        audit = s.scalar(select(Audit).where(Audit.project_id == pid, Audit.status == "done")
                         .order_by(Audit.id.desc()).limit(1))
        audit_part = None
        if audit is not None:
            report = audit.result or {}
            audit_part = {"id": audit.id, "detectors": list(audit.detectors),
                          "suspects": report.get("suspects", []),
                          "duplicates": report.get("duplicates", [])}
        base = {"status": "missing", "stale": False, "model_version": None,
                "computed_at": None, "requested_at": None, "error": None,
                "classes": list(project.classes), "n_examples": 0, "bins": HISTOGRAM_BINS,
                "cells": [], "duplicates": [], "audit": audit_part}
        if row is None:
            return base
        lost = row.status == "computing" and (row.lease_until is None or row.lease_until < now) \
            and row.requested_at < now - timedelta(seconds=30)
        result = row.result or {}
        cells = [{k: c[k] for k in ("label", "prediction", "count", "histogram", "duplicates")}
                 for c in result.get("cells", [])]
        view = {**base, "status": row.status, "model_version": row.model_version,
                "computed_at": row.computed_at, "requested_at": row.requested_at,
                "error": row.error, "n_examples": result.get("n_examples", 0),
                "cells": cells, "duplicates": result.get("duplicates", []),
                "stale": row.generation is not None and row.generation != project.generation}
    if lost and resubmit:
        ctx.submit(jobs.OVERVIEW(pid))
    return view


def get_cell(ctx: ServiceContext, pid: int, label: int, prediction: int,
             min_score: float = 0.0, max_score: float = 1.0) -> dict:
    """One cell's examples with ``min_score ≤ score ≤ max_score``, by decreasing score:
    ``{label, prediction, count, items: [{id, external_id, score, xy, x, label, status,
    confirmed}]}``; ``label`` / ``status`` are the examples' current values."""
    with ctx.store.session() as s:
        project = project_row(s, pid)
        row = s.scalar(select(Overview).where(Overview.project_id == pid))
        cells = ((row.result or {}).get("cells", []) if row is not None else [])
        cell = next((c for c in cells if c["label"] == label
                     and c["prediction"] == prediction), None)
        if cell is None:
            from .errors import NotFound
            raise NotFound(f"the overview has no cell {label} → {prediction}",
                           {"label": label, "prediction": prediction})
        chosen = [e for e in cell["examples"] if min_score <= e["score"] <= max_score]
        rows = {e.id: e for e in s.scalars(select(Example).where(
            Example.id.in_([c["id"] for c in chosen])))}
        items = []
        for entry in chosen:
            e = rows.get(entry["id"])
            if e is None:
                continue
            items.append({**entry, "external_id": e.external_id,
                          "x": e.features(project.input_shape).tolist(), "label": e.label,
                          "status": e.status, "confirmed": e.confirmed})
        return {"label": label, "prediction": prediction, "count": cell["count"],
                "items": items}


def cleaning_progress(ctx: ServiceContext, pid: int) -> list[dict]:
    """Per model version (0: before the first model): queries answered on that version's
    queries, and human label changes made while it was the newest model:
    ``[{version, answers, relabels, created_at}]``."""
    with ctx.store.session() as s:
        project_row(s, pid)
        versions = s.execute(select(ModelVersion.version, ModelVersion.created_at)
                             .where(ModelVersion.project_id == pid)
                             .order_by(ModelVersion.version)).all()
        answers = dict(s.execute(select(Query.model_version, func.count(Query.id))
                                 .where(Query.project_id == pid, Query.status == "answered")
                                 .group_by(Query.model_version)).all())
        changes = s.scalars(select(LabelEvent.at).join(Example).where(
            Example.project_id == pid, LabelEvent.why != "ingest",
            LabelEvent.old_label != LabelEvent.new_label)).all()
    starts = [(0, None)] + [(v, at) for v, at in versions]
    relabels = {v: 0 for v, _ in starts}
    for at in changes:
        current = 0
        for v, start in starts[1:]:
            if start <= at:
                current = v
        relabels[current] += 1
    return [{"version": v, "answers": int(answers.get(v, 0)), "relabels": relabels[v],
             "created_at": at} for v, at in starts
            if v > 0 or relabels[v] or answers.get(v)]


def progress_plot(ctx: ServiceContext, pid: int) -> bytes:
    """The cleaning progress as a PNG: answers and relabels per model version (bars) and
    the running total of relabels (line). Matplotlib with the Agg backend."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    rows = cleaning_progress(ctx, pid)
    figure = Figure(figsize=(6.4, 2.8), dpi=100)
    axes = figure.add_subplot()
    if rows:
        x = np.arange(len(rows))
        axes.bar(x - 0.2, [r["answers"] for r in rows], 0.4, label="answers",
                 color="#2357c6")
        axes.bar(x + 0.2, [r["relabels"] for r in rows], 0.4, label="labels changed",
                 color="#e0a030")
        axes.set_xticks(x, [("before" if r["version"] == 0 else f"v{r['version']}")
                            for r in rows])
        total = axes.twinx()
        total.plot(x, np.cumsum([r["relabels"] for r in rows]), color="#1d2430",
                   marker="o", label="labels changed, total")
        total.set_ylabel("total changed")
        total.set_ylim(0, max(1, sum(r["relabels"] for r in rows)) * 1.15)
        axes.set_ylim(0, max([1] + [max(r["answers"], r["relabels"]) for r in rows]) * 1.15)
        handles = axes.get_legend_handles_labels()
        more = total.get_legend_handles_labels()
        axes.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left",
                    fontsize=8, frameon=False)
    else:
        axes.text(0.5, 0.5, "no model and no answers yet", ha="center", va="center")
    axes.set_xlabel("model version")
    axes.set_ylabel("per version")
    axes.set_title("Cleaning progress", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def curve_plot(ctx: ServiceContext, pid: int) -> bytes:
    """The cleaning curve as a PNG: accuracy and macro-F1 on the evaluation set against the
    answers given (left) and against the model version (right), one point per version
    scored on it. Matplotlib with the Agg backend."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    with ctx.store.session() as s:
        project_row(s, pid)
        curve = evaluation.cleaning_curve(s, pid)
    points = [p for p in curve if p["status"] == "ok"]
    figure = Figure(figsize=(8.0, 3.0), dpi=100)
    by_answers, by_version = figure.subplots(1, 2, sharey=True)
    if points:
        versions = [p["version"] for p in points]
        sizes = sorted({p["n"] for p in points})
        for key, name, color in (("accuracy", "accuracy", "#2357c6"),
                                 ("f1_macro", "macro-F1", "#e0a030")):
            values = [p[key] for p in points]
            timed = [(p["answers"], p[key]) for p in points if p["answers"] is not None]
            if timed:
                by_answers.plot(*zip(*timed), marker="o", color=color, label=name)
            by_version.plot(versions, values, marker="o", color=color, label=name)
        low = min(min(p["accuracy"], p["f1_macro"]) for p in points)
        by_answers.set_ylim(max(0.0, low - 0.1), 1.0)
        by_version.set_xticks(versions, [f"v{v}" for v in versions])
        by_version.legend(loc="lower right", fontsize=8, frameon=False)
        n_text = "/".join(str(n) for n in sizes)
        figure.suptitle(f"Cleaning curve: the evaluation set ({n_text} trusted examples)",
                        fontsize=10)
    else:
        by_answers.text(0.5, 0.5, "no model scored on an evaluation set yet:\n"
                        "ingest examples with split \"evaluation\"", ha="center",
                        va="center", fontsize=8, transform=by_answers.transAxes)
        figure.suptitle("Cleaning curve", fontsize=10)
    by_answers.set_xlabel("answers given")
    by_answers.set_ylabel("on the evaluation set")
    by_version.set_xlabel("model version")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# -- batch actions -------------------------------------------------------------------------
def relabel_examples(ctx: ServiceContext, pid: int, example_ids: list[int], label,
                     actor: str, reason: str | None = None) -> dict:
    """Give every listed example ``label`` (a class name or index); each change is a label event
    ``overview_relabel`` and the example counts as checked by a person (``confirmed``).
    Examples that already have the label are left alone. ``{action, changed, example_ids}``."""
    return _apply(ctx, pid, example_ids, "relabel", actor, reason, label)


def confirm_examples(ctx: ServiceContext, pid: int, example_ids: list[int], actor: str,
                     reason: str | None = None) -> dict:
    """Add the listed examples to the trusted set (``confirmed``), label unchanged; one
    label event ``overview_confirm`` each (old = new label). Labels and training set are
    untouched, so the project's generation is not bumped."""
    return _apply(ctx, pid, example_ids, "confirm", actor, reason)


def remove_examples(ctx: ServiceContext, pid: int, example_ids: list[int], actor: str,
                    reason: str | None = None) -> dict:
    """Take the listed examples out of the training set for good (status ``removed``; row
    and history kept); one label event ``overview_remove`` each (old = new label)."""
    return _apply(ctx, pid, example_ids, "remove", actor, reason)


def apply_action(ctx: ServiceContext, pid: int, action: str, example_ids: list[int],
                 actor: str, label: int | None = None, reason: str | None = None) -> dict:
    """``relabel`` / ``confirm`` / ``remove`` by name (the API's one entry point)."""
    if action == "relabel":
        if label is None:
            raise BadInput("relabel needs a label", {"label": ["required for relabel"]})
        return relabel_examples(ctx, pid, example_ids, label, actor, reason)
    if action == "confirm":
        return confirm_examples(ctx, pid, example_ids, actor, reason)
    if action == "remove":
        return remove_examples(ctx, pid, example_ids, actor, reason)
    raise BadInput(f"unknown action {action!r}", {"action": [f"one of {', '.join(ACTIONS)}"]})


@retry_transaction
def _apply(ctx, pid, example_ids, action, actor, reason, label=None) -> dict:
    ids = sorted({int(i) for i in example_ids})
    if not ids:
        raise BadInput("no examples chosen", {"example_ids": ["at least one id"]})
    with ctx.store.session() as s:
        project = project_row(s, pid, lock=True)        # the lock order: project first
        index = None
        if label is not None:
            index = label_index(project.classes, label)
            if index is None:
                raise BadInput("invalid label", {"label": [label_error(project.classes)]})
        found = set(s.scalars(select(Example.id).where(Example.project_id == pid,
                                                       Example.id.in_(ids))))
        missing = sorted(set(ids) - found)
        if missing:
            raise BadInput(f"{len(missing)} example(s) are not in project {pid}",
                           {"example_ids": missing[:50]})
        outcome = change_labels(s, pid, [LabelChange(i, index, f"overview_{action}")
                                         for i in ids],
                                actor, reason=reason, skip_unchanged=True)
        if outcome.training_changed:
            count_towards_retrain(s, pid, len(outcome.recorded))
    return {"action": action, "changed": len(outcome.recorded),
            "example_ids": outcome.recorded}


def unfinished_overviews(s, now) -> list[int]:
    """Projects whose overview is wanted and nobody computes it (never claimed for 30 s,
    or its lease ran out): the reconciler's ``overview`` work."""
    return s.scalars(select(Overview.project_id).where(
        Overview.status == "computing",
        or_(Overview.lease_until < now,
            and_(Overview.lease_until.is_(None),
                 Overview.requested_at < now - timedelta(seconds=30))))
        .order_by(Overview.project_id)).all()


jobs.OVERVIEW.bind(compute_overview, unfinished=unfinished_overviews)
