"""Screening: the jobs that turn the stream into queries.

``screen_pending`` (job ``screen``) checks pending examples against the latest model: a
confident disagreement (margin μ ≥ τ, τ fixed or following the project's question budget)
becomes a ``computing`` query with a priority, the rest join the training set. Between
batches it opens some of the batch's new pairs itself (``PAIR_TIME_SHARE``), so that under a
long backlog pairs appear as the stream is screened, not after it.
``compute_counterexample`` (job ``counterexample``) finds the query's counter-example with
the project's strategy and opens it; ``refresh_queries`` (job ``refresh``) rebuilds stale
open pairs the same way (``build_pair``, ``freshness``).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import NamedTuple

import numpy as np
from sqlalchemy import exists, select, update

from . import budget, freshness, jobs, priority, webhooks
from .context import ServiceContext, latest_version, project_row
from .store import Example, ModelVersion, Project, Query, update_rows, utcnow

log = logging.getLogger(__name__)

RANKING_SHOWN = 4      # the counter-example and three alternatives, for the annotator
# While a screen job works through pending examples, the seconds it spends opening each
# batch's new pairs (most valuable first) per second spent screening that batch. The other
# pairs wait for their own ``counterexample`` jobs, which a busy compute worker only reaches
# once the screen job ends: with one compute worker and a fast stream, that was the whole
# backlog (the first pair of a 1M ingest opened after 393 s).
PAIR_TIME_SHARE = 1.0


class ScreenedBatch(NamedTuple):
    count: int              # examples screened
    query_ids: list         # the queries it opened (``computing``), most valuable first


def screen_pending(ctx: ServiceContext, pid: int) -> int:
    """Screen the project's pending examples (job ``screen``), a batch at a time; returns how
    many it screened. After a full batch (more may wait) it opens some of the batch's pairs
    (``PAIR_TIME_SHARE``, at least one); after the last, the pairs' own jobs follow at once."""
    n_done = 0
    while True:
        started = time.perf_counter()
        batch = screen_one_batch(ctx, pid)
        if batch is None:
            return n_done
        n_done += batch.count
        if batch.count >= ctx.settings.screen_batch:
            open_pairs(ctx, batch.query_ids,
                       (time.perf_counter() - started) * PAIR_TIME_SHARE)


def open_pairs(ctx: ServiceContext, query_ids: list, seconds: float) -> None:
    """Find the counter-examples of ``query_ids`` in order until ``seconds`` are spent (at
    least one). A failure is logged and left to the query's own job."""
    started = time.perf_counter()
    for qid in query_ids:
        try:
            compute_counterexample(ctx, qid)
        except Exception:
            log.warning("query %s: counter-example left to its job", qid, exc_info=True)
        if time.perf_counter() - started >= seconds:
            return


