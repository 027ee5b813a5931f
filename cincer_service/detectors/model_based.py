"""Model-based error detection (Algorithm 2 of the manuscript attached to seed 004).

A fresh model of the same family is trained on the clean set only, the clean set grows by
entropy-based active learning (the most uncertain examples are cleaned by an annotator),
and the round whose model best detects planted errors in a small validation set is kept.
Examples are scored by that model's loss on their given label.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..models import Classifier
from .base import Detector, NotEnoughTrusted, register


def detection_accuracy(probs, labels, is_error, top_share: float = 0.5) -> float:
    """Share of true errors among the ``top_share`` highest-loss examples (``errDetectAcc``)."""
    loss = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))
    k = max(1, int(round(top_share * len(labels))))
    return float(np.mean(is_error[np.argsort(-loss, kind="stable")[:k]]))


def entropy(probs) -> np.ndarray:
    """Predictive entropy ``−Σ_j p_j log p_j`` per example."""
    p = np.clip(probs, 1e-12, 1.0)
    return -np.sum(p * np.log(p), axis=1)


@register("model_based")
class ModelBased(Detector):
    """Seed 004 Alg. 2: clean-set model grown by active learning, scored by the loss.

    Parameters
    ----------
    rounds : training rounds ``T`` (each trains ``epochs_per_round`` epochs, continuing
        from the previous round).
    per_round : examples cleaned per round ``r``, capped at ``max_round_share`` of the
        audited set so small data sets are not simply relabelled by the annotator.
    validation_size : size of ``Z⁺``, split off the trusted set (at most a third of it);
        ``validation_error_rate`` of its labels are corrupted to random other classes.
    annotator : ``f(indices) -> labels`` for the selected known examples (a simulated
        or human oracle). Without one, the selection is accepted only where the model
        predicts the stored label with probability ≥ ``auto_confidence`` (the manuscript's
        suggestion for removing the human), and those examples keep their stored label.
    """

    needs_trusted = True

    def __init__(self, rounds: int = 5, epochs_per_round: int = 7, per_round: int = 100,
                 max_round_share: float = 0.03, validation_size: int = 200,
                 validation_error_rate: float = 0.5,
                 annotator: Callable[[np.ndarray], np.ndarray] | None = None,
                 auto_confidence: float = 0.9, seed: int = 0, **kw):
        super().__init__(**kw)
        self.rounds = int(rounds)
        self.epochs_per_round = int(epochs_per_round)
        self.per_round = int(per_round)
        self.max_round_share = float(max_round_share)
        self.validation_size = int(validation_size)
        self.validation_error_rate = float(validation_error_rate)
        self.annotator = annotator
        self.auto_confidence = float(auto_confidence)
        self.seed = int(seed)
        self.history: list[dict] = []

    def _validation_split(self, trusted, n_classes, rng):
        m = len(trusted)
        n_val = min(self.validation_size, m // 3)
        if n_val < 2 or trusted.X is None:
            raise NotEnoughTrusted("model_based needs trusted inputs X and at least 6 trusted "
                                   "examples (a third is held out as the planted-error validation set)")
        order = rng.permutation(m)
        val, train = order[:n_val], order[n_val:]
        y_val = trusted.y[val].copy()
        flipped = rng.choice(n_val, size=max(1, int(round(self.validation_error_rate * n_val))),
                             replace=False)
        y_val[flipped] = (y_val[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
        return train, val, y_val, y_val != trusted.y[val]

    def _score(self, state, trusted):
        base = state.classifier
        n_classes = int(state.probs.shape[1])
        rng = np.random.default_rng(self.seed)
        train, val, y_val, val_is_error = self._validation_split(trusted, n_classes, rng)
        X_val = trusted.X[val]
        X_pool, y_pool = trusted.X[train], trusted.y[train]
        clf = Classifier(base.kind, base.input_shape, n_classes, seed=self.seed + 7919,
                         learning_rate=base.learning_rate, batch_size=base.batch_size,
                         schedule="accuracy")     # its own selection uses a validation split
        per_round = max(1, min(self.per_round, math.ceil(self.max_round_share * state.n)))
        added = np.zeros(state.n, dtype=bool)
        best_accuracy, best_weights = -1.0, None
        self.history = []
        for t in range(self.rounds):
            clf.fit(X_pool, y_pool, mode="scratch" if t == 0 else "warm",
                    epochs=self.epochs_per_round)
            accuracy = detection_accuracy(clf.predict_proba(X_val), y_val, val_is_error)
            self.history.append({"round": t, "clean_size": len(y_pool), "detection_accuracy": accuracy})
            if accuracy > best_accuracy:
                best_accuracy, best_weights = accuracy, clf.get_weights()
            if t == self.rounds - 1:
                break
            candidates = np.flatnonzero(~added)
            if len(candidates) == 0:
                continue
            probs = clf.predict_proba(state.X[candidates])
            top = np.argsort(-entropy(probs), kind="stable")[:per_round]
            chosen = candidates[top]
            added[chosen] = True
            if self.annotator is not None:
                labels = np.asarray(self.annotator(chosen), dtype=np.int64)
                keep = labels >= 0
            else:
                p_chosen = probs[top]
                labels = state.y[chosen]
                keep = (p_chosen.argmax(axis=1) == labels) & (p_chosen.max(axis=1) >= self.auto_confidence)
            X_pool = np.concatenate([X_pool, state.X[chosen[keep]]])
            y_pool = np.concatenate([y_pool, labels[keep]])
        clf.set_weights(best_weights)
        p = clf.predict_proba(state.X)
        return -np.log(np.clip(p[np.arange(state.n), state.y], 1e-12, 1.0))
