"""Counter-example strategies: which known example best supports the model's suspicion.

Each strategy is a small class registered by name; the public ``rank``/``select`` live
on the base class (pertinence filter, ranking), each strategy only implements
``_scores`` over the pertinent candidates. Higher score = better counter-example.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from . import autodiff, influence
from .registry import Registry
from .state import ColumnarState, ModelState

STRATEGIES = Registry("counter-example strategy")
register = STRATEGIES.register


def get_strategy(name: str, **options) -> "CounterexampleStrategy":
    """Instantiate a registered strategy by name."""
    return STRATEGIES.create(name, **options)


class NoCandidates(LookupError):
    """No known example carries the label the model predicts for the suspicious one."""


class Ranking:
    """Pertinent candidates (indices into the known set) ordered best first.

    The order is made on first use of ``indices`` or ``scores``: ``best`` (an argmax),
    ``top(k)`` (a partial sort) and ``unordered_scores`` need no sort of every candidate.
    """

    def __init__(self, prediction: int, indices, scores, ordered: bool = True):
        self.prediction = prediction
        self._indices, self._scores = np.asarray(indices), np.asarray(scores)
        self._ordered = ordered

    def _order(self) -> None:
        if not self._ordered:
            order = np.argsort(-self._scores, kind="stable")
            self._indices, self._scores, self._ordered = \
                self._indices[order], self._scores[order], True

    @property
    def indices(self) -> np.ndarray:
        self._order()
        return self._indices

    @property
    def scores(self) -> np.ndarray:
        self._order()
        return self._scores

    @property
    def unordered_scores(self) -> np.ndarray:
        """Every candidate's score, in no particular order."""
        return self._scores

    @property
    def best(self) -> int:
        if self._ordered:
            return int(self._indices[0])
        return int(self._indices[int(np.argmax(self._scores))])

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, scores)`` of the ``k`` best, best first."""
        if self._ordered or k >= len(self._scores):
            return self.indices[:k], self.scores[:k]
        part = np.argpartition(-self._scores, k)[:k]
        # ties broken by position, as the full stable sort does
        part = part[np.lexsort((part, -self._scores[part]))]
        return self._indices[part], self._scores[part]


class CounterexampleStrategy:
    """Base class: restricts candidates to ``y_k = ŷ_t`` and ranks them by ``_scores``."""

    name = "base"

    def rank(self, state: ModelState, x, label: int, exclude=None) -> Ranking:
        """Rank the pertinent known examples for the suspicious example ``(x, label)``.

        ``exclude`` is an optional boolean mask over the known set (e.g. examples whose
        label a human already confirmed). Raises ``NoCandidates`` when no remaining
        known example has the predicted label.
        """
        prediction = int(np.argmax(state.query_arrays(x)[1]))
        candidates = state.candidates(prediction, exclude)
        if len(candidates) == 0:
            raise NoCandidates(f"no known example left with label {prediction}, "
                               "the class the model predicts")
        if isinstance(state, ColumnarState) and not state.small_top:
            # the fused float32 scan of the predicted class's partition (TopFisher only)
            scan = getattr(self, "_partition_scores", None)
            if scan is not None:
                return Ranking(prediction, candidates,
                               scan(state, x, int(label), prediction, candidates), ordered=False)
        h_t, p_t = state.query(x)                   # memoised: no second forward pass
        scores = np.asarray(self._scores(state, x, int(label), h_t, p_t, candidates))
        order = np.argsort(-scores, kind="stable")
        return Ranking(prediction, candidates[order], scores[order])

    def select(self, state: ModelState, x, label: int, exclude=None) -> int | None:
        """Index of the best counter-example in the known set, or ``None`` if there is none."""
        try:
            return self.rank(state, x, label, exclude).best
        except NoCandidates:
            return None

    def _scores(self, state, x, label, h_t, p_t, candidates):  # pragma: no cover
        raise NotImplementedError


@register("top_fisher")
class TopFisher(CounterexampleStrategy):
    """``−g_tᵀ F⁻¹ g_k`` with ``F`` the Top Fisher: one cached solve, then a pass over ``(r, ĥ)``.

    Small top layers (``ModelState.small_top``) run the same algebra in float64 numpy; a
    large ``ColumnarState`` solves for ``V`` in float64 and scans only the predicted class's
    partition in float32 (``ColumnarState.partition_scores``).
    """

    def _partition_scores(self, state, x, label, prediction, candidates):
        h_np, p_np = state.query_arrays(x)
        L = state.top_fisher_factor_np
        V = influence.query_vector_np(L, influence.residuals_np(p_np[None], [label])[0], h_np)
        return state.partition_scores(V, prediction, candidates)

    def _scores(self, state, x, label, h_t, p_t, candidates):
        if state.small_top:                 # numpy: microseconds, no per-op dispatch
            h_np, p_np = state.query_arrays(x)
            L = state.top_fisher_factor_np
            h_aug, _ = state.arrays
            with influence.single_threaded_blas:
                V = influence.query_vector_np(L, influence.residuals_np(p_np[None], [label])[0], h_np)
                return influence.counterexample_scores_np(
                    V, state.residuals_np[candidates], h_aug[candidates])
        r_t = influence.residuals(p_t[None], [label])[0]
        V = influence.query_vector(state.top_fisher_factor, r_t, h_t)
        idx = tf.constant(candidates)
        return influence.counterexample_scores(
            V, tf.gather(state.residuals, idx), tf.gather(state.h_aug, idx)).numpy()


class _AllParameters(CounterexampleStrategy):
    """Shared plumbing for strategies over all parameters (small models)."""

    def __init__(self, max_parameters: int = 20_000):
        self.max_parameters = max_parameters

    def _check_size(self, state):
        n = state.classifier.n_params
        if n > self.max_parameters:
            raise ValueError(f"{self.name} needs per-parameter work on {n} parameters; "
                             f"the limit is {self.max_parameters} (use top_fisher)")

    def _known_gradients(self, state):
        return state.cached("loss_gradients", lambda: autodiff.loss_gradients(
            state.classifier, state.X, state.y))

    def _query_gradient(self, state, x, label):
        return autodiff.loss_gradient(state.classifier, x, label)


@register("full_fisher")
class FullFisher(_AllParameters):
    """``−g_tᵀ F⁻¹ g_k`` with the true Fisher over all parameters (refuses large models)."""

    def __init__(self, max_parameters: int = 10_000):
        super().__init__(max_parameters)

    def _factor(self, state):
        def compute():
            J = state.cached("log_prob_jacobian",
                             lambda: autodiff.log_prob_jacobian(state.classifier, state.X))
            weighted = J * tf.sqrt(state.probs)[:, :, None]
            flat = tf.reshape(weighted, (-1, J.shape[2]))
            F = tf.matmul(flat, flat, transpose_a=True) / state.n
            return influence.fisher_factor(F + state.damping * tf.eye(J.shape[2], dtype=tf.float64))
        return state.cached("full_fisher_factor", compute)

    def _scores(self, state, x, label, h_t, p_t, candidates):
        self._check_size(state)
        L = self._factor(state)
        v = influence.fisher_solve(L, self._query_gradient(state, x, label))
        return -tf.linalg.matvec(tf.gather(self._known_gradients(state), candidates), v).numpy()


@register("practical_fisher")
class PracticalFisher(_AllParameters):
    """``−g_tᵀ g_k`` over all parameters (``F = I``)."""

    def _scores(self, state, x, label, h_t, p_t, candidates):
        self._check_size(state)
        g_t = self._query_gradient(state, x, label)
        return -tf.linalg.matvec(tf.gather(self._known_gradients(state), candidates), g_t).numpy()


@register("influence")
class InfluenceFunction(_AllParameters):
    """``−g_tᵀ H⁻¹ g_k`` with the training-loss Hessian over all parameters.

    ``H⁻¹ g_t`` is estimated iteratively (``solver="cg"`` or ``"lissa"``) from
    forward-over-backward Hessian-vector products; the Hessian is never formed.
    """

    def __init__(self, solver: str = "cg", damping: float = 1e-2, max_iter: int = 100,
                 max_parameters: int = 200_000):
        super().__init__(max_parameters)
        if solver not in ("cg", "lissa"):
            raise ValueError("influence solver must be 'cg' or 'lissa'")
        self.solver, self.damping, self.max_iter = solver, damping, max_iter

    def _scores(self, state, x, label, h_t, p_t, candidates):
        self._check_size(state)
        g_t = self._query_gradient(state, x, label)
        # One graph per model state: eager forward-over-backward retraces its ops on
        # every product (~30 ms each on a small model, ~1 s per counter-example).
        matvec = state.cached("hvp", lambda: tf.function(
            lambda v: autodiff.hvp(state.classifier, state.X, state.y, v)))
        if self.solver == "cg":
            s = autodiff.conjugate_gradient(matvec, g_t, self.damping, self.max_iter)
        else:
            s = autodiff.lissa(matvec, g_t, self.damping, depth=self.max_iter)
        return -tf.linalg.matvec(tf.gather(self._known_gradients(state), candidates), s).numpy()


@register("nearest")
class NearestNeighbour(CounterexampleStrategy):
    """The pertinent known example closest to ``x`` in input space."""

    def _scores(self, state, x, label, h_t, p_t, candidates):
        diff = state.X[candidates].reshape(len(candidates), -1) - np.asarray(x).reshape(1, -1)
        return -np.einsum("ij,ij->i", diff, diff)


@register("influence_lissa")
class InfluenceLissa(InfluenceFunction):
    """The influence-function strategy with the LiSSA inverse-HVP estimator."""

    def __init__(self, damping: float = 1e-2, max_iter: int = 100, max_parameters: int = 200_000):
        super().__init__("lissa", damping, max_iter, max_parameters)
