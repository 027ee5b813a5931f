"""Model versions in memory: weights (de)serialisation and the per-process model cache.

A ``ModelCache`` keeps the classifiers of recently used model versions and, lazily, the
``ModelState`` over each version's training set, so the Fisher factor of a version is built
once however many counter-examples use it. It is bounded by bytes, not by a count of
entries (``CINCER_MODEL_CACHE_MB``): thousands of small projects (one per assistant user)
fit where a few large ones would, and the least recently used entries go first. An entry's
size is an estimate (``entry_bytes``): its weights, twice (the Keras variables and the numpy
snapshot of ``Classifier.fast_forward``), a fixed overhead per Keras model, and every array
its model state holds. A cold project's next use loads what it needs again. TensorFlow is
imported only when a model is built, so a process that never runs jobs (the API under
gunicorn) never loads it.
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np
from sqlalchemy import select

from .store import Example, ModelVersion, Project


def weights_to_bytes(weights) -> bytes:
    """Keras weights as one ``.npz`` blob for the ``model_versions`` table."""
    buffer = io.BytesIO()
    np.savez(buffer, *weights)
    return buffer.getvalue()


def weights_from_bytes(blob: bytes) -> list[np.ndarray]:
    """The inverse of ``weights_to_bytes``."""
    with np.load(io.BytesIO(blob)) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def new_classifier(project: Project, **options):
    """An untrained classifier for ``project``'s model spec.

    Tabular inputs are standardized inside the model (raw features of any range); images
    and hashed text features are not (``Classifier``'s ``standardize``).
    """
    from ..models import Classifier  # TensorFlow: only where jobs run
    spec = project.model
    options.setdefault("standardize", (project.input_kind or "tabular") == "tabular")
    return Classifier(spec["kind"], project.input_shape, len(project.classes),
                      seed=spec.get("seed", 0), **options)


# What a Keras model costs beyond its weights (layers, variables, traced functions), as
# measured by docs/dev/many_projects_cache.py: 300 fc models of 64 features and 10 classes
# (28 KiB of weights each) grew the process by 753 KiB each.
MODEL_OVERHEAD_BYTES = 700 * 1024
DEFAULT_CACHE_BYTES = 512 * 2**20


def array_bytes(value) -> int:
    """Bytes held by the arrays (numpy or TensorFlow) in ``value``, through tuples, lists
    and dicts; anything else counts 0."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(array_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(array_bytes(v) for v in value)
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    size = getattr(dtype, "size", None)
    if shape is not None and isinstance(size, int):     # a tf.Tensor
        return int(np.prod([int(d) for d in shape], dtype=np.int64)) * size
    return 0


def entry_bytes(entry: dict) -> int:
    """The estimated size of a cache entry: weights (twice) and overhead of its classifier,
    and the arrays of its model state (features, probabilities, factors, memos)."""
    total = 2 * entry["weight_bytes"] + MODEL_OVERHEAD_BYTES
    state = entry["state"]
    if state is not None:
        total += array_bytes((state.X, state.y, state.h_aug, state.probs, state.cache))
    return total


class ModelCache:
    """Classifiers and model states of the most recently used model versions, at most
    ``max_bytes`` of them by ``entry_bytes`` (the entry in use always stays)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list:
        """The cached ``(version id, created_at)`` keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    @property
    def total_bytes(self) -> int:
        """The estimated size of everything cached."""
        with self._lock:
            return sum(e["bytes"] for e in self._entries.values())

    def entry(self, project: Project, version: ModelVersion) -> dict:
        """``{"classifier", "state", "lock", ...}`` for ``version`` (built on first use)."""
        # The row id and creation time: SQLite may reuse the ids of a deleted project.
        key = (version.id, version.created_at)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            clf = new_classifier(project)
            weights = weights_from_bytes(version.weights)
            clf.set_weights(weights)
            entry = {"classifier": clf, "state": None, "lock": threading.Lock(),
                     "weight_bytes": sum(int(w.nbytes) for w in weights)}
            entry["bytes"] = entry_bytes(entry)
            self._entries[key] = entry
            self._evict()
            return entry

    def _evict(self) -> None:
        """Drop least recently used entries until the rest fit (caller holds the lock)."""
        total = sum(e["bytes"] for e in self._entries.values())
        while total > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            total -= dropped["bytes"]

    def resized(self, entry: dict, size: int) -> None:
        """Record ``entry``'s new ``size`` (``entry_bytes``, taken under its lock) after its
        state grew, then evict what no longer fits."""
        with self._lock:
            entry["bytes"] = size
            self._evict()

    def classifier(self, project: Project, version: ModelVersion):
        """The classifier of ``version``."""
        return self.entry(project, version)["classifier"]

    def training_state(self, s, project: Project, version: ModelVersion) -> tuple:
        """``(state, ids, confirmed, entry)``: the ``ModelState`` over the version's training
        set with the examples' *current* labels, their ids, which are confirmed by a human,
        and the cache entry (hold ``entry["lock"]`` while using the state)."""
        from ..state import ModelState
        entry = self.entry(project, version)
        ids = np.frombuffer(version.train_ids, dtype=np.int64)
        rows = {i: (label, confirmed) for i, label, confirmed in s.execute(
            select(Example.id, Example.label, Example.confirmed)
            .where(Example.id.in_(ids.tolist()))).all()}
        labels = np.array([rows[i][0] for i in ids], dtype=np.int64)
        confirmed = np.array([rows[i][1] for i in ids], dtype=bool)
        with entry["lock"]:
            state = entry["state"]
            if state is None:
                # train_ids are stored in id order, so rows ordered by id line up with them
                X = np.stack([e.features(project.input_shape) for e in s.scalars(
                    select(Example).where(Example.id.in_(ids.tolist())).order_by(Example.id))])
                state = ModelState.build(entry["classifier"], X, labels, project.damping)
                entry["state"] = state
            else:
                for k in np.flatnonzero(state.y != labels):
                    state.relabel(int(k), int(labels[k]))
            # The size as of the last use (the factor and memos are added while ranking).
            size = entry_bytes(entry)
        self.resized(entry, size)
        return state, ids, confirmed, entry
