"""The consensus of a crowd: Dawid–Skene with the model as one more voter.

Each item (one side of a query) has an unknown true class ``k``. Annotator ``a`` answers
class ``l`` with probability ``θ_a[k, l]`` (their confusion matrix); the classes have a
prior ``π``. Dawid and Skene's posterior for an item with answers ``{(a, l_a)}`` is

    P(k | answers) ∝ π_k · Π_a θ_a[k, l_a]^{w_a}

with ``w_a = 1`` (``FLAGGED_WEIGHT`` for a flagged annotator). The classifier votes too
(CROWDLAB's idea: the model is a voter whose weight follows how well it agrees with the
consensus). Online (``Crowd``) it is one voter per query side (example, counter-example)
and confidence bin of its top probability (``MODEL_BINS``), each voting its predicted
class ``m`` with a confusion matrix learned like an annotator's: the factor is
``θ_{side,bin}[k, m]^MODEL_VOTE_WEIGHT``. A classifier trained on noisy labels is neither
calibrated nor equally reliable on both sides of a query (on the service's queries it was
over-confident on the suspicious examples and under-confident on the counter-examples), so
its reliability is learned where it votes instead of read off its probabilities. With
``MODEL_BINS`` empty it is one soft voter, ``(Σ_l θ_m[k, l] p_l)^MODEL_VOTE_WEIGHT``; the
batch EM (``dawid_skene``) keeps that soft vote, to the power 1.

Every ``θ`` is the row-normalised sum of soft counts ``N_a[k, l] = Σ_items P(k | item)
[a answered l]`` and a pseudo-count of ``CROWD_SHRINK_STRENGTH`` answers at the voter's own
overall accuracy (``(trace N_a + s·a₀) / (ΣN_a + s)``, the prior ``CROWD_PRIOR_*`` before it
has answers), errors spread evenly: a hierarchical shrinkage toward the one-coin model that
keeps a ten-class matrix sane after a few answers. The batch EM (``dawid_skene``) keeps the
plain Dirichlet prior. The online update (``Crowd``)
is incremental EM: when an item gets an answer, its posterior is recomputed with the current
matrices, and the counts of everyone who voted on it move by ``new − old`` posterior, so the
counts always equal the sum over items of their latest posterior (the invariant the tests
check). ``dawid_skene`` is the batch EM over a whole answer table. Gold answers add a one-hot
count at the known class.

Also here: Krippendorff's alpha (nominal) over the items with at least two answers.
Pure numpy; no storage.
"""
from __future__ import annotations

import numpy as np

from .catalog import (
    CROWD_PRIOR_ACCURACY,
    CROWD_PRIOR_STRENGTH,
    CROWD_SHRINK_STRENGTH,
    FLAGGED_WEIGHT,
    MODEL_BINS,
    MODEL_PRIOR_ACCURACY,
    MODEL_PRIOR_STRENGTH,
    MODEL_VOTE_WEIGHT,
)

MODEL = "__model__"          # the key of the classifier's (soft vote) confusion counts


def is_model(key) -> bool:
    """Whether ``key`` is one of the classifier's voters (``MODEL`` or a binned one)."""
    return isinstance(key, str) and key.startswith(MODEL)


def model_key(probabilities, side: str | None = None):
    """The voter that stands for the classifier on an item: with ``MODEL_BINS``, one per
    ``side`` and bin of the top probability (``"__model__example:3"``); without, ``MODEL``
    (the soft vote)."""
    bins = MODEL_BINS
    if not bins:
        return MODEL
    b = int(np.searchsorted(bins, float(np.max(probabilities)), side="right"))
    return f"{MODEL}{side or ''}:{b}"


def pseudo_counts(c: int, accuracy: float, strength: float) -> np.ndarray:
    """A ``c × c`` Dirichlet pseudo-count: ``strength`` answers per true class, right with
    ``accuracy``, the errors spread evenly."""
    off = strength * (1.0 - accuracy) / max(c - 1, 1)
    counts = np.full((c, c), off)
    np.fill_diagonal(counts, strength * accuracy)
    return counts


