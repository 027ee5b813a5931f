"""Keras classifiers (``lr``, ``fc``, ``cnn``) with a compiled training loop.

Every model ends in a Dense softmax layer named ``top``; ``Classifier.forward`` returns
its input features ``h(x)`` and the probabilities in one pass, which is all the
top-layer influence algebra needs.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MODEL_KINDS = ("lr", "fc", "cnn")
EARLY_STOP_ACCURACY = {"lr": 0.7, "fc": 0.9, "cnn": 0.9}


def build_keras_model(kind: str, input_shape: tuple[int, ...], n_classes: int) -> keras.Model:
    """Build the paper's ``lr``, ``fc`` or ``cnn`` network; the last layer is named ``top``."""
    inputs = keras.Input(shape=tuple(input_shape), name="x")
    if kind == "lr":
        h = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    elif kind == "fc":
        h = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
        h = keras.layers.Dense(64, activation="relu")(h)
        h = keras.layers.Dropout(0.2)(h)
        h = keras.layers.Dense(32, activation="relu")(h)
        h = keras.layers.Dropout(0.2)(h)
    elif kind == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs image inputs (height, width, channels), got {input_shape}")
        h = keras.layers.Conv2D(32, 3, activation="relu", padding="same")(inputs)
        h = keras.layers.MaxPooling2D(2)(h)
        h = keras.layers.Conv2D(64, 3, activation="relu", padding="same")(h)
        h = keras.layers.Flatten()(h)
        h = keras.layers.Dense(64, activation="relu")(h)
        h = keras.layers.Dropout(0.2)(h)
    else:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    features = keras.layers.Identity(name="features")(h)
    probs = keras.layers.Dense(n_classes, activation="softmax", name="top")(features)
    return keras.Model(inputs, [features, probs], name=kind)


@dataclass
class TrainReport:
    """What one call to ``Classifier.fit`` did."""

    mode: str
    epochs: int
    train_accuracy: float
    seconds: float


