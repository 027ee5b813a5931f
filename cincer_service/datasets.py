"""Bundled data sets (offline) and label-noise injection."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

DATASETS = ("breast", "digits", "wine", "iris", "synthetic", "intents")
# Text data sets: hashed n-gram features (``featurize.text_features``), as a text project
# without embeddings sees them.
TEXT_DATASETS = ("intents",)
NOISE_TYPES = ("random", "structured")


@dataclass
class Dataset:
    """A train/test split with integer labels in ``[0, n_classes)``."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    class_names: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X_train.shape[1:])


def _tabular(name, X, y, seed, class_names):
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y)
    scaler = MinMaxScaler().fit(X_tr)
    return Dataset(name, scaler.transform(X_tr).astype(np.float32), y_tr.astype(np.int64),
                   np.clip(scaler.transform(X_te), -1.0, 2.0).astype(np.float32),
                   y_te.astype(np.int64), int(y.max()) + 1, list(class_names))


def load_dataset(name: str, seed: int = 0, n_samples: int | None = None,
                 n_features: int = 128, n_classes: int = 10) -> Dataset:
    """Load a bundled data set with an 80/20 stratified split.

    ``breast``, ``wine`` and ``iris`` are MinMax-scaled on the training split;
    ``digits`` keeps its 8x8 images (scaled to [0, 1]) with shape ``(8, 8, 1)``;
    ``synthetic`` draws ``n_samples`` points from ``make_classification``;
    ``intents`` is ``n_samples`` (600) generated assistant utterances of three intents as
    1024 hashed n-gram features (``synthetic_intents``).
    """
    if name == "breast":
        d = skdatasets.load_breast_cancer()
        return _tabular(name, d.data, d.target, seed, d.target_names)
    if name == "wine":
        d = skdatasets.load_wine()
        return _tabular(name, d.data, d.target, seed, d.target_names)
    if name == "iris":
        d = skdatasets.load_iris()
        return _tabular(name, d.data, d.target, seed, d.target_names)
    if name == "digits":
        d = skdatasets.load_digits()
        X = (d.images / 16.0).astype(np.float32)[..., None]
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, d.target, test_size=0.2, random_state=seed, stratify=d.target)
        return Dataset(name, X_tr, y_tr.astype(np.int64), X_te, y_te.astype(np.int64), 10,
                       [str(i) for i in range(10)])
    if name == "synthetic":
        n = n_samples or 2000
        X, y = skdatasets.make_classification(
            n_samples=n, n_features=n_features, n_informative=min(n_features, 32),
            n_redundant=0, n_classes=n_classes, n_clusters_per_class=1,
            class_sep=1.5, random_state=seed)
        return _tabular(name, X, y, seed, [str(i) for i in range(n_classes)])
    if name == "intents":
        from .featurize import text_features
        texts, y, names = synthetic_intents(n_samples or 600, seed=seed)
        X_tr, X_te, y_tr, y_te = train_test_split(
            text_features(texts, 1024), y, test_size=0.2, random_state=seed, stratify=y)
        return Dataset(name, X_tr, y_tr, X_te, y_te, len(names), names)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def structured_noise_map(n_classes: int, seed: int = 0) -> np.ndarray:
    """A fixed class -> other class map that is a permutation without fixed points."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n_classes)
        if n_classes < 2 or np.all(perm != np.arange(n_classes)):
            return perm


def inject_noise(y: np.ndarray, n_classes: int, rate: float, kind: str = "random",
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt ``round(rate * len(y))`` labels; return ``(noisy_labels, is_corrupted)``.

    ``random`` flips each chosen label to a uniformly drawn *other* class;
    ``structured`` maps class i to ``structured_noise_map(c)[i]`` for every chosen example.
    """
    if kind not in NOISE_TYPES:
        raise ValueError(f"unknown noise type {kind!r}; choose one of {', '.join(NOISE_TYPES)}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError("noise rate must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=np.int64)
    noisy = y.copy()
    chosen = rng.choice(len(y), size=int(round(rate * len(y))), replace=False)
    if kind == "random":
        shift = rng.integers(1, n_classes, size=len(chosen))
        noisy[chosen] = (y[chosen] + shift) % n_classes
    else:
        noisy[chosen] = structured_noise_map(n_classes, seed)[y[chosen]]
    return noisy, noisy != y


# Generated assistant utterances for the text demo: intent -> templates, filled with places.
INTENT_TEMPLATES = {
    "lights": ["turn the {} lights off", "switch on the lights in the {}",
               "dim the {} lamp please", "set the {} lights to half",
               "make it brighter in the {}"],
    "weather": ["will it rain in the {} tomorrow", "what's the weather like at the {}",
                "is it cold outside the {}", "forecast for the {} this weekend",
                "do I need an umbrella near the {}"],
    "music": ["play some jazz in the {}", "turn the music up in the {}",
              "next song on the {} speaker", "pause the {} speaker",
              "play my running playlist in the {}"],
}
INTENT_PLACES = ["kitchen", "garage", "office", "bedroom", "hall", "garden", "attic", "porch",
                 "living room", "bathroom"]


def synthetic_intents(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """``(texts, labels, intent_names)``: ``n`` generated utterances, intents balanced."""
    rng = np.random.default_rng(seed)
    names = list(INTENT_TEMPLATES)
    labels = np.arange(n) % len(names)
    rng.shuffle(labels)
    texts = []
    for y in labels:
        templates = INTENT_TEMPLATES[names[y]]
        texts.append(templates[rng.integers(len(templates))].format(
            INTENT_PLACES[rng.integers(len(INTENT_PLACES))]))
    return texts, labels.astype(np.int64), names
