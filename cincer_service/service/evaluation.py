"""Metrics of each model version: the evaluation set, the trusted set and the hold-out.

Every new model version is scored (by the ``retrain`` job, which already holds the model)
on up to three sets, each named for what it is:

* ``evaluation`` (``metrics["evaluation"]``): the data owner's gold set. Examples ingested
  with ``split: "evaluation"`` get the example status ``evaluation``: no status query of
  the service selects them (the training set is ``status in (accepted, reviewed)``,
  screening takes ``pending``, audits the training set, counter-examples a version's
  training ids), so they are never trained on, screened, queried or offered as a
  counter-example, and their label is trusted (``confirmed``). This is the only set whose
  labels are meant to be the truth, so its numbers are the ones that show whether cleaning
  helps: the cleaning curve (``cleaning_curve``) is this entry per version, with the answers
  given when the version's training set was read (``metrics["answers"]``). It is scored
  whenever it is not empty (``{"status": "empty", "n": 0}`` otherwise), with its size per
  class; examples ingested into it after a retrain count from the next version on.
* ``trusted`` (``metrics["heldout"]``): the training-side examples whose label a human gave
  or confirmed (``Example.confirmed``: the example or the counter-example of an answered
  query, an overview confirmation), with their current labels. Most of these examples are
  also in the training set of the version being scored, so the numbers are optimistic; the
  report says how many were trained on (``in_training``).
* ``holdout_noisy`` (``metrics["heldout"]``): a fixed stratified hold-out. When the first
  model is trained, a deterministic share (``ProjectSpec.holdout_share``, off by default) of
  each class of the bootstrap set is moved to status ``holdout``: out of the training set,
  never screened, never offered as a counter-example, so every later version is scored on
  the same examples. Their labels are the ones they were ingested with, noise included:
  the numbers compare versions with each other; they are not the accuracy against the
  truth. The choice is by a hash of each example's input, so the same data gives the same
  hold-out whatever the ingestion order.

``trusted`` and ``holdout_noisy`` are scored only when every class of the project has at
least ``MIN_EVAL_PER_CLASS`` examples in them; otherwise the entry is ``{"status":
"too_few", "n": k, "min": m, ...}``. With ``holdout_share`` 0 the hold-out entry is
``{"status": "off"}``.

Accuracy, F1 (macro and weighted) and log loss are scikit-learn's (``log_loss`` with every
class of the project as ``labels``). ECE, which scikit-learn lacks, is computed here over 10
equal-width confidence bins ``(i/10, (i+1)/10]`` (confidence 0 in the first bin):
``Σ_b (n_b / n) |accuracy_b − confidence_b|``, with the top-class probability as confidence.
"""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select, update

from ..spec import MIN_EVAL_PER_CLASS
from .context import TRAINING
from .store import Example, ModelVersion, Project, Query, utcnow

ECE_BINS = 10
HOLDOUT_STATUS = "holdout"        # example status of the fixed hold-out
EVALUATION_STATUS = "evaluation"  # example status of the data owner's evaluation set
SET_ASIDE = (HOLDOUT_STATUS, EVALUATION_STATUS)   # out of training, screening and queries
REMOVED_STATUS = "removed"        # overview.REMOVED: out of every set
SPLITS = ("training", "evaluation")               # an ingest item's ``split``


# -- metrics -------------------------------------------------------------------------------
def expected_calibration_error(y_true, probabilities, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-width bins of the top-class probability."""
    p = np.asarray(probabilities, dtype=np.float64)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    # bin b holds confidences in (b/bins, (b+1)/bins]; 0 goes to the first bin
    edges = np.arange(bins + 1) / bins
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(p))


def classification_metrics(y_true, probabilities, n_classes: int | None = None) -> dict:
    """``{n, accuracy, f1_macro, f1_weighted, log_loss, ece}`` of predicted probabilities
    (rows renormalised to sum to 1; ``n_classes`` defaults to their width). F1 averages over
    the classes that occur in the labels or the predictions (a class never predicted scores
    0); the log loss knows every class. scikit-learn is imported here, where jobs run."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.metrics import log_loss as sk_log_loss
    # scikit-learn 1.9 renamed log_loss's ``y_pred`` to ``y_proba``
    proba = "y_proba" if "y_proba" in inspect.signature(sk_log_loss).parameters else "y_pred"
    p = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = p.argmax(axis=1)
    classes = list(range(n_classes or p.shape[1]))
    return {"n": int(len(p)), "accuracy": float(accuracy_score(y_true, y_pred)),
            "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "f1_weighted": float(f1_score(y_true, y_pred, average="weighted",
                                          zero_division=0)),
            "log_loss": float(sk_log_loss(y_true, labels=classes, **{proba: p})),
            "ece": expected_calibration_error(y_true, p)}


