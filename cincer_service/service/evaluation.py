"""Held-out metrics of a model version: accuracy, weighted F1, log loss and calibration.

Every new model version is scored (by the ``retrain`` job, which already holds the model)
on two sets, each named for what it is:

* ``trusted``: the examples whose label a human gave or confirmed (``Example.confirmed``:
  the example or the counter-example of an answered query, an overview confirmation), with
  their current labels. These labels are the best the service has, but most of these
  examples are also in the training set of the version being scored, so the numbers are
  optimistic; the report says how many were trained on (``in_training``).
* ``holdout_noisy``: a fixed stratified hold-out. When the first model is trained, a
  deterministic share (``ProjectSpec.holdout_share``, off by default) of each class of the
  bootstrap set is moved to status ``holdout``: out of the training set, never screened,
  never offered as a counter-example, so every later version is scored on the same
  examples. Their labels are the ones they were ingested with, noise included: the
  numbers compare versions with each other; they are not the accuracy against the truth.
  The choice is by a hash of each example's input, so the same data gives the same
  hold-out whatever the ingestion order. Simplest honest option: the held-out examples
  cost training data (``holdout_share`` of the bootstrap) and nothing else.

A set is scored only when every class of the project has at least ``MIN_EVAL_PER_CLASS``
examples in it; otherwise its entry is ``{"status": "too_few", "n": k, "min": m, ...}``
(``n`` the set's size, ``min`` the per-class minimum). With ``holdout_share`` 0 the
hold-out entry is ``{"status": "off"}``.

The metrics are plain numpy (no scikit-learn or TensorFlow), checked against
scikit-learn's in the tests. ECE uses 10 equal-width confidence bins ``(i/10, (i+1)/10]``
(confidence 0 in the first bin): ``Σ_b (n_b / n) |accuracy_b − confidence_b|``, with the
top-class probability as confidence.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, update

from ..spec import MIN_EVAL_PER_CLASS
from .context import TRAINING
from .store import Example, ModelVersion, Project, utcnow

ECE_BINS = 10
HOLDOUT_STATUS = "holdout"        # example status of the fixed hold-out
REMOVED_STATUS = "removed"        # overview.REMOVED: out of every set


# -- metrics -------------------------------------------------------------------------------
def accuracy(y_true, y_pred) -> float:
    """Share of exact matches."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred))


def weighted_f1(y_true, y_pred) -> float:
    """F1 per class, averaged with the classes' supports in ``y_true`` as weights
    (scikit-learn's ``average="weighted"``; a class never predicted scores 0)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    total = 0.0
    for c in np.unique(y_true):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        f1 = 2.0 * tp / (2.0 * tp + fp + fn) if tp + fp + fn else 0.0
        total += f1 * np.sum(y_true == c)
    return float(total / len(y_true))


def log_loss(y_true, probabilities) -> float:
    """Mean cross-entropy ``−log p(y|x)``, probabilities clipped to ``[eps, 1 − eps]``
    (``eps`` the machine precision of their dtype, as scikit-learn does)."""
    p = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    eps = np.finfo(p.dtype).eps
    picked = np.clip(p[np.arange(len(p)), np.asarray(y_true, dtype=np.int64)], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


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


def classification_metrics(y_true, probabilities) -> dict:
    """``{n, accuracy, f1_weighted, log_loss, ece}`` of predicted probabilities."""
    p = np.asarray(probabilities, dtype=np.float64)
    y_pred = p.argmax(axis=1)
    return {"n": int(len(p)), "accuracy": accuracy(y_true, y_pred),
            "f1_weighted": weighted_f1(y_true, y_pred), "log_loss": log_loss(y_true, p),
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
    return {"status": "ok", **classification_metrics(y, predict_proba(X)), **extra}


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
    """The trusted set and the hold-out for a version trained on ``training_rows``
    ``(id, x, label)``. For the first version (``first``) the hold-out is chosen from the
    training rows (the bootstrap set) and leaves them; later it is the ``holdout`` rows."""
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
        Example.status != REMOVED_STATUS).order_by(Example.id)).all()
    X_t, y_t = _stack(trusted, shape)
    return EvalSets(share, new, _stack(held, shape),
                    (X_t, y_t, np.array([r[0] for r in trusted], dtype=np.int64)))


def version_metrics(predict_proba, sets: EvalSets, train_ids, n_classes: int,
                    min_per_class: int = MIN_EVAL_PER_CLASS) -> dict:
    """The ``heldout`` entry of a new version's ``metrics``."""
    X_t, y_t, trusted_ids = sets.trusted
    in_training = int(np.isin(trusted_ids, np.asarray(train_ids)).sum())
    return heldout_report(predict_proba, n_classes, (X_t, y_t, in_training), sets.holdout,
                          sets.share, min_per_class)


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
