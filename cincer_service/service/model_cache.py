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
import time
from collections import OrderedDict
from datetime import datetime, timezone

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
    and the arrays of its model state (features, probabilities, factors, memos). A columnar
    state's mapped files count too: their pages are the kernel's to drop, but they are what
    a worker keeps warm."""
    total = 2 * entry["weight_bytes"] + MODEL_OVERHEAD_BYTES
    state = entry["state"]
    if state is not None and hasattr(state, "columns"):
        total += state.columns.mapped_bytes() + array_bytes((state.y, state.cache))
    elif state is not None:
        total += array_bytes((state.X, state.y, state.h_aug, state.probs, state.cache))
    return total


# A label change is read again while its ``updated_at`` is younger than the last overlay
# read minus this margin (clock skew between hosts, a transaction that commits after it
# took its timestamp); reading a row twice is harmless.
OVERLAY_MARGIN_SECONDS = 60.0
ID_CHUNK = 10_000            # ids per ``IN (...)`` while a version's state is built
FORWARD_ROWS = 65_536        # rows per forward pass while a version's state is built


class ModelCache:
    """Classifiers and model states of the most recently used model versions, at most
    ``max_bytes`` of them by ``entry_bytes`` (the entry in use always stays)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, state_dir: str | None = None):
        self.max_bytes = int(max_bytes)
        # Where versions' columnar states are written (``columnar``); None keeps them in
        # memory only, built from the database by each process.
        self.state_dir = state_dir
        self.state_builds = 0            # states this process built from the database
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
        and the cache entry (hold ``entry["lock"]`` while using the state).

        With a ``state_dir`` the state is the version's columnar files (``columnar``),
        mapped, written by the first process that needs them and rebuilt from the database
        if they are missing or corrupt. The labels and confirmations in the files are those
        of when they were written; rows changed since (``updated_at``) are read again on each
        call and applied over them, so the database stays the source of truth. A file found
        corrupt while in use (a partition's checksum is checked on its first scan) fails that
        use (``columnar.CorruptState``) and the next call rebuilds the state."""
        if self.state_dir is None:
            return self._memory_state(s, project, version)
        from .. import columnar
        from ..state import ColumnarState
        entry = self.entry(project, version)
        train_ids = np.frombuffer(version.train_ids, dtype=np.int64)
        path = columnar.version_dir(self.state_dir, project.id, version.id, version.created_at)
        with entry["lock"]:
            state = entry["state"]
            if state is not None and state.columns.corrupt:
                # a partition failed its checksum while in use: never again, rebuild
                columnar.discard(state.columns.path)
                state = entry["state"] = None
            if state is None:
                columns, rebuilt = columnar.load_or_build(
                    path, lambda: self._state_arrays(s, project, entry["classifier"], train_ids))
                self.state_builds += int(rebuilt)
                state = ColumnarState(entry["classifier"], columns, damping=project.damping)
                state.confirmed = np.array(columns.confirmed, dtype=bool)
                state.synced_at = columns.built_at
                entry["state"] = state
            self._apply_overlay(s, project, state, train_ids, version.train_id_range)
            size = entry_bytes(entry)
        self.resized(entry, size)
        return state, state.columns.ids, state.confirmed, entry

    @staticmethod
    def _apply_overlay(s, project: Project, state, train_ids: np.ndarray,
                       id_range: tuple[int, int] | None) -> None:
        """Apply the labels and confirmations of training rows changed since the state's
        last read (less ``OVERLAY_MARGIN_SECONDS``)."""
        now = time.time()
        if id_range is None:
            state.synced_at = now
            return
        since = datetime.fromtimestamp(state.synced_at - OVERLAY_MARGIN_SECONDS, timezone.utc)
        rows = changed_training_rows(s, project.id, id_range, since)
        if rows:
            changed = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            labels = np.fromiter((r[1] for r in rows), np.int64, len(rows))
            confirmed = np.fromiter((bool(r[2]) for r in rows), bool, len(rows))
            at = np.minimum(np.searchsorted(train_ids, changed), len(train_ids) - 1)
            known = train_ids[at] == changed
            positions = state.columns.positions[at[known]]
            labels, confirmed = labels[known], confirmed[known]
            for k in np.flatnonzero(state.y[positions] != labels):
                state.relabel(int(positions[k]), int(labels[k]))
            state.confirmed[positions] = confirmed
        state.synced_at = now

    def _state_arrays(self, s, project: Project, classifier, train_ids: np.ndarray) -> dict:
        """A version's state from the database: ``columnar.write``'s arguments."""
        from ..state import forward_rows
        built_at = time.time()             # before the read: later changes are the overlay
        chunks, labels, confirmed = [], [], []
        for start in range(0, len(train_ids), ID_CHUNK):
            part = train_ids[start:start + ID_CHUNK].tolist()
            rows = s.execute(select(Example.id, Example.x, Example.label, Example.confirmed)
                             .where(Example.id.in_(part)).order_by(Example.id)).all()
            if len(rows) != len(part):
                raise LookupError(f"project {project.id}: {len(part) - len(rows)} training "
                                  "examples of this model version are gone")
            chunks.append(b"".join(r[1] for r in rows))
            labels.extend(r[2] for r in rows)
            confirmed.extend(r[3] for r in rows)
        X = np.frombuffer(b"".join(chunks), np.float32).reshape(
            (len(train_ids), *project.input_shape))
        h_aug, probs = forward_rows(classifier, X, FORWARD_ROWS)
        return dict(ids=train_ids, labels=np.array(labels, np.int64),
                    confirmed=np.array(confirmed, bool), x=X, h_aug=h_aug, probs=probs,
                    built_at=built_at, n_classes=len(project.classes))

    def _memory_state(self, s, project: Project, version: ModelVersion) -> tuple:
        """``training_state`` without a state directory: a ``ModelState`` built in memory
        from the rows, the labels of every training example read on each call."""
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


def changed_training_rows(s, pid: int, id_range: tuple[int, int], since: datetime) -> list:
    """``(id, label, confirmed)`` of the rows updated since ``since`` within a version's
    training ``id_range`` (``ModelVersion.train_id_range``): the stream screened after the
    version has newer ids, changes no training label, and at scale is nearly all that was
    updated (a whole minute of it)."""
    return s.execute(select(Example.id, Example.label, Example.confirmed).where(
        Example.project_id == pid, Example.updated_at >= since,
        Example.id.between(*id_range))).all()