# -- the sets ------------------------------------------------------------------------------
def too_few(y, n_classes: int, min_per_class: int = MIN_EVAL_PER_CLASS) -> dict | None:
    """``{"status": "too_few", ...}`` unless every class has ``min_per_class`` examples."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)[:n_classes]
    if len(counts) and counts.min() >= min_per_class:
        return None
    return {"status": "too_few", "n": int(len(y)), "min": int(min_per_class),
            "per_class": [int(c) for c in counts]}


def score_set(predict_proba, X, y, n_classes: int, min_per_class: int = MIN_EVAL_PER_CLASS,
              **extra) -> dict:
    """The metrics of one set (``{"status": "ok", ...}``), or why it has none."""
    short = too_few(y, n_classes, min_per_class)
    if short is not None:
        return {**short, **extra}
    return {"status": "ok", **classification_metrics(y, predict_proba(X), n_classes), **extra}


def score_evaluation(predict_proba, X, y, n_classes: int) -> dict:
    """The evaluation set's entry: ``{"status": "ok", n, accuracy, f1_macro, f1_weighted,
    log_loss, ece, per_class}``, or ``{"status": "empty", "n": 0}``. A gold set is scored
    at any size; ``per_class`` says how much each number rests on."""
    y = np.asarray(y, dtype=np.int64)
    if not len(y):
        return {"status": "empty", "n": 0}
    per_class = np.bincount(y, minlength=n_classes)[:n_classes]
    return {"status": "ok", **classification_metrics(y, predict_proba(X), n_classes),
            "per_class": [int(c) for c in per_class]}


def input_digest(x: bytes) -> bytes:
    """A stable hash of an example's stored input (orders the hold-out choice)."""
    return hashlib.blake2b(x, digest_size=8).digest()


def choose_holdout(ids, labels, digests, share: float) -> np.ndarray:
    """The ids of a stratified hold-out: in each class, the ``floor(share · n_c)`` examples
    whose input digests come first (ties by id). Deterministic; a class keeps at least one
    training example whenever ``share < 1``."""
    ids, labels = np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if share <= 0 or len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(np.floor(share * len(members) + 1e-9))
        if k == 0:
            continue
        order = sorted(members, key=lambda i: (digests[i], ids[i]))
        chosen.extend(ids[order[:k]])
    return np.sort(np.asarray(chosen, dtype=np.int64))


def heldout_report(predict_proba, n_classes: int, trusted, holdout, holdout_share: float,
                   min_per_class: int = MIN_EVAL_PER_CLASS) -> dict:
    """``{"trusted": ..., "holdout_noisy": ...}`` for a model's ``predict_proba``.

    ``trusted`` is ``(X, y, in_training)`` and ``holdout`` is ``(X, y)``; ``X`` may be
    ``None`` for an empty set."""
    X_t, y_t, in_training = trusted
    report = {"trusted": score_set(predict_proba, X_t, y_t, n_classes, min_per_class,
                                   in_training=int(in_training))}
    if holdout_share <= 0:
        report["holdout_noisy"] = {"status": "off"}
    else:
        X_h, y_h = holdout
        report["holdout_noisy"] = score_set(predict_proba, X_h, y_h, n_classes, min_per_class)
    report["min_per_class"] = int(min_per_class)
    return report


# -- what the retrain job calls ------------------------------------------------------------
@dataclass
class EvalSets:
    """The rows a new model version is scored on, loaded with its training set."""

    share: float
    new_holdout: np.ndarray          # bootstrap ids that move to the hold-out with version 1
    holdout: tuple                   # (X, y) or (None, [])
    trusted: tuple                   # (X, y, ids) or (None, [], [])
    evaluation: tuple = (None, np.zeros(0, dtype=np.int64))   # (X, y): the gold set
    answers: int = 0                 # queries answered when the training set was read

    def training_rows(self, rows):
        """``rows`` (id, x, label, ...) without the examples that join the hold-out now."""
        if not len(self.new_holdout):
            return rows
        leaving = set(self.new_holdout.tolist())
        return [r for r in rows if r[0] not in leaving]


def _stack(rows, shape):
    if not rows:
        return None, np.zeros(0, dtype=np.int64)
    X = np.stack([np.frombuffer(r[1], np.float32).reshape(shape) for r in rows])
    return X, np.array([r[2] for r in rows], dtype=np.int64)


