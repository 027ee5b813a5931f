"""Offline detectors of mislabelled examples, all on a ``ModelState``'s cached top-layer
quantities; ``get_detector(name, **options).score(state, trusted)`` returns one score per
example, higher = more suspicious."""
from .base import DETECTORS, Detector, NotEnoughTrusted, TrustedSet, get_detector
from . import gradient, simple, model_based, cleanlab_baseline  # noqa: F401  (registration)
from .cleanlab_baseline import cleanlab_available, cross_validated_probs
from .duplicates import DuplicatePair, DuplicateReport, near_duplicates
from .metrics import inspection_auc, inspection_curve, precision_at, ranking
from .training import fit_with_checkpoints

__all__ = ["DETECTORS", "Detector", "NotEnoughTrusted", "TrustedSet", "get_detector",
           "cleanlab_available", "cross_validated_probs", "DuplicatePair", "DuplicateReport",
           "near_duplicates", "inspection_auc", "inspection_curve", "precision_at", "ranking",
           "fit_with_checkpoints"]
