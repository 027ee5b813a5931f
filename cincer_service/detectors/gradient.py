"""Gradient detectors: self-influence (top layer and all layers) and the clean-set family
GD, GC, IF, TracIn, each plain (mean over ``Z′``) and class-based (min over class means).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .. import autodiff, influence
from . import pairwise
from .base import Detector, register


@register("self_influence")
class SelfInfluence(Detector):
    """Cook's distance / self-influence ``g_iᵀ H⁻¹ g_i`` with the exact top-layer Hessian.

    Uses the state's cached damped Top-Fisher Cholesky factor (for softmax cross-entropy
    the Top Fisher is the top-layer Hessian).
    """

    def _score(self, state, trusted):
        return influence.self_influence(state.top_fisher_factor, state.residuals,
                                        state.h_aug).numpy()


@register("self_influence_cg")
class SelfInfluenceCG(Detector):
    """Self-influence over all layers: ``g_iᵀ (H + λI)⁻¹ g_i`` by conjugate gradients.

    ``H`` is the Hessian of the mean training loss, used only through forward-over-backward
    Hessian-vector products on a random subsample of ``hvp_sample`` known examples. One CG
    solve per scored example is costly, so by default only the ``max_examples`` examples
    with the highest top-layer self-influence are re-scored; they are ranked first, in
    all-layer order, and the rest keep their top-layer order below them (``max_examples=None``
    scores everyone with CG).
    """

    def __init__(self, max_examples: int | None = 64, hvp_sample: int = 1024,
                 damping: float = 1e-2, max_iter: int = 50, seed: int = 0, **kw):
        super().__init__(**kw)
        self.max_examples = max_examples
        self.hvp_sample = int(hvp_sample)
        self.damping = float(damping)
        self.max_iter = int(max_iter)
        self.seed = int(seed)

    def _score(self, state, trusted):
        top = influence.self_influence(state.top_fisher_factor, state.residuals,
                                       state.h_aug).numpy()
        n = state.n
        k = n if self.max_examples is None else min(int(self.max_examples), n)
        chosen = np.argsort(-top, kind="stable")[:k]
        rng = np.random.default_rng(self.seed)
        sample = rng.choice(n, size=min(self.hvp_sample, n), replace=False)
        X_s, y_s = state.X[sample], state.y[sample]
        clf = state.classifier
        matvec = tf.function(lambda v: autodiff.hvp(clf, X_s, y_s, v))
        grads = autodiff.loss_gradients(clf, state.X[chosen], state.y[chosen])
        refined = np.array([
            float(tf.reduce_sum(g * autodiff.conjugate_gradient(
                matvec, g, damping=self.damping, max_iter=self.max_iter)))
            for g in tf.unstack(grads)]) if k else np.zeros(0)
        if k == n:
            scores = np.empty(n)
            scores[chosen] = refined
            return scores
        scores = top.copy()
        floor = top[np.setdiff1d(np.arange(n), chosen)].max()
        ranks = np.argsort(np.argsort(refined, kind="stable"), kind="stable")
        scores[chosen] = floor + 1.0 + ranks  # refined block above the rest, CG order inside
        return scores


class CleanSetGradientDetector(Detector):
    """Seed 004's Alg. 1 (plain) and Alg. 2 (class-based) on top-layer gradients."""

    needs_trusted = True
    similarity = "dot"

    def _averaging(self, state, trusted):
        if self.class_based:
            return pairwise.class_mean_matrix(trusted.y, int(state.probs.shape[1]))
        return pairwise.mean_matrix(len(trusted))

    def _group_means(self, state, trusted):
        h_c, _ = trusted.features(state)
        return pairwise.group_mean_similarity(state.residuals, state.h_aug,
                                              trusted.residuals(state), h_c,
                                              self._averaging(state, trusted), self.similarity)

    def _score(self, state, trusted):
        return pairwise.suspicion(self._group_means(state, trusted))


@register("gd")
class GradDot(CleanSetGradientDetector):
    """Mean gradient dot product with the clean set, negated."""


@register("gc")
class GradCos(CleanSetGradientDetector):
    """Mean gradient cosine with the clean set, negated."""

    similarity = "cos"


@register("if")
class InfluenceFunction(CleanSetGradientDetector):
    """Mean top-layer influence ``g_iᵀ H⁻¹ g_j`` on the clean set, negated."""

    def _group_means(self, state, trusted):
        h_c, _ = trusted.features(state)
        return pairwise.group_mean_influence(state.top_fisher_factor, state.residuals,
                                             state.h_aug, trusted.residuals(state), h_c,
                                             self._averaging(state, trusted))


@register("tracin")
class TracIn(CleanSetGradientDetector):
    """``Σ_t η_t ⟨g_i^t, g_j^t⟩`` over top-layer gradients at training checkpoints.

    Parameters
    ----------
    checkpoints : list of full weight lists (``Classifier.get_weights()``) saved during
        training; features and residuals are recomputed under each.
    learning_rates : ``η_t`` per checkpoint (default: the classifier's learning rate).
    checkpoint_features : instead of ``checkpoints``, precomputed
        ``(ĥ, p, ĥ′, p′)`` per checkpoint for the known and trusted sets.
    """

    def __init__(self, checkpoints=None, learning_rates=None, checkpoint_features=None, **kw):
        super().__init__(**kw)
        self.checkpoints = checkpoints
        self.learning_rates = learning_rates
        self.checkpoint_features = checkpoint_features

    def _features(self, state, trusted):
        if self.checkpoint_features is not None:
            return list(self.checkpoint_features)
        if not self.checkpoints:
            raise ValueError("tracin needs training checkpoints: pass checkpoints=[weights, ...] "
                             "(see detectors.fit_with_checkpoints)")
        if trusted.X is None:
            raise ValueError("tracin needs the trusted inputs X to recompute features per checkpoint")
        clf = state.classifier
        current = clf.get_weights()
        out = []
        try:
            for weights in self.checkpoints:
                clf.set_weights(weights)
                h, p = clf.forward(state.X)
                h_c, p_c = clf.forward(trusted.X)
                out.append((influence.augment(h), p, influence.augment(h_c), p_c))
        finally:
            clf.set_weights(current)
        return out

    def _group_means(self, state, trusted):
        feats = self._features(state, trusted)
        rates = self.learning_rates
        if rates is None:
            rate = getattr(state.classifier, "learning_rate", 1.0)
            rates = [rate] * len(feats)
        A = self._averaging(state, trusted)
        total = 0.0
        for (h, p, h_c, p_c), eta in zip(feats, rates):
            total += eta * pairwise.group_mean_similarity(
                influence.residuals(p, state.y), h, influence.residuals(p_c, trusted.y), h_c, A)
        return total


def _class_based(base, name):
    cls = type(base.__name__ + "Class", (base,), {
        "class_based": True,
        "__doc__": f"Class-based {base.name}: ``−min_k`` of the mean similarity to clean class ``k``."})
    return register(name)(cls)


GradDotClass = _class_based(GradDot, "gd_class")
GradCosClass = _class_based(GradCos, "gc_class")
InfluenceFunctionClass = _class_based(InfluenceFunction, "if_class")
TracInClass = _class_based(TracIn, "tracin_class")