class Classifier:
    """A softmax classifier whose penultimate features are exposed for influence work.

    Parameters
    ----------
    kind : ``"lr"``, ``"fc"`` or ``"cnn"``.
    input_shape : shape of one example.
    n_classes : number of classes.
    seed : seeds initialisation, shuffling and dropout, so training is reproducible.
    """

    def __init__(self, kind: str, input_shape, n_classes: int, seed: int = 0,
                 learning_rate: float = 1e-3, batch_size: int = 32,
                 max_epochs: int = 100, warm_epochs: int = 5,
                 early_stop_accuracy: float | None = None):
        self.kind = kind
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = int(n_classes)
        self.seed = int(seed)
        self.learning_rate = float(learning_rate)
        self.batch_size = int(batch_size)
        self.max_epochs = int(max_epochs)
        self.warm_epochs = int(warm_epochs)
        self.early_stop_accuracy = (EARLY_STOP_ACCURACY.get(kind, 0.9)
                                    if early_stop_accuracy is None else float(early_stop_accuracy))
        keras.utils.set_random_seed(self.seed)
        self.model = build_keras_model(kind, self.input_shape, self.n_classes)
        self._initial_weights = self.model.get_weights()
        self._fits = 0
        self._new_optimizer()
        spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
        self._forward = tf.function(self._forward_impl, input_signature=[spec])
        self._train = tf.function(self._train_impl, input_signature=[
            spec, tf.TensorSpec((None,), tf.int64), tf.TensorSpec((), tf.int32),
            tf.TensorSpec((), tf.float32), tf.TensorSpec((2,), tf.int32)])

    # -- configuration ------------------------------------------------------------------
    def config(self) -> dict:
        return {"kind": self.kind, "input_shape": list(self.input_shape),
                "n_classes": self.n_classes, "seed": self.seed,
                "learning_rate": self.learning_rate, "batch_size": self.batch_size,
                "max_epochs": self.max_epochs, "warm_epochs": self.warm_epochs,
                "early_stop_accuracy": self.early_stop_accuracy}

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

    @property
    def top_layer(self) -> keras.layers.Dense:
        return self.model.get_layer("top")

    def top_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` of the top layer, ``W`` of shape ``(d, c)``."""
        W, b = self.top_layer.get_weights()
        return W, b

    # -- inference ------------------------------------------------------------------------
    def _forward_impl(self, x):
        h, p = self.model(x, training=False)
        return h, p

    def forward(self, X, batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Penultimate features ``h(x)`` and class probabilities, in one pass."""
        X = np.asarray(X, dtype=np.float32)
        if len(X) == 0:
            d = self.top_layer.kernel.shape[0]
            return np.zeros((0, d), np.float32), np.zeros((0, self.n_classes), np.float32)
        hs, ps = [], []
        for start in range(0, len(X), batch_size):
            h, p = self._forward(tf.constant(X[start:start + batch_size]))
            hs.append(h.numpy())
            ps.append(p.numpy())
        return np.concatenate(hs), np.concatenate(ps)

    def predict_proba(self, X) -> np.ndarray:
        return self.forward(X)[1]

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    # -- training -------------------------------------------------------------------------
    def _new_optimizer(self):
        self.optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate)
        self.optimizer.build(self.model.trainable_variables)

    def _train_impl(self, X, y, epochs, target_accuracy, seed):
        n = tf.shape(X)[0]
        bs = self.batch_size
        n_batches = (n + bs - 1) // bs
        variables = self.model.trainable_variables
        epoch = tf.constant(0)
        accuracy = tf.constant(0.0)
        for epoch in tf.range(epochs):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n), seed=seed + tf.stack([epoch, 0]))
            correct = tf.constant(0.0)
            for b in tf.range(n_batches):
                idx = order[b * bs:(b + 1) * bs]
                xb, yb = tf.gather(X, idx), tf.gather(y, idx)
                with tf.GradientTape() as tape:
                    _, p = self.model(xb, training=True)
                    loss = tf.reduce_mean(
                        keras.losses.sparse_categorical_crossentropy(yb, p))
                grads = tape.gradient(loss, variables)
                self.optimizer.apply_gradients(zip(grads, variables))
                correct += tf.reduce_sum(tf.cast(tf.argmax(p, axis=1) == yb, tf.float32))
            accuracy = correct / tf.cast(n, tf.float32)
            if accuracy >= target_accuracy:
                break
        return epoch + 1, accuracy

    def fit(self, X, y, mode: str = "scratch", epochs: int | None = None) -> TrainReport:
        """Train on ``(X, y)``.

        ``scratch`` re-initialises the weights and the optimizer and trains up to
        ``max_epochs``, stopping once the running training accuracy reaches
        ``early_stop_accuracy``; ``warm`` continues from the current weights for
        ``warm_epochs`` epochs. Both are deterministic given the seed.
        """
        if mode not in ("scratch", "warm"):
            raise ValueError("training mode must be 'scratch' or 'warm'")
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        if len(X) == 0:
            raise ValueError("cannot train on an empty training set")
        start = time.perf_counter()
        if mode == "scratch":
            self.model.set_weights(self._initial_weights)
            self._new_optimizer()
            n_epochs, target = epochs or self.max_epochs, self.early_stop_accuracy
        else:
            n_epochs, target = epochs or self.warm_epochs, 2.0  # never stops early
        self._fits += 1
        done, acc = self._train(tf.constant(X), tf.constant(y), tf.constant(n_epochs, tf.int32),
                                tf.constant(target, tf.float32),
                                tf.constant([self.seed, self._fits], tf.int32))
        return TrainReport(mode, int(done), float(acc), time.perf_counter() - start)

    # -- persistence ----------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return self.model.get_weights()

    def set_weights(self, weights) -> None:
        self.model.set_weights(weights)

    def save(self, path: str) -> None:
        """Write config and weights to one ``.npz`` file."""
        arrays = {f"w{i}": w for i, w in enumerate(self.get_weights())}
        arrays.update({f"init{i}": w for i, w in enumerate(self._initial_weights)})
        with open(path, "wb") as fh:
            np.savez(fh, __config__=np.array(json.dumps(self.config())), **arrays)

    @classmethod
    def load(cls, path: str) -> "Classifier":
        with np.load(path, allow_pickle=False) as data:
            config = json.loads(str(data["__config__"]))
            n = sum(1 for k in data.files if k.startswith("w"))
            weights = [data[f"w{i}"] for i in range(n)]
            initial = [data[f"init{i}"] for i in range(n)]
        clf = cls(**config)
        clf.set_weights(weights)
        clf._initial_weights = initial
        return clf