def screen_one_batch(ctx: ServiceContext, pid: int) -> ScreenedBatch | None:
    """Screen up to ``screen_batch`` pending examples in one transaction: one forward pass
    (numpy for Dense models), one UPDATE for the verdicts (``store.update_rows``), one
    INSERT for the batch's queries. ``None`` when nothing is pending (or there is no model
    yet), else how many this call screened and the queries it opened."""
    from ..cleaning import screen_batch  # TensorFlow: only where jobs run
    table = Example.__table__
    with ctx.store.session() as s:
        project = project_row(s, pid)
        version = latest_version(s, pid)
        if version is None:
            return None                 # the first retrain submits screening again
        rows = s.execute(select(table.c.id, table.c.x, table.c.label, table.c.external_id)
                         .where(table.c.project_id == pid, table.c.status == "pending")
                         .order_by(table.c.id).limit(ctx.settings.screen_batch)).all()
        if not rows:
            return None
        X = np.frombuffer(b"".join(r.x for r in rows), dtype=np.float32).reshape(
            (len(rows), *project.input_shape))
        probs = ctx.models.classifier(project, version).fast_forward(X)[1]
        # The lock order: the project before the examples this batch claims. Whoever else
        # changes a pending example's status holds the project's lock too, so the rows
        # still pending now stay so until this transaction ends.
        project = project_row(s, pid, lock=True)
        pending = set(s.scalars(select(table.c.id).where(
            table.c.id.in_([r.id for r in rows]), table.c.status == "pending")))
        keep = [k for k, r in enumerate(rows) if r.id in pending]
        if not keep:
            return ScreenedBatch(0, [])
        rows, probs = [rows[k] for k in keep], probs[keep]
        labels = [r.label for r in rows]
        threshold, _, window = budget.screen_threshold(
            project.threshold, project.query_budget, project.recent_margins,
            budget.margins(probs, labels))
        verdicts = screen_batch(probs, labels, threshold)
        now = utcnow()
        # What the verdict of a waiting ingest shows (``verdicts``), kept for all.
        seen = [{"screen_margin": float(v.margin), "screen_prediction": int(v.prediction),
                 "screen_probabilities": [float(a) for a in p]}
                for p, v in zip(probs, verdicts)]
        update_rows(s, table, [
            {"id": r.id, "status": "suspicious" if v.suspicious else "accepted", **o}
            for r, v, o in zip(rows, verdicts, seen)],
            fixed={"updated_at": now}, where={"status": "pending"})
        history = priority.load_history(s, pid) if any(v.suspicious for v in verdicts) else None
        opened = []
        for r, v, o in zip(rows, verdicts, seen):
            if not v.suspicious:
                continue
            q = Query(project_id=pid, example_id=r.id, model_version=version.version,
                      strategy=project.strategy, margin=o["screen_margin"],
                      threshold=float(threshold), prediction=o["screen_prediction"],
                      probabilities=o["screen_probabilities"], status=freshness.COMPUTING,
                      origin=freshness.STREAM, created_at=now)
            q.priority, q.priority_terms = priority.score(v.margin, r.label, v.prediction,
                                                          history)
            opened.append(q)
        s.add_all(opened)
        s.flush()                       # one batched INSERT … RETURNING for their ids
        queries = {q.example_id: q for q in opened}
        for r, o in zip(rows, seen):
            q = queries.get(r.id)
            screened = {"example_id": r.id, "external_id": r.external_id, "label": r.label,
                        "verdict": "accepted" if q is None else "suspicious",
                        "margin": o["screen_margin"], "prediction": o["screen_prediction"],
                        "probabilities": o["screen_probabilities"],
                        "threshold": float(threshold), "model_version": version.version}
            if q is not None:
                jobs.follow(s, jobs.COUNTEREXAMPLE(q.id))
                webhooks.emit(s, pid, "example.suspicious", {
                    "example_id": r.id, "external_id": r.external_id, "label": r.label,
                    "prediction": q.prediction, "margin": q.margin, "query_id": q.id,
                    "model_version": q.model_version})
            webhooks.emit(s, pid, "example.screened",
                          {**screened, "query_id": None if q is None else q.id})
        changes = {"recent_margins": window}
        if len(opened) < len(rows):     # some joined the training set
            changes["generation"] = Project.generation + 1
        s.execute(update(Project).where(Project.id == pid).values(**changes)
                  .execution_options(synchronize_session=False))
        by_value = [q.id for q in sorted(opened, key=lambda q: (-q.priority, q.id))]
    return ScreenedBatch(len(rows), by_value)


def compute_counterexample(ctx: ServiceContext, qid: int) -> int | None:
    """Find a ``computing`` query's counter-example and open it (job ``counterexample``);
    the counter-example's id, or ``None``."""
    return build_pair(ctx, qid, ("computing",))


