"""Model versions in memory: weights (de)serialisation and the per-process model cache.

A ``ModelCache`` keeps the classifier of a few recent model versions and, lazily, the
``ModelState`` over each version's training set, so the Fisher factor of a version is built
once however many counter-examples use it. TensorFlow is imported only when a model is
built, so a process that never runs jobs (the API under gunicorn) never loads it.
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


class ModelCache:
    """Classifiers and model states of the ``size`` most recently used model versions."""

    def __init__(self, size: int = 4):
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def entry(self, project: Project, version: ModelVersion) -> dict:
        """``{"classifier", "state", "lock"}`` for ``version`` (built on first use)."""
        # The row id and creation time: SQLite may reuse the ids of a deleted project.
        key = (version.id, version.created_at)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            clf = new_classifier(project)
            clf.set_weights(weights_from_bytes(version.weights))
            entry = {"classifier": clf, "state": None, "lock": threading.Lock()}
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return entry

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
        return state, ids, confirmed, entry
