"""Columnar state (``columnar``, ``state.ColumnarState``): the partition scan against the
current ``ModelState`` + ``TopFisher`` path, the label overlay, corrupt files, the factor
estimate."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cincer_service import columnar, influence
from cincer_service import state as state_module
from cincer_service.counterexamples import get_strategy
from cincer_service.state import ColumnarState, ModelState

N, D, C = 3000, 16, 10


@pytest.fixture(autouse=True)
def large_top(monkeypatch):
    """Every state here takes the large-layer paths (TensorFlow reference, partition scan)."""
    monkeypatch.setattr(state_module, "SMALL_TOP_WORK", 0)


class LinearSoftmax:
    """A fixed two-layer net: ``h = relu(x A)``, ``p = softmax(ĥ B)`` (float32)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.A = rng.standard_normal((D, D)).astype(np.float32) / np.sqrt(D)
        self.B = rng.standard_normal((D + 1, C)).astype(np.float32)

    def fast_forward(self, X):
        h = np.maximum(np.asarray(X, np.float32).reshape(len(X), -1) @ self.A, 0)
        z = influence.augment_np(h).astype(np.float32) @ self.B
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return h, p / p.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def known():
    rng = np.random.default_rng(0)
    clf = LinearSoftmax()
    X = rng.standard_normal((N, D)).astype(np.float32)
    y = rng.integers(0, C, N)
    ids = np.arange(10, 10 + 3 * N, 3, dtype=np.int64)       # sparse, in id order
    return clf, X, y, ids


def write_state(path, known):
    clf, X, y, ids = known
    h, p = clf.fast_forward(X)
    return columnar.write(str(path), ids=ids, labels=y, confirmed=np.zeros(N, bool), x=X,
                          h_aug=influence.augment_np(h), probs=p, built_at=0.0, n_classes=C)


def compare(ref_state, col_state, ids, columns, x, label, exclude_ids=()):
    """Same top-1 and the same scores (1e-5 relative) for the same candidates."""
    strategy = get_strategy("top_fisher")
    ex_ref = np.isin(ids, list(exclude_ids))
    ex_col = np.isin(columns.ids, list(exclude_ids))
    ref = strategy.rank(ref_state, x, label, ex_ref)
    got = strategy.rank(col_state, x, label, ex_col)
    assert got.prediction == ref.prediction
    assert columns.ids[got.best] == ids[ref.best]
    ref_by_id = dict(zip(ids[ref.indices].tolist(), ref.scores))
    got_by_id = dict(zip(columns.ids[got.indices].tolist(), got.scores))
    assert set(got_by_id) == set(ref_by_id)
    keys = sorted(ref_by_id)
    a = np.array([ref_by_id[k] for k in keys])
    b = np.array([got_by_id[k] for k in keys])
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())
    return ref, got


def test_partition_scan_matches_the_current_implementation(tmp_path, known):
    clf, X, y, ids = known
    ref_state = ModelState.build(clf, X, y, damping=1e-3)
    columns = write_state(tmp_path / "v1", known)
    col_state = ColumnarState(clf, columns, damping=1e-3)
    assert not ref_state.small_top and not col_state.small_top
    # partitions: every row of partition k has label k, in id order
    for k in range(C):
        start, stop = columns.partition(k)
        assert np.all(columns.labels[start:stop] == k)
        assert np.all(np.diff(columns.ids[start:stop]) > 0)
    assert np.array_equal(columns.ids[columns.positions], ids)
    np.testing.assert_allclose(col_state.top_fisher_factor_np, ref_state.top_fisher_factor_np,
                               rtol=1e-5, atol=1e-6)     # its products are float32
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.standard_normal(D).astype(np.float32)
        label = int(rng.integers(0, C))
        ref, got = compare(ref_state, col_state, ids, columns, x, label)
        top_i, top_s = got.top(5)
        assert np.array_equal(columns.ids[top_i], ids[ref.indices[:5]])
    # exclusions (confirmed, busy) drop the same candidates
    compare(ref_state, col_state, ids, columns, x, label, exclude_ids=ids[ref.indices[:3]])


def test_overlay_after_label_changes(tmp_path, known):
    clf, X, y, ids = known
    ref_state = ModelState.build(clf, X, y.copy(), damping=1e-3)
    columns = write_state(tmp_path / "v1", known)
    col_state = ColumnarState(clf, columns, damping=1e-3)
    x = np.random.default_rng(2).standard_normal(D).astype(np.float32)
    prediction = int(np.argmax(clf.fast_forward(x[None])[1][0]))
    other = (prediction + 1) % C
    ref0 = get_strategy("top_fisher").rank(ref_state, x, other)
    # the best counter-example leaves the class; three rows of another class join it
    leaving = ref0.best
    joining = np.flatnonzero(y == other)[:3]
    for k, label in [(leaving, other)] + [(int(j), prediction) for j in joining]:
        ref_state.relabel(k, label)
        col_state.relabel(int(columns.positions[k]), label)
    assert len(col_state.moved) == 4
    ref, got = compare(ref_state, col_state, ids, columns, x, other)
    assert columns.ids[got.best] != ids[leaving]
    assert set(ids[joining]) <= set(columns.ids[got.indices].tolist())
    # the files are untouched: a fresh state over them sees the built labels
    assert np.array_equal(ColumnarState(clf, columnar.load(columns.path)).y, columns.labels)


