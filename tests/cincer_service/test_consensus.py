"""consensus: Dawid–Skene (online and batch) and Krippendorff's alpha against slow,
obviously correct versions; crowd-kit's DawidSkene on the same tables (``long``)."""
import itertools

import numpy as np
import pytest

from cincer_service.catalog import MODEL_VOTE_WEIGHT
from cincer_service.consensus import (
    MODEL,
    Crowd,
    dawid_skene,
    krippendorff_alpha,
    majority,
    pseudo_counts,
)


def simulated_crowd(seed=0, n=300, c=4, accuracies=(0.95, 0.85, 0.75, 0.65, 0.6),
                    spammers=1, per_item=3):
    """An items × annotators table (-1: no answer) from annotators of known accuracy
    (uniform errors) plus uniform spammers, and the truth."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, c, n)
    accs = list(accuracies) + [1.0 / c] * spammers
    m = len(accs)
    table = np.full((n, m), -1)
    for i in range(n):
        for j in rng.choice(m, per_item, replace=False):
            if rng.random() < accs[j]:
                table[i, j] = truth[i]
            else:
                table[i, j] = rng.choice([k for k in range(c) if k != truth[i]])
    return table, truth


def slow_posterior(prior, thetas, votes, theta_m=None, p=None, weight=1.0):
    """π_k Π_a θ_a[k, l_a] (· (Σ_l θ_m[k, l] p_l)^weight), normalised, one class at a
    time."""
    c = len(prior)
    scores = []
    for k in range(c):
        score = prior[k]
        for key, label in votes:
            score *= thetas[key][k][label]
        if p is not None:
            score *= sum(theta_m[k][j] * p[j] for j in range(c)) ** weight
        scores.append(score)
    total = sum(scores)
    return np.array([x / total for x in scores])


def test_posterior_is_the_product_formula():
    rng = np.random.default_rng(1)
    c = 3
    crowd = Crowd(c, class_counts=rng.random(c) * 5,
                  counts={0: rng.random((c, c)) * 4, 1: rng.random((c, c)) * 4,
                          MODEL: rng.random((c, c)) * 4})
    p = rng.dirichlet(np.ones(c))
    votes = [(0, 2), (1, 0)]
    expected = slow_posterior(crowd.class_prior(), {0: crowd.theta(0), 1: crowd.theta(1)},
                              votes, crowd.theta(MODEL), p, MODEL_VOTE_WEIGHT)
    assert np.allclose(crowd.posterior(votes, p), expected)
    # leave-one-out: the posterior without the vote, at the vote's label
    loo = crowd.leave_one_out(votes, p)
    alone = slow_posterior(crowd.class_prior(), {1: crowd.theta(1)}, [(1, 0)],
                           crowd.theta(MODEL), p, MODEL_VOTE_WEIGHT)
    assert np.isclose(loo[0], alone[2])


def test_online_counts_are_the_sum_of_the_latest_posteriors():
    table, _ = simulated_crowd(n=60, c=3)
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), size=len(table))
    crowd = Crowd(3)
    stored: dict = {}
    # answers arrive one at a time, items interleaved
    arrivals = [(i, j) for i in range(len(table)) for j in np.flatnonzero(table[i] >= 0)]
    rng.shuffle(arrivals)
    given: dict = {}
    for i, j in arrivals:
        old_votes = given.get(i, [])
        votes = old_votes + [(int(j), int(table[i, j]))]
        stored[i] = crowd.update_item(votes, probs[i], stored.get(i), old_votes)
        given[i] = votes
    for j in range(table.shape[1]):
        expected = np.zeros((3, 3))
        for i, votes in given.items():
            for key, label in votes:
                if key == j:
                    expected[:, label] += stored[i]
        assert np.allclose(crowd.counts_of(j), expected)
    assert np.allclose(crowd.class_counts, sum(stored.values()))
    assert np.allclose(crowd.counts_of(MODEL),
                       sum(np.outer(stored[i], probs[i]) for i in stored))


def slow_dawid_skene(table, c, iterations, probabilities=None):
    """The same MAP EM, item by item and annotator by annotator."""
    n, m = table.shape
    post = np.zeros((n, c))
    post[np.arange(n), majority(table, c)] = 1.0
    prior = pseudo_counts(c, 0.7, 2.0)
    for _ in range(iterations):
        counts = np.zeros((m, c, c))
        for i in range(n):
            for j in range(m):
                if table[i, j] >= 0:
                    counts[j, :, table[i, j]] += post[i]
        thetas = {j: (counts[j] + prior) / (counts[j] + prior).sum(1, keepdims=True)
                  for j in range(m)}
        pi = (post.sum(0) + 1.0) / (post.sum() + c)
        theta_m = None
        if probabilities is not None:
            mc = post.T @ probabilities
            theta_m = (mc + prior) / (mc + prior).sum(1, keepdims=True)
        post = np.array([slow_posterior(pi, thetas, [(j, table[i, j]) for j in range(m)
                                                     if table[i, j] >= 0], theta_m,
                                        None if probabilities is None else probabilities[i])
                         for i in range(n)])
    return post


@pytest.mark.parametrize("with_model", [False, True])
def test_batch_em_matches_the_slow_loops(with_model):
    table, _ = simulated_crowd(n=40, c=3)
    probs = np.random.default_rng(3).dirichlet(np.ones(3), size=40) if with_model else None
    fast = dawid_skene(table, 3, probabilities=probs, iterations=5, tol=0.0)
    assert np.allclose(fast["posterior"], slow_dawid_skene(table, 3, 5, probs))


def test_consensus_beats_the_majority_on_a_crowd_with_a_spammer():
    table, truth = simulated_crowd(seed=4, n=400, c=4, spammers=2)
    vote = (majority(table, 4) == truth).mean()
    batch = (dawid_skene(table, 4)["labels"] == truth).mean()
    crowd, online = Crowd(4), []
    for i in range(len(table)):
        votes = [(int(j), int(table[i, j])) for j in np.flatnonzero(table[i] >= 0)]
        online.append(int(np.argmax(crowd.update_item(votes))))
    assert batch > vote
    assert (np.array(online) == truth).mean() >= vote - 0.02


def slow_alpha(items):
    """α = 1 − D_o / D_e with pairwise disagreements: within units (each pair weighted
    1 / (m_u − 1)) against all pairs of pairable values."""
    units = [v for v in items if len(v) >= 2]
    values = [x for v in units for x in v]
    n = len(values)
    observed = sum(sum(a != b for a, b in itertools.permutations(v, 2)) / (len(v) - 1)
                   for v in units) / n
    expected = sum(a != b for a, b in itertools.permutations(values, 2)) / (n * (n - 1))
    return 1 - observed / expected


def test_krippendorff_alpha():
    # Krippendorff's worked nominal example (4 coders, 12 units, missing values): α = .743
    units = [[1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2],
             [1, 2, 3, 4], [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3]]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    rng = np.random.default_rng(5)
    for _ in range(5):
        items = [list(rng.integers(0, 3, rng.integers(1, 5))) for _ in range(30)]
        assert krippendorff_alpha(items) == pytest.approx(slow_alpha(items))
    assert krippendorff_alpha([[1], [2]]) is None


@pytest.mark.long
def test_batch_em_agrees_with_crowd_kit():
    """crowd-kit's DawidSkene (the ``crowd`` extra; it pulls in transformers, so it is no
    default dependency) and ours, maximum likelihood, on the same tables."""
    pd = pytest.importorskip("pandas")
    aggregation = pytest.importorskip("crowdkit.aggregation",
                                      reason="the crowd extra (crowd-kit) is not installed")
    for seed in range(3):
        table, truth = simulated_crowd(seed=seed, n=500, c=4, spammers=2)
        rows = [{"task": i, "worker": j, "label": int(table[i, j])}
                for i in range(len(table)) for j in np.flatnonzero(table[i] >= 0)]
        theirs = aggregation.DawidSkene(n_iter=100).fit_predict(pd.DataFrame(rows))
        theirs = theirs.sort_index().to_numpy()
        ours = dawid_skene(table, 4, iterations=100, prior=False)["labels"]
        assert (ours == theirs).mean() >= 0.98
        assert (ours == truth).mean() >= (theirs == truth).mean() - 0.01
