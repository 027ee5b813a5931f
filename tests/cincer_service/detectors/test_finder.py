"""``find_issues``: mean-rank combination, isolated failures, pairs, the stored JSON shape."""
import numpy as np
import pytest
import tensorflow as tf

from cincer_service import influence
from cincer_service.detectors import DETECTORS, Detector, DuplicatePair, find_issues, get_detector
from cincer_service.state import ModelState

SCORING = ["margin", "mismatch", "self_influence"]


@pytest.fixture
def tiny():
    """Eight cached examples, three classes; rows 0 and 5 share their inputs, label and
    prediction, and the labels put ties into the margin scores."""
    rng = np.random.default_rng(0)
    X = rng.random((8, 4))
    X[5] = X[0]
    logits = rng.standard_normal((8, 3)) * 2
    logits[5] = logits[0]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = p.argmax(axis=1)
    y[[1, 2, 6]] = (y[[1, 2, 6]] + 1) % 3               # three disagreements, the rest ties at 0
    h = rng.random((8, 5))
    return ModelState(classifier=None, X=X, y=y, h_aug=influence.augment(h),
                      probs=tf.constant(p, tf.float64), damping=1e-2)


def slow_mean_rank(scores):
    """Rank of i = examples strictly more suspicious, plus equal ones with a lower index."""
    n = len(next(iter(scores.values())))
    ranks = np.zeros(n)
    for v in scores.values():
        for i in range(n):
            ranks[i] += sum(v[j] > v[i] or (v[j] == v[i] and j < i) for j in range(n))
    return ranks / len(scores)


def test_suspects_follow_the_mean_rank_of_the_detectors(tiny):
    report = find_issues(tiny, SCORING, top_k=5)
    scores = {name: get_detector(name).score(tiny) for name in SCORING}
    ranks = slow_mean_rank(scores)
    expected = sorted(range(tiny.n), key=lambda i: (ranks[i], i))[:5]
    assert [s.index for s in report.suspects] == expected
    for s in report.suspects:
        assert s.label == tiny.y[s.index]
        assert s.score == pytest.approx(1 - ranks[s.index] / (tiny.n - 1))
        assert s.scores == pytest.approx({name: scores[name][s.index] for name in SCORING})
    assert set(report.scores) == set(SCORING) and report.skipped == {} and report.pairs == []


class Boom(Detector):
    def _score(self, state, trusted):
        raise RuntimeError("boom")


def test_a_failing_detector_is_skipped_and_the_others_run(tiny, monkeypatch):
    monkeypatch.setitem(DETECTORS, "boom", Boom)
    calls = []
    report = find_issues(tiny, ["gd_class", "boom", "margin"],
                         progress=lambda done, total, name: calls.append((done, total, name)))
    assert report.skipped["boom"] == "boom"
    assert "trusted" in report.skipped["gd_class"]       # no trusted set: NotEnoughTrusted
    assert list(report.scores) == ["margin"] and len(report.suspects) == tiny.n
    assert calls == [(0, 3, "gd_class"), (1, 3, "boom"), (2, 3, "margin")]


def test_unknown_names_are_refused_before_anything_runs(tiny):
    with pytest.raises(ValueError, match="unknown detector"):
        find_issues(tiny, ["margin", "nope"])


def test_near_duplicates_come_back_as_pairs(tiny):
    report = find_issues(tiny, ["near_duplicates"], inputs=tiny.X)
    assert report.suspects == [] and report.scores == {}
    assert [(p.first, p.second) for p in report.pairs] == [(0, 5)]
    assert report.pairs[0].similarity == pytest.approx(1.0)
    assert report.pairs[0].label == tiny.y[0] and report.pairs[0].prediction == tiny.y[0]
    no_inputs = ModelState(None, None, tiny.y, tiny.h_aug, tiny.probs)
    assert "raw inputs" in find_issues(no_inputs, ["near_duplicates"]).skipped["near_duplicates"]


def test_to_dict_maps_rows_to_ids(tiny):
    ids = np.arange(100, 108)
    report = find_issues(tiny, ["margin", "near_duplicates", "gd"], inputs=tiny.X, top_k=2)
    doc = report.to_dict(ids)
    assert set(doc) == {"suspects", "duplicates", "leakage", "skipped"}
    assert [set(s) for s in doc["suspects"]] == [{"example_id", "label", "score", "scores"}] * 2
    assert doc["suspects"][0]["example_id"] == 100 + report.suspects[0].index
    assert doc["duplicates"] == [{"first": 100, "second": 105, "similarity": pytest.approx(1.0),
                                  "label": int(tiny.y[0]), "prediction": int(tiny.y[0])}]
    assert doc["leakage"] == [] and set(doc["skipped"]) == {"gd"}
    assert report.to_dict()["duplicates"][0]["first"] == 0              # no ids: row indices
    assert isinstance(report.pairs[0], DuplicatePair)