def build_pair(ctx: ServiceContext, qid: int, statuses: tuple, now=None) -> int | None:
    """(Re)build query ``qid`` (in one of ``statuses``) under the latest model and the
    current labels, then open it: the example's margin again (a query that lost its reason
    is closed, ``freshness.close_reason``) and the counter-example among the training
    examples nobody has labelled or confirmed and no other open pair shows. The query is
    written only if nobody changed it meanwhile (its labels mark and model version are the
    ones read). Returns the counter-example's id, or ``None``."""
    from ..cleaning import margin
    from ..counterexamples import NoCandidates, get_strategy
    now = now or utcnow()
    with ctx.store.session() as s:
        q = s.get(Query, qid)
        if q is None or not freshness.available(q, statuses, now):
            return None
        project = project_row(s, q.project_id)
        version = latest_version(s, project.id)
        example = s.get(Example, q.example_id)
        seen = {"labels_changed_at": q.labels_changed_at, "model_version": q.model_version,
                "status": q.status}
        reason = freshness.answered_elsewhere(example)
        if reason is None:
            clf = ctx.models.classifier(project, version)
            probs = np.asarray(clf.fast_forward(example.features(project.input_shape)[None])[1][0])
            prediction, mu = margin(probs, example.label)
            reason = freshness.resolved_by_model(q, project, prediction, example.label, mu)
        if reason is not None:
            freshness.close(s, q, seen, reason, now)
            return None
        state, ids, confirmed, entry = ctx.models.training_state(s, project, version)
        busy = freshness.busy_examples(s, project.id, but=qid, within=version.train_id_range)
        exclude = confirmed | (ids == example.id) | np.isin(ids, list(busy))
        ce_id, ce_probs, note, top = None, None, None, None
        ce_scores, ce_label = None, prediction
        started = time.perf_counter()
        with entry["lock"]:
            try:
                ranking = get_strategy(q.strategy).rank(
                    state, example.features(project.input_shape), example.label, exclude)
                ce_id = int(ids[ranking.best])
                ce_probs = [float(a) for a in state.probabilities_of(ranking.best)]
                # scores in any order (the priority reads their spread); no full sort
                ce_scores, ce_label = ranking.unordered_scores, ranking.prediction
                top = [{"id": int(ids[k]), "score": float(v)}
                       for k, v in zip(*ranking.top(RANKING_SHOWN))]
            except NoCandidates as exc:
                note = str(exc)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        value, terms = priority.score(mu, example.label, ce_label,
                                      priority.load_history(s, project.id), ce_scores)
        worker, device = ctx.worker_identity()
        project_row(s, project.id, lock=True)          # the lock order: project, then queries
        opened = s.execute(update(Query).where(Query.id == qid, *freshness.unchanged(seen))
                           .values(counterexample_id=ce_id, counterexample_probabilities=ce_probs,
                                   note=note, status="open", priority=value,
                                   priority_terms=terms, ranking=top, computed_by=worker,
                                   computed_on=device, model_version=version.version,
                                   margin=float(mu), prediction=int(prediction),
                                   probabilities=[float(a) for a in probs],
                                   labels_changed_at=None, lease_holder=None,
                                   lease_expires_at=None,
                                   refreshed_at=now if seen["status"] != "computing" else None)
                           .execution_options(synchronize_session=False))
        if opened.rowcount == 1 and seen["status"] == "computing":
            webhooks.emit(s, project.id, "query.opened", {
                "query_id": qid, "example_id": example.id, "counterexample_id": ce_id,
                "origin": q.origin, "strategy": q.strategy, "margin": float(mu), "note": note})
    log.info("query %s: counter-example %s in %.1f ms on %s (%s)", qid, ce_id, elapsed_ms,
             worker, device)
    return ce_id


def refresh_queries(ctx: ServiceContext, pid: int) -> dict:
    """Rebuild or close the project's stale open pairs (job ``refresh``); counts by
    outcome: ``refreshed``, ``closed``, ``skipped`` (changed meanwhile)."""
    with ctx.store.session() as s:
        todo = freshness.stale_ids(s, pid)
    counts: Counter = Counter()
    for qid in todo:
        build_pair(ctx, qid, ("open",))
        with ctx.store.session() as s:
            q = s.get(Query, qid)
            counts["closed" if q.status == freshness.CLOSED else
                   "refreshed" if q.refreshed_at is not None and q.labels_changed_at is None
                   else "skipped"] += 1
    return dict(counts)


def pending_screens(s, now) -> list[int]:
    """Projects with pending examples and a model (the reconciler's ``screen`` work): one
    index probe per project, not a read of every pending row."""
    pending = exists().where(Example.project_id == Project.id, Example.status == "pending")
    return s.scalars(select(Project.id).where(
        Project.id.in_(select(ModelVersion.project_id)), pending).order_by(Project.id)).all()


def computing_queries(s, now) -> list[int]:
    """Queries waiting for their counter-example (the reconciler's ``counterexample``
    work), the oldest ``jobs.RECONCILE_WINDOW``."""
    return s.scalars(select(Query.id).where(Query.status == freshness.COMPUTING)
                     .order_by(Query.id).limit(jobs.RECONCILE_WINDOW)).all()


jobs.SCREEN.bind(screen_pending, unfinished=pending_screens)
jobs.COUNTEREXAMPLE.bind(compute_counterexample, unfinished=computing_queries)
jobs.REFRESH.bind(refresh_queries, unfinished=freshness.stale_projects)
