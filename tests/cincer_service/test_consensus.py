"""consensus: Dawid–Skene (online and batch) and Krippendorff's alpha against slow,
obviously correct versions; crowd-kit's DawidSkene on the same tables (``long``)."""
import itertools

import numpy as np
import pytest

from cincer_service import consensus
from cincer_service.catalog import MODEL_BINS, MODEL_VOTE_WEIGHT
from cincer_service.consensus import (
    MODEL,
    Crowd,
    dawid_skene,
    krippendorff_alpha,
    majority,
    model_key,
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


def slow_posterior(prior, thetas, votes, theta_m=None, p=None, weight=1.0, soft=True):
    """π_k Π_a θ_a[k, l_a] (· (Σ_l θ_m[k, l] p_l)^weight, or with ``soft`` False the
    hard vote θ_m[k, argmax p]^weight), normalised, one class at a time."""
    c = len(prior)
    scores = []
    for k in range(c):
        score = prior[k]
        for key, label in votes:
            score *= thetas[key][k][label]
        if p is not None:
            top = max(range(c), key=lambda j: p[j])
            vote = sum(theta_m[k][j] * p[j] for j in range(c)) if soft else theta_m[k][top]
            score *= vote ** weight
        scores.append(score)
    total = sum(scores)
    return np.array([x / total for x in scores])


def slow_model_key(p, side, bins):
    """The model's voter: the soft ``MODEL``, or the side's voter at the number of bin
    edges its top probability reaches."""
    return MODEL if not bins else f"{MODEL}{side or ''}:{sum(max(p) >= e for e in bins)}"


@pytest.mark.parametrize("bins", [(), MODEL_BINS])
@pytest.mark.parametrize("side", [None, "counterexample"])
def test_posterior_is_the_product_formula(monkeypatch, bins, side):
    monkeypatch.setattr(consensus, "MODEL_BINS", bins)
    rng = np.random.default_rng(1)
    c = 3
    p = np.array([0.15, 0.8, 0.05])
    key = slow_model_key(p, side, bins)
    assert model_key(p, side) == key
    crowd = Crowd(c, class_counts=rng.random(c) * 5,
                  counts={0: rng.random((c, c)) * 4, 1: rng.random((c, c)) * 4,
                          key: rng.random((c, c)) * 4})
    votes = [(0, 2), (1, 0)]
    expected = slow_posterior(crowd.class_prior(), {0: crowd.theta(0), 1: crowd.theta(1)},
                              votes, crowd.theta(key), p, MODEL_VOTE_WEIGHT, soft=not bins)
    assert np.allclose(crowd.posterior(votes, p, side), expected)
    # leave-one-out: the posterior without the vote, at the vote's label
    loo = crowd.leave_one_out(votes, p, side)
    alone = slow_posterior(crowd.class_prior(), {1: crowd.theta(1)}, [(1, 0)],
                           crowd.theta(key), p, MODEL_VOTE_WEIGHT, soft=not bins)
    assert np.isclose(loo[0], alone[2])


def test_the_model_votes_per_side_and_confidence_bin():
    p = np.array([0.05, 0.93, 0.02])
    assert model_key(p, "example") == f"{MODEL}example:3"      # 0.9 <= 0.93 < 0.99
    assert model_key(p, "counterexample") == f"{MODEL}counterexample:3"
    assert model_key(np.array([0.3, 0.3, 0.4])) == f"{MODEL}:0"
    assert model_key(np.array([0.0, 1.0, 0.0]), "example") == f"{MODEL}example:4"
    # a voter right where it votes earns weight there, not on the other side
    crowd = Crowd(3)
    for _ in range(30):
        crowd.update_item([(0, 1)], p, side="example")
    right, other = crowd.theta(f"{MODEL}example:3"), crowd.theta(f"{MODEL}counterexample:3")
    assert right[1, 1] > 0.9 and np.isclose(other[1, 1], 0.7)


def test_a_state_without_binned_voters_reads_and_round_trips():
    """States stored before the binned model voters (only ``model``, the soft vote's
    counts) still load: the bins start from their prior, the old counts are kept."""
    old = {"c": 3, "class_counts": [1.0, 2.0, 3.0], "model": np.eye(3).tolist()}
    crowd = Crowd(3, class_counts=old["class_counts"], counts={MODEL: old["model"]})
    post = crowd.update_item([(0, 1)], [0.1, 0.8, 0.1], side="example")
    state = crowd.to_json()
    assert state["model"] == old["model"]
    assert np.allclose(state["models"][f"{MODEL}example:2"], np.outer(post, [0, 1, 0]))
    again = Crowd(3, class_counts=state["class_counts"],
                  counts={0: crowd.counts_of(0), MODEL: state["model"], **state["models"]})
    assert np.allclose(again.posterior([(0, 1)], [0.1, 0.8, 0.1], "example"),
                       crowd.posterior([(0, 1)], [0.1, 0.8, 0.1], "example"))


def test_online_counts_are_the_sum_of_the_latest_posteriors():
    table, _ = simulated_crowd(n=60, c=3)
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), size=len(table))
    sides = ["example" if i % 2 else "counterexample" for i in range(len(table))]
    crowd = Crowd(3)
    stored: dict = {}
    # answers arrive one at a time, items interleaved
    arrivals = [(i, j) for i in range(len(table)) for j in np.flatnonzero(table[i] >= 0)]
    rng.shuffle(arrivals)
    given: dict = {}
    for i, j in arrivals:
        old_votes = given.get(i, [])
        votes = old_votes + [(int(j), int(table[i, j]))]
        stored[i] = crowd.update_item(votes, probs[i], stored.get(i), old_votes, sides[i])
        given[i] = votes
    for j in range(table.shape[1]):
        expected = np.zeros((3, 3))
        for i, votes in given.items():
            for key, label in votes:
                if key == j:
                    expected[:, label] += stored[i]
        assert np.allclose(crowd.counts_of(j), expected)
    assert np.allclose(crowd.class_counts, sum(stored.values()))
    # each model voter: the posteriors of its items at its predicted class
    voters: dict = {}
    for i in stored:
        key = slow_model_key(probs[i], sides[i], MODEL_BINS)
        voters.setdefault(key, np.zeros((3, 3)))[:, int(np.argmax(probs[i]))] += stored[i]
    assert len(voters) > 2
    for key, expected in voters.items():
        assert np.allclose(crowd.counts_of(key), expected)


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