def load_sets(s, project: Project, training_rows, first: bool) -> EvalSets:
    """The evaluation set, the trusted set and the hold-out for a version trained on
    ``training_rows`` ``(id, x, label)``, and the answers given so far. For the first
    version (``first``) the hold-out is chosen from the training rows (the bootstrap set)
    and leaves them; later it is the ``holdout`` rows."""
    shape, share = tuple(project.input_shape), float(project.holdout_share or 0.0)
    new = np.zeros(0, dtype=np.int64)
    if first and share > 0:
        new = choose_holdout([r[0] for r in training_rows], [r[2] for r in training_rows],
                             [input_digest(r[1]) for r in training_rows], share)
    leaving = set(new.tolist())
    held = [*s.execute(select(Example.id, Example.x, Example.label).where(
        Example.project_id == project.id, Example.status == HOLDOUT_STATUS)
        .order_by(Example.id)).all(), *(r for r in training_rows if r[0] in leaving)]
    trusted = s.execute(select(Example.id, Example.x, Example.label).where(
        Example.project_id == project.id, Example.confirmed.is_(True),
        Example.status.notin_((REMOVED_STATUS, EVALUATION_STATUS))).order_by(Example.id)).all()
    gold = s.execute(select(Example.id, Example.x, Example.label).where(
        Example.project_id == project.id, Example.status == EVALUATION_STATUS)
        .order_by(Example.id)).all()
    answers = s.scalar(select(func.count(Query.id)).where(
        Query.project_id == project.id, Query.status == "answered"))
    X_t, y_t = _stack(trusted, shape)
    return EvalSets(share, new, _stack(held, shape),
                    (X_t, y_t, np.array([r[0] for r in trusted], dtype=np.int64)),
                    _stack(gold, shape), int(answers or 0))


def version_metrics(predict_proba, sets: EvalSets, train_ids, n_classes: int,
                    min_per_class: int = MIN_EVAL_PER_CLASS) -> dict:
    """The ``heldout`` entry of a new version's ``metrics``."""
    X_t, y_t, trusted_ids = sets.trusted
    in_training = int(np.isin(trusted_ids, np.asarray(train_ids)).sum())
    return heldout_report(predict_proba, n_classes, (X_t, y_t, in_training), sets.holdout,
                          sets.share, min_per_class)


def evaluation_metrics(predict_proba, sets: EvalSets, n_classes: int) -> dict:
    """The ``evaluation`` entry of a new version's ``metrics`` (the gold set's scores)."""
    X, y = sets.evaluation
    return score_evaluation(predict_proba, X, y, n_classes)


def mark_holdout(s, sets: EvalSets) -> int:
    """Move the first version's hold-out out of the training set (same transaction as the
    version, so a retrain that loses its lease moves nothing); returns how many moved."""
    if not len(sets.new_holdout):
        return 0
    moved = s.execute(update(Example).where(
        Example.id.in_(sets.new_holdout.tolist()), Example.status.in_(TRAINING))
        .values(status=HOLDOUT_STATUS, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    return int(moved.rowcount)


def latest_heldout(s, pid: int) -> dict | None:
    """The newest model version's ``heldout`` metrics (``None`` before the first model or
    for versions trained before they existed), with its version number."""
    row = s.execute(select(ModelVersion.version, ModelVersion.metrics)
                    .where(ModelVersion.project_id == pid)
                    .order_by(ModelVersion.version.desc()).limit(1)).first()
    if row is None or not (row[1] or {}).get("heldout"):
        return None
    return {"version": int(row[0]), **row[1]["heldout"]}


CURVE_METRICS = ("accuracy", "f1_macro", "log_loss", "ece")


def cleaning_curve(s, pid: int) -> list[dict]:
    """The cleaning curve: per model version, oldest first, the answers given when its
    training set was read and its scores on the evaluation set, ``[{version, answers,
    train_size, created_at, status, n, accuracy, f1_macro, log_loss, ece}]``. ``status`` is
    the evaluation entry's (``ok``, ``empty``) or ``missing`` for a version trained before
    versions were scored on it; the metrics are ``None`` unless ``ok``."""
    rows = s.execute(select(ModelVersion.version, ModelVersion.train_size,
                            ModelVersion.created_at, ModelVersion.metrics)
                     .where(ModelVersion.project_id == pid)
                     .order_by(ModelVersion.version)).all()
    curve = []
    for version, train_size, created_at, metrics in rows:
        metrics = metrics or {}
        entry = metrics.get("evaluation") or {"status": "missing", "n": 0}
        ok = entry.get("status") == "ok"
        curve.append({"version": int(version), "answers": metrics.get("answers"),
                      "train_size": int(train_size), "created_at": created_at,
                      "status": entry.get("status"), "n": int(entry.get("n", 0)),
                      **{k: (entry.get(k) if ok else None) for k in CURVE_METRICS}})
    return curve


def latest_evaluation(s, pid: int) -> dict | None:
    """The newest model version's ``evaluation`` entry with its version number and answers
    (``None`` before the first model or for a version trained before the entry existed)."""
    row = s.execute(select(ModelVersion.version, ModelVersion.metrics)
                    .where(ModelVersion.project_id == pid)
                    .order_by(ModelVersion.version.desc()).limit(1)).first()
    if row is None or not (row[1] or {}).get("evaluation"):
        return None
    return {"version": int(row[0]), "answers": row[1].get("answers"),
            **row[1]["evaluation"]}