def confusion(counts: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The row-normalised confusion matrix of soft ``counts`` plus ``prior``."""
    total = counts + prior
    return total / total.sum(axis=1, keepdims=True)


def expected_accuracy(counts: np.ndarray) -> float | None:
    """The share of an annotator's answers that were right, under the posteriors behind
    ``counts`` (None without answers)."""
    total = float(counts.sum())
    return None if total <= 0 else float(np.trace(counts)) / total


class Crowd:
    """The online consensus state of one project.

    ``class_counts`` (c,) are the soft counts of true classes, ``counts[a]`` (c, c) each
    annotator's soft confusion counts and ``counts[model_key(...)]`` the classifier's
    voters'; ``flagged`` the annotators whose votes are down-weighted."""

    def __init__(self, c: int, class_counts=None, counts: dict | None = None,
                 flagged=()):
        self.c = int(c)
        self.class_counts = (np.zeros(c) if class_counts is None
                             else np.asarray(class_counts, dtype=float).copy())
        self.counts = {k: np.asarray(v, dtype=float).copy() for k, v in (counts or {}).items()}
        self.flagged = set(flagged)

    # -- the matrices -------------------------------------------------------------------
    def counts_of(self, key) -> np.ndarray:
        if key not in self.counts:
            self.counts[key] = np.zeros((self.c, self.c))
        return self.counts[key]

    def theta(self, key) -> np.ndarray:
        """Annotator ``key``'s (or a model voter's) current confusion matrix: its counts
        plus a pseudo-count of ``CROWD_SHRINK_STRENGTH`` answers at its own overall
        accuracy (the Dirichlet prior's accuracy before it has answers), errors spread
        evenly."""
        counts = self.counts.get(key, np.zeros((self.c, self.c)))
        accuracy, strength = (MODEL_PRIOR_ACCURACY, MODEL_PRIOR_STRENGTH) if is_model(key) \
            else (CROWD_PRIOR_ACCURACY, CROWD_PRIOR_STRENGTH)
        own = (np.trace(counts) + strength * accuracy) / (counts.sum() + strength)
        return confusion(counts, pseudo_counts(self.c, own, CROWD_SHRINK_STRENGTH))

    def class_prior(self) -> np.ndarray:
        total = self.class_counts + 1.0
        return total / total.sum()

    # -- one item -----------------------------------------------------------------------
    def model_vote(self, probabilities, side=None) -> np.ndarray:
        """The classifier's likelihood factor over the true classes (before the power
        ``MODEL_VOTE_WEIGHT``): its binned voter's column at the predicted class, or the
        soft vote ``θ_m @ p``."""
        p = np.asarray(probabilities, dtype=float)
        key = model_key(p, side)
        return self.theta(key) @ p if key == MODEL else self.theta(key)[:, int(np.argmax(p))]

    def log_terms(self, votes, probabilities, side=None
                  ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The prior-and-model log term and one log term per vote."""
        base = np.log(self.class_prior())
        if probabilities is not None:
            base = base + MODEL_VOTE_WEIGHT * np.log(np.maximum(
                self.model_vote(probabilities, side), 1e-300))
        terms = []
        for key, label in votes:
            weight = FLAGGED_WEIGHT if key in self.flagged else 1.0
            terms.append(weight * np.log(self.theta(key)[:, int(label)]))
        return base, terms

    def posterior(self, votes, probabilities=None, side=None) -> np.ndarray:
        """``P(k | votes, model)`` for one item; ``votes`` are ``(annotator, label)``,
        ``side`` the query side it is (``"example"``, ``"counterexample"`` or None)."""
        base, terms = self.log_terms(votes, probabilities, side)
        return _softmax(base + sum(terms, np.zeros(self.c)))

    def leave_one_out(self, votes, probabilities=None, side=None) -> list[float]:
        """For each vote, how probable its label is under everyone else's votes and the
        model (its agreement with the consensus, without its own say)."""
        base, terms = self.log_terms(votes, probabilities, side)
        total = base + sum(terms, np.zeros(self.c))
        return [float(_softmax(total - term)[int(label)])
                for term, (_, label) in zip(terms, votes)]

    def update_item(self, votes, probabilities=None, old_posterior=None,
                    old_votes=(), side=None) -> np.ndarray:
        """Recompute an item's posterior after new answers and move the counts by the
        change (incremental EM): ``old_votes`` were counted with ``old_posterior`` (None:
        the item was never counted, the model's vote included), the others are new.
        Returns the new posterior."""
        new = self.posterior(votes, probabilities, side)
        old = np.zeros(self.c) if old_posterior is None else np.asarray(old_posterior, float)
        counted = {key for key, _ in old_votes}
        for key, label in votes:
            self.counts_of(key)[:, int(label)] += new - (old if key in counted else 0.0)
        if probabilities is not None:
            p = np.asarray(probabilities, float)
            key = model_key(p, side)
            if key == MODEL:
                self.counts_of(MODEL)[:] += np.outer(new - old, p)
            else:
                self.counts_of(key)[:, int(np.argmax(p))] += new - old
        self.class_counts += new - old
        return new

    def add_gold(self, key, truth: int, label: int) -> None:
        """An answer on a gold item: the true class is known."""
        self.counts_of(key)[int(truth), int(label)] += 1.0

    # -- storage ------------------------------------------------------------------------
    def to_json(self) -> dict:
        """The project-wide state: class counts, the soft voter's counts (``model``) and
        the binned voters' (``models``, by key)."""
        return {"c": self.c, "class_counts": self.class_counts.tolist(),
                "model": self.counts_of(MODEL).tolist(),
                "models": {k: v.tolist() for k, v in self.counts.items()
                           if is_model(k) and k != MODEL}}


def _softmax(log: np.ndarray) -> np.ndarray:
    z = np.exp(log - log.max())
    return z / z.sum()


def majority(labels: np.ndarray, c: int) -> np.ndarray:
    """Majority vote per item of an ``items × annotators`` table (-1: no answer); ties go
    to the smallest class."""
    votes = np.zeros((labels.shape[0], c))
    for j in range(labels.shape[1]):
        answered = labels[:, j] >= 0
        votes[np.flatnonzero(answered), labels[answered, j]] += 1
    return votes.argmax(axis=1)


def dawid_skene(labels: np.ndarray, c: int, probabilities: np.ndarray | None = None,
                iterations: int = 50, tol: float = 1e-7, prior: bool = True) -> dict:
    """Batch Dawid–Skene EM over an ``items × annotators`` table of class indices (-1: no
    answer), optionally with the model's ``items × c`` probabilities as one more voter.

    Starts from the majority vote; the M-step adds the ``CROWD_PRIOR_*`` pseudo-counts
    when ``prior`` (MAP), or none (plain maximum likelihood, as crowd-kit's). Returns
    ``posterior`` (items × c), ``labels``, ``confusions`` (annotators × c × c),
    ``class_prior`` and the number of ``iterations`` run."""
    labels = np.asarray(labels)
    n, m = labels.shape
    onehot = np.zeros((n, m, c))
    ii, jj = np.nonzero(labels >= 0)
    onehot[ii, jj, labels[ii, jj]] = 1.0
    post = np.zeros((n, c))
    post[np.arange(n), majority(labels, c)] = 1.0
    ann_prior = pseudo_counts(c, CROWD_PRIOR_ACCURACY, CROWD_PRIOR_STRENGTH) if prior \
        else np.full((c, c), 1e-10)
    model_prior = pseudo_counts(c, MODEL_PRIOR_ACCURACY, MODEL_PRIOR_STRENGTH) if prior \
        else np.full((c, c), 1e-10)
    done = 0
    for step in range(1, iterations + 1):
        done = step
        counts = np.einsum("ik,ijl->jkl", post, onehot)           # annotators × c × c
        theta = (counts + ann_prior) / (counts + ann_prior).sum(axis=2, keepdims=True)
        pi = (post.sum(axis=0) + (1.0 if prior else 1e-10))
        pi = pi / pi.sum()
        log = np.log(pi)[None, :] + np.einsum("ijl,jkl->ik", onehot, np.log(theta))
        if probabilities is not None:
            model_counts = post.T @ probabilities
            theta_m = (model_counts + model_prior) / (model_counts + model_prior).sum(
                axis=1, keepdims=True)
            log = log + np.log(np.maximum(probabilities @ theta_m.T, 1e-300))
        new = np.exp(log - log.max(axis=1, keepdims=True))
        new /= new.sum(axis=1, keepdims=True)
        change = float(np.abs(new - post).max())
        post = new
        if change < tol:
            break
    return {"posterior": post, "labels": post.argmax(axis=1), "confusions": theta,
            "class_prior": pi, "iterations": done}


def krippendorff_alpha(items) -> float | None:
    """Krippendorff's alpha for nominal data over ``items``, each a list of the classes its
    annotators gave (items with fewer than two values are not pairable and are left out).

    From the coincidence matrix ``o[c, k] = Σ_u Σ_{i≠j} [v_i = c][v_j = k] / (m_u − 1)``
    with marginals ``n_c``: ``α = 1 − (n − 1) Σ_{c≠k} o[c, k] / Σ_{c≠k} n_c n_k``. None when
    fewer than two pairable values or no expected disagreement."""
    pairable = [list(map(int, v)) for v in items if len(v) >= 2]
    if not pairable:
        return None
    classes = sorted({x for v in pairable for x in v})
    index = {x: i for i, x in enumerate(classes)}
    o = np.zeros((len(classes), len(classes)))
    for values in pairable:
        counts = np.zeros(len(classes))
        for x in values:
            counts[index[x]] += 1
        o += (np.outer(counts, counts) - np.diag(counts)) / (len(values) - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    expected = n_c.sum() ** 2 - (n_c ** 2).sum()
    if n < 2 or expected <= 0:
        return None
    observed = o.sum() - np.trace(o)
    return float(1.0 - (n - 1) * observed / expected)
