"""Output and feature baselines: margin, De-Confusion mismatch, EUC/COS/DOT feature similarity."""
from __future__ import annotations

import tensorflow as tf

from .. import influence
from . import pairwise
from .base import Detector, register


@register("margin")
class Margin(Detector):
    """CINCER margin ``p(ŷ|x) − p(ỹ|x)`` (0 when the label is the prediction)."""

    def _score(self, state, trusted):
        return influence.margin(state.probs, state.y).numpy()


@register("mismatch")
class Mismatch(Detector):
    """De-Confusion mismatch score ``(max_j p_j + 1 − p_label) / 2``."""

    def _score(self, state, trusted):
        p = state.probs
        p_label = tf.gather(p, tf.constant(state.y), batch_dims=1)
        return ((tf.reduce_max(p, axis=1) + 1.0 - p_label) / 2.0).numpy()


class FeatureBaseline(Detector):
    """Seed 004's feature baselines: Alg. 1 with penultimate features ``h`` in place of
    gradients (label-free, so expected to be weak); score = −mean similarity to ``Z′``."""

    needs_trusted = True
    kind = "dot"

    def _score(self, state, trusted):
        h_c, _ = trusted.features(state)
        means = pairwise.group_mean_features(state.h_aug[:, :-1], h_c[:, :-1],
                                             pairwise.mean_matrix(len(trusted)), self.kind)
        return pairwise.suspicion(means)


@register("euc")
class EuclideanFeatures(FeatureBaseline):
    kind = "euc"


@register("cos")
class CosineFeatures(FeatureBaseline):
    kind = "cos"


@register("dot")
class DotFeatures(FeatureBaseline):
    kind = "dot"
