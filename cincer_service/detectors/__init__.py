"""Offline detectors of mislabelled examples, all on a ``ModelState``'s cached top-layer
quantities; ``get_detector(name, **options).score(state, trusted)`` returns one score per
example, higher = more suspicious, and pair detectors (``near_duplicates``) report pairs.
``find_issues(state, names, ...)`` runs several and combines them into one ``AuditReport``."""
# registration of every detector module
from . import cleanlab_baseline, duplicates, gradient, model_based, simple  # noqa: F401
from .base import DETECTORS, Detector, NotEnoughTrusted, PairDetector, TrustedSet, get_detector
from .cleanlab_baseline import cleanlab_available, cross_validated_probs
from .duplicates import DuplicatePair, DuplicateReport, near_duplicates
from .finder import AuditReport, Suspect, find_issues, mean_rank
from .metrics import inspection_auc, inspection_curve, precision_at, ranking
from .training import fit_with_checkpoints

__all__ = ["DETECTORS", "Detector", "PairDetector", "NotEnoughTrusted", "TrustedSet",
           "get_detector", "cleanlab_available", "cross_validated_probs", "DuplicatePair",
           "DuplicateReport", "near_duplicates", "AuditReport", "Suspect", "find_issues",
           "mean_rank", "inspection_auc", "inspection_curve", "precision_at", "ranking",
           "fit_with_checkpoints"]
