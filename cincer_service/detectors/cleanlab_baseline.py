"""cleanlab's ``find_label_issues`` ranking on cross-validated probabilities (comparison only).

cleanlab is an optional extra (``pip install 'cincer-service[bench]'``), imported lazily.
"""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from ..models import Classifier
from .base import Detector, register


def cross_validated_probs(config: dict, X, y, folds: int = 5, seed: int = 0,
                          max_epochs: int | None = None) -> np.ndarray:
    """Out-of-sample probabilities: each fold predicted by a model of ``config`` trained on the others."""
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=config["n_classes"])
    splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed)
                if counts[counts > 0].min() >= folds else KFold(folds, shuffle=True, random_state=seed))
    probs = np.zeros((len(y), config["n_classes"]))
    for fold, (train, held_out) in enumerate(splitter.split(X, y)):
        options = dict(config, seed=config["seed"] + 1000 * (fold + 1), schedule="accuracy")
        if max_epochs is not None:
            options["max_epochs"] = max_epochs
        clf = Classifier(**options)
        clf.fit(X[train], y[train])
        probs[held_out] = clf.predict_proba(X[held_out])
    return probs


def _require_cleanlab():
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        raise RuntimeError("the cleanlab baseline needs cleanlab: "
                           "pip install 'cincer-service[bench]'") from None
    return find_label_issues, get_label_quality_scores


def cleanlab_available() -> bool:
    try:
        _require_cleanlab()
    except RuntimeError:
        return False
    return True


@register("cleanlab")
class CleanlabRanking(Detector):
    """cleanlab's flagged issues first (in its self-confidence order), then everyone else
    by increasing self-confidence; probabilities are ``folds``-fold cross-validated."""

    def __init__(self, folds: int = 5, seed: int = 0, max_epochs: int | None = None, **kw):
        super().__init__(**kw)
        self.folds = int(folds)
        self.seed = int(seed)
        self.max_epochs = max_epochs

    def _score(self, state, trusted):
        find_label_issues, get_label_quality_scores = _require_cleanlab()
        probs = cross_validated_probs(state.classifier.config(), state.X, state.y,
                                      self.folds, self.seed, self.max_epochs)
        quality = get_label_quality_scores(state.y, probs, method="self_confidence")
        issues = find_label_issues(state.y, probs, return_indices_ranked_by="self_confidence")
        scores = -np.asarray(quality, dtype=np.float64)   # in [-1, 0]
        scores[np.asarray(issues, dtype=np.int64)] += 2.0  # flagged issues rank above the rest
        return scores