def corrupt(path, how):
    file = os.path.join(path, "h.npy")
    if how == "missing":
        os.remove(file)
    elif how == "truncated":
        with open(file, "r+b") as f:
            f.truncate(os.path.getsize(file) - 100)
    elif how == "checksum":
        with open(file, "r+b") as f:              # same size, one float flipped
            f.seek(os.path.getsize(file) - 4)
            f.write(b"\x00\x00\x80\x7f")
    elif how == "manifest":
        with open(os.path.join(path, "manifest.json"), "w") as f:
            f.write("{")


@pytest.mark.parametrize("how", ["missing", "truncated", "checksum", "manifest"])
def test_a_corrupt_state_is_rebuilt_never_used(tmp_path, known, how):
    path = str(tmp_path / "v1")
    good = write_state(path, known)
    expected = np.array(good.h)
    corrupt(path, how)
    with pytest.raises(columnar.CorruptState):
        _ = columnar.load(path).h                 # a partition is checked when first read
    if how == "checksum":                         # found in use: the holder discards it
        columns = columnar.load(path)
        assert columns.rows("h", 0) is not None   # an intact partition is fine
        with pytest.raises(columnar.CorruptState):
            columns.rows("h", int(np.max(known[2])))   # the last rows: the last partition
        assert columns.corrupt
        columnar.discard(path)
    builds = []

    def build():
        clf, X, y, ids = known
        h, p = clf.fast_forward(X)
        builds.append(1)
        return dict(ids=ids, labels=y, confirmed=np.zeros(N, bool), x=X,
                    h_aug=influence.augment_np(h), probs=p, built_at=1.0, n_classes=C)
    columns, rebuilt = columnar.load_or_build(path, build)
    assert rebuilt and builds == [1]
    assert np.array_equal(columns.h, expected) and columns.built_at == 1.0
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]   # nothing left aside
    again, rebuilt = columnar.load_or_build(path, build)
    assert not rebuilt and builds == [1]


def test_the_inputs_file_is_checked_on_first_use(tmp_path, known):
    path = str(tmp_path / "v1")
    write_state(path, known)
    with open(os.path.join(path, "x.npy"), "r+b") as f:
        f.seek(os.path.getsize(os.path.join(path, "x.npy")) - 4)
        f.write(b"\x00\x00\x80\x7f")
    columns = columnar.load(path)                 # x is hashed when first used
    with pytest.raises(columnar.CorruptState):
        _ = columns.x
    assert columns.corrupt
    manifest = json.load(open(os.path.join(path, "manifest.json")))
    assert manifest["files"]["x"]["shape"] == [N, D]


def test_stratified_estimate_is_unbiased_in_weight_and_close(known, tmp_path):
    clf, X, y, ids = known
    columns = write_state(tmp_path / "v1", known)
    state = ColumnarState(clf, columns, damping=1e-3)
    strata = np.argmax(columns.p, axis=1) * C + state.y
    idx, w = influence.stratified_sample(strata, 1000)
    assert abs(w.sum() - N) < 1e-6 and np.all(np.diff(idx) > 0)
    exact = influence.weighted_top_fisher_np(columns.p, columns.h, None, 1e-3)
    np.testing.assert_allclose(exact, influence.top_fisher_np(      # float32 products
        np.asarray(columns.p, np.float64), np.asarray(columns.h, np.float64), 1e-3), atol=1e-6)
    estimate = influence.weighted_top_fisher_np(columns.p[idx], columns.h[idx], w, 1e-3)
    assert np.linalg.norm(estimate - exact) / np.linalg.norm(exact) < 0.2
    assert state.fisher_factor(sample_rows=1000).shape == exact.shape


def test_prune_keeps_the_newest_versions(tmp_path, known):
    paths = [str(tmp_path / f"version-{v}-0") for v in (3, 10, 7)]
    for path in paths:
        write_state(path, known)
    assert columnar.prune(paths[1], keep=2) == ["version-3-0"]
    assert sorted(os.listdir(tmp_path)) == ["version-10-0", "version-7-0"]


def test_a_class_without_training_examples_has_an_empty_partition(tmp_path, known):
    """A bootstrap that misses a class (9 of 10 here): its partition is written, checked
    and read as no rows (hashing it once failed: a memoryview of no rows cannot be cast)."""
    clf, X, y, ids = known
    keep = y != 3
    h, p = clf.fast_forward(X[keep])
    columnar.write(str(tmp_path / "v"), ids=ids[keep], labels=y[keep],
                   confirmed=np.zeros(int(keep.sum()), bool), x=X[keep],
                   h_aug=influence.augment_np(h), probs=p, built_at=0.0, n_classes=C)
    columns = columnar.load(str(tmp_path / "v"))
    assert columns.partition(3)[0] == columns.partition(3)[1]
    assert columns.rows("x", 3).shape[0] == 0
    assert columns.rows("x", 4).shape[0] == int((y == 4).sum())
