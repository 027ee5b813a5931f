"""Training in segments so TracIn has checkpoints."""
from __future__ import annotations

import numpy as np


def fit_with_checkpoints(classifier, X, y, segments: int = 10,
                         epochs_per_segment: int = 10) -> list[list[np.ndarray]]:
    """Train ``segments × epochs_per_segment`` epochs, snapshotting weights after each segment.

    The first segment trains from scratch (``Classifier.fit(mode="scratch")``, which may stop
    early at its target accuracy), the others continue warm. Returns the weight lists, the
    last one being the final model.
    """
    if segments < 1 or epochs_per_segment < 1:
        raise ValueError("segments and epochs_per_segment must be positive")
    checkpoints = []
    for s in range(segments):
        classifier.fit(X, y, mode="scratch" if s == 0 else "warm", epochs=epochs_per_segment)
        checkpoints.append(classifier.get_weights())
    return checkpoints
