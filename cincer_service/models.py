"""Keras classifiers (``lr``, ``fc``, ``cnn``) with a compiled training loop.

Every model ends in a Dense softmax layer named ``top``; ``Classifier.forward`` returns
its input features ``h(x)`` and the probabilities in one pass, which is all the
top-layer influence algebra needs.

Training schedules (``Classifier(schedule=...)``, overridable per ``fit`` call):

* ``"validation"`` (default): hold out a deterministic stratified split of the training
  data (``validation_split``), train up to ``max_epochs`` (scratch) or ``warm_epochs``
  (warm), evaluate the held-out part after every epoch (``monitor``: its mean loss, or its
  errors with the loss breaking ties), stop after ``patience`` epochs without a strict
  improvement and restore the weights of the best epoch. A scratch fit then trains again
  from the initial weights on *all* the data for that best number of epochs (``refit``;
  the held-out part chose how long to train, and no example is left out of the model). When
  the set is too small to hold out ``min_validation_size`` examples, it trains on all of the
  data for the full ``max_epochs`` / ``warm_epochs`` (the report says ``schedule="fixed"``).
* ``"accuracy"``: the original rule, bit for bit: scratch training stops once the running
  training accuracy reaches ``early_stop_accuracy``; warm training runs ``warm_epochs``.
* ``"fixed"``: exactly ``epochs`` (or ``max_epochs`` / ``warm_epochs``) epochs on all data.

Vector inputs go through a ``Standardize`` layer whose statistics every scratch fit sets
from its training inputs (``standardize``; images keep their shared pixel scale), so raw
tabular features of any range train like pre-scaled ones.

The split is content-hashed, so an example stays on the same side of the split from one
model version to the next and warm retrains never validate on examples the previous
version trained on. Warm fits keep the best-epoch weights (no refit: a warm refit would
need the optimizer state of before the fit). How these defaults were chosen, on
development data only, is in ``docs/results.md``.
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

from .spec import DEFAULT_MONITOR, DEFAULT_SCHEDULE, MONITORS  # noqa: E402
from .spec import DEFAULT_PATIENCE as PATIENCE  # noqa: E402
from .spec import TRAINING_SCHEDULES as SCHEDULES  # noqa: E402

MODEL_KINDS = ("lr", "fc", "cnn")
EARLY_STOP_ACCURACY = {"lr": 0.7, "fc": 0.9, "cnn": 0.9}
VALIDATION_FRACTION = 0.15     # share of every class held out by the validation schedule
MIN_VALIDATION_SIZE = 10       # fewer held-out examples than this: train on all, fixed epochs

_MASK64 = (1 << 64) - 1


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, vectorised over ``uint64`` (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def content_hash(X, seed: int) -> np.ndarray:
    """A seeded 64-bit hash of every example's float32 bytes, ``(n,)`` ``uint64``.

    Multilinear hash of the 32-bit words with seed-derived odd multipliers, then a
    SplitMix64 finaliser: it depends only on an example's content and the seed, never on
    its position, so an example keeps its key when the set grows, shrinks or is relabelled.
    """
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32).reshape(len(X), -1))
    words = X.view(np.uint32).astype(np.uint64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED])
    multipliers = rng.integers(0, 2**63, size=words.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        folded = words @ multipliers if words.shape[1] else np.zeros(len(X), np.uint64)
    return _splitmix64(folded ^ np.uint64(int(seed) & _MASK64))


def validation_split(X, y, seed: int, fraction: float = VALIDATION_FRACTION,
                     min_size: int = MIN_VALIDATION_SIZE) -> tuple[np.ndarray, np.ndarray] | None:
    """Deterministic stratified ``(train_indices, validation_indices)``, or ``None``.

    Every class ``k`` with ``n_k`` examples gives its ``floor(fraction · n_k)`` examples of
    smallest ``content_hash`` (ties by position) to validation, so classes with fewer than
    ``1 / fraction`` examples stay entirely in training. Returns ``None`` (train on all
    the data) when fewer than ``min_size`` examples would be held out. Both index arrays
    are sorted.
    """
    y = np.asarray(y)
    n = len(y)
    counts = {int(k): int(np.sum(y == k)) for k in np.unique(y)}
    quota = {k: int(np.floor(fraction * c + 1e-9)) for k, c in counts.items()}
    if n == 0 or sum(quota.values()) < max(int(min_size), 1):
        return None
    keys = content_hash(X, seed)
    val = []
    for k, q in quota.items():
        if q == 0:
            continue
        members = np.flatnonzero(y == k)
        order = np.lexsort((members, keys[members]))     # by hash, then position
        val.append(members[order[:q]])
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


class Standardize(keras.layers.Layer):
    """``(x − mean) · inv_scale`` per input value, with non-trainable statistics.

    ``Classifier.fit`` sets the statistics from the training inputs at every scratch fit
    (``standardization``); until then the layer is the identity. Features of very different
    ranges (raw tabular data) then train as quickly as pre-scaled ones.
    """

    def build(self, input_shape):
        shape = tuple(input_shape[1:])
        self.mean = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="mean")
        self.inv_scale = self.add_weight(shape=shape, initializer="ones", trainable=False,
                                         name="inv_scale")

    def call(self, x):
        return (x - self.mean) * self.inv_scale


def standardization(X) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, inv_scale)`` of the inputs ``X`` (``(n, *shape)``), float32.

    As scikit-learn's ``StandardScaler``: a value that (nearly) never varies keeps scale 1.
    """
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    scale = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean.astype(np.float32), (1.0 / scale).astype(np.float32)


def build_keras_model(kind: str, input_shape: tuple[int, ...], n_classes: int,
                      standardize: bool = False) -> keras.Model:
    """Build the paper's ``lr``, ``fc`` or ``cnn`` network; the last layer is named ``top``.

    ``standardize`` puts a ``Standardize`` layer (named ``standardize``) first (not for
    ``cnn``, whose image inputs share one scale).
    """
    inputs = keras.Input(shape=tuple(input_shape), name="x")
    x = inputs
    if standardize and kind != "cnn":
        x = Standardize(name="standardize")(inputs)
    if kind == "lr":
        h = keras.layers.Flatten()(x) if len(input_shape) > 1 else x
    elif kind == "fc":
        h = keras.layers.Flatten()(x) if len(input_shape) > 1 else x
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
    """What one call to ``Classifier.fit`` did.

    ``epochs`` is the number of epochs run; ``train_accuracy`` the running training accuracy
    of the epoch whose weights the model ends with (the last one, except under the
    validation schedule, where it is ``best_epoch``'s, on the training part of the split).
    ``schedule`` is the rule actually applied: ``"validation"``, ``"accuracy"``, or
    ``"fixed"`` (also what the validation schedule falls back to on a set too small to
    split). ``best_epoch`` (1-based; 0 = the starting weights were kept),
    ``validation_loss`` (mean cross-entropy of the restored weights on the held-out part)
    and ``n_validation`` are set by the validation schedule only; ``stopped_early`` says
    whether training ended before its epoch cap.
    """

    mode: str
    epochs: int
    train_accuracy: float
    seconds: float
    schedule: str = "accuracy"
    best_epoch: int | None = None
    validation_loss: float | None = None
    n_validation: int = 0
    stopped_early: bool = False
    refit_epochs: int = 0


def _dense_program(model: keras.Model):
    """A numpy inference program for chains of Flatten/Dense/Dropout/Identity layers.

    Returns a list of steps over ``model.weights`` indices, or ``None`` when the model has
    any other layer (convolutions, ...) or activation; then inference stays in TensorFlow.
    """
    index = {id(v): i for i, v in enumerate(model.weights)}
    steps, previous = [], None
    for layer in model.layers:
        if previous is not None:           # a plain chain: every layer reads the one before
            inbound = layer._inbound_nodes[0].input_tensors if layer._inbound_nodes else []
            if len(inbound) != 1 or inbound[0] is not previous:
                return None
        previous = layer.output
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, Standardize):
            steps.append(("standardize", index[id(layer.mean)], index[id(layer.inv_scale)]))
        elif isinstance(layer, keras.layers.Flatten):
            steps.append(("flatten",))
        elif isinstance(layer, keras.layers.Dropout):
            continue                        # identity at inference
        elif isinstance(layer, keras.layers.Identity):
            if layer.name == "features":
                steps.append(("features",))
        elif isinstance(layer, keras.layers.Dense):
            activation = layer.get_config().get("activation")
            if activation not in ("linear", "relu", "softmax") or not layer.use_bias:
                return None
            steps.append(("dense", index[id(layer.kernel)], index[id(layer.bias)], activation))
        else:
            return None
    if not steps or steps[-1][0] != "dense" or steps[-1][3] != "softmax" \
            or not any(step[0] == "features" for step in steps):
        return None
    return steps


class Classifier:
    """A softmax classifier whose penultimate features are exposed for influence work.

    Parameters
    ----------
    kind : ``"lr"``, ``"fc"`` or ``"cnn"``.
    input_shape : shape of one example.
    n_classes : number of classes.
    seed : seeds initialisation, shuffling, dropout and the validation split, so training
        is reproducible.
    schedule : ``"validation"`` (default), ``"accuracy"`` (the original early stop at
        ``early_stop_accuracy`` running training accuracy) or ``"fixed"``; see the module
        docstring.
    patience, validation_fraction, min_validation_size : the validation schedule's
        settings (10 epochs, 15% of every class, at least 10 held-out examples).
    """

    def __init__(self, kind: str, input_shape, n_classes: int, seed: int = 0,
                 learning_rate: float = 1e-3, batch_size: int = 32,
                 max_epochs: int = 100, warm_epochs: int = 5,
                 early_stop_accuracy: float | None = None,
                 schedule: str = DEFAULT_SCHEDULE, patience: int = PATIENCE,
                 validation_fraction: float = VALIDATION_FRACTION,
                 min_validation_size: int = MIN_VALIDATION_SIZE,
                 monitor: str = DEFAULT_MONITOR, refit: bool = True,
                 standardize: bool | None = None):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown training schedule {schedule!r}; "
                             f"choose one of {', '.join(SCHEDULES)}")
        if not 0.0 < float(validation_fraction) < 1.0:
            raise ValueError("validation_fraction must lie in (0, 1)")
        if int(patience) < 1:
            raise ValueError("patience must be at least 1")
        if monitor not in MONITORS:
            raise ValueError(f"unknown validation monitor {monitor!r}; choose one of {', '.join(MONITORS)}")
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
        self.schedule = schedule
        self.patience = int(patience)
        self.validation_fraction = float(validation_fraction)
        self.min_validation_size = int(min_validation_size)
        self.monitor = monitor
        self.refit = bool(refit)
        if standardize is None:             # vectors: yes; images share one pixel scale
            standardize = len(self.input_shape) == 1
        self.standardize = bool(standardize) and kind != "cnn"
        keras.utils.set_random_seed(self.seed)
        self.model = build_keras_model(kind, self.input_shape, self.n_classes, self.standardize)
        self._initial_weights = self.model.get_weights()
        self._numpy_weights = [w.copy() for w in self._initial_weights]
        self._program = _dense_program(self.model)
        self._best = None                  # best-epoch shadow variables (validation schedule)
        self.weights_version = 0            # bumped whenever fit/set_weights change the weights
        self._fits = 0
        self._new_optimizer()
        spec = tf.TensorSpec((None, *self.input_shape), tf.float32)
        labels = tf.TensorSpec((None,), tf.int64)
        self._forward = tf.function(self._forward_impl, input_signature=[spec])
        self._train = tf.function(self._train_fixed_impl, input_signature=[
            spec, labels, tf.TensorSpec((), tf.int32),
            tf.TensorSpec((), tf.float32), tf.TensorSpec((2,), tf.int32)])
        self._train_validated = tf.function(self._train_validated_impl, input_signature=[
            spec, labels, spec, labels, tf.TensorSpec((), tf.int32),
            tf.TensorSpec((), tf.int32), tf.TensorSpec((2,), tf.int32), tf.TensorSpec((), tf.bool)])

    # -- configuration ------------------------------------------------------------------
    def config(self) -> dict:
        return {"kind": self.kind, "input_shape": list(self.input_shape),
                "n_classes": self.n_classes, "seed": self.seed,
                "learning_rate": self.learning_rate, "batch_size": self.batch_size,
                "max_epochs": self.max_epochs, "warm_epochs": self.warm_epochs,
                "early_stop_accuracy": self.early_stop_accuracy, "schedule": self.schedule,
                "patience": self.patience, "validation_fraction": self.validation_fraction,
                "min_validation_size": self.min_validation_size,
                "monitor": self.monitor, "refit": self.refit, "standardize": self.standardize}

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

    @property
    def supports_numpy_forward(self) -> bool:
        """Whether ``fast_forward`` runs in numpy (``lr``/``fc``: Dense chains)."""
        return self._program is not None

    def fast_forward(self, X, max_rows: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """``forward`` without TensorFlow's per-call overhead when the model allows it.

        Dense chains (``lr``, ``fc``) run as float32 numpy matrix products on a snapshot of
        the weights taken when they last changed through ``fit``/``set_weights``/``load``
        (about 10 µs for one example against ~400 µs for a ``tf.function`` call); results
        agree with ``forward`` to float32 rounding. Other models, and batches of more than
        ``max_rows`` examples, use ``forward``. Change weights only through this class
        (not ``model.set_weights``) or the snapshot goes stale.
        """
        X = np.asarray(X, dtype=np.float32)
        if self._program is None or len(X) > max_rows:
            return self.forward(X)
        if self._numpy_weights is None:
            self._numpy_weights = self.model.get_weights()
        w = self._numpy_weights
        a = X.reshape(len(X), *self.input_shape)
        h = None
        for step in self._program:
            if step[0] == "standardize":
                a = (a - w[step[1]]) * w[step[2]]
            elif step[0] == "flatten":
                a = a.reshape(len(a), -1)
            elif step[0] == "features":
                h = a
            else:
                _, k, b, activation = step
                a = a @ w[k]
                a += w[b]
                if activation == "relu":
                    np.maximum(a, 0, out=a)
                elif activation == "softmax":
                    a -= a.max(axis=1, keepdims=True)
                    np.exp(a, out=a)
                    a /= a.sum(axis=1, keepdims=True)
        if h is None:
            h = a
        return np.ascontiguousarray(h, dtype=np.float32), a.astype(np.float32, copy=False)

    def predict_proba(self, X) -> np.ndarray:
        return self.forward(X)[1]

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    # -- training -------------------------------------------------------------------------
    def _new_optimizer(self):
        self.optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate)
        self.optimizer.build(self.model.trainable_variables)

    def _flat_weights(self):
        return tf.concat([tf.reshape(tf.cast(v, tf.float32), [-1]) for v in self.model.weights], 0)

    def _unflatten(self, flat: np.ndarray) -> list[np.ndarray]:
        out, start = [], 0
        for v in self.model.weights:
            size = int(np.prod(v.shape))
            out.append(flat[start:start + size].reshape(tuple(v.shape)).astype(v.dtype))
            start += size
        return out

    def _train_impl(self, X, y, epochs, target_accuracy, seed):
        """The original training loop (``schedule="accuracy"``): epochs until the running
        accuracy reaches ``target_accuracy``."""
        epoch = tf.constant(0)
        accuracy = tf.constant(0.0)
        for epoch in tf.range(epochs):
            accuracy = self._epoch(X, y, epoch, seed)
            if accuracy >= target_accuracy:
                break
        return epoch + 1, accuracy

    def _epoch(self, X, y, epoch, seed):
        """One pass over ``(X, y)`` in a seeded shuffled order; the running accuracy."""
        n = tf.shape(X)[0]
        bs = self.batch_size
        n_batches = (n + bs - 1) // bs
        variables = self.model.trainable_variables
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), seed=seed + tf.stack([epoch, 0]))
        correct = tf.constant(0.0)
        for b in tf.range(n_batches):
            idx = order[b * bs:(b + 1) * bs]
            xb, yb = tf.gather(X, idx), tf.gather(y, idx)
            with tf.GradientTape() as tape:
                _, p = self.model(xb, training=True)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, p))
            grads = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(grads, variables))
            correct += tf.reduce_sum(tf.cast(tf.argmax(p, axis=1) == yb, tf.float32))
        return correct / tf.cast(n, tf.float32)

    def _train_fixed_impl(self, X, y, epochs, target_accuracy, seed):
        done, accuracy = self._train_impl(X, y, epochs, target_accuracy, seed)
        return done, accuracy, self._flat_weights()

    def _validation_loss(self, X_val, y_val):
        """Mean cross-entropy and number of misclassified examples on the held-out part."""
        n = tf.shape(X_val)[0]
        bs = 4096
        total = tf.constant(0.0)
        errors = tf.constant(0.0)
        for b in tf.range((n + bs - 1) // bs):
            _, p = self.model(X_val[b * bs:(b + 1) * bs], training=False)
            yb = y_val[b * bs:(b + 1) * bs]
            total += tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(yb, p))
            errors += tf.reduce_sum(tf.cast(tf.argmax(p, axis=1) != yb, tf.float32))
        return total / tf.cast(n, tf.float32), errors

    def _train_validated_impl(self, X, y, X_val, y_val, epochs, patience, seed, by_errors):
        """Epochs as in ``_train_impl``; after each, the validation loss decides.

        Keeps a copy of the weights of the epoch with the lowest validation loss (strict
        improvement), stops after ``patience`` epochs without one, and ends with those
        weights. Epoch 0 (the starting weights) is the fallback only if no epoch gives a
        finite loss.
        """
        variables = self.model.trainable_variables
        for keep, v in zip(self._best, variables):
            keep.assign(v)
        best_loss = tf.constant(np.inf, tf.float32)
        best_errors = tf.constant(np.inf, tf.float32)
        best_epoch = tf.constant(0)
        best_accuracy = tf.constant(0.0)
        waited = tf.constant(0)
        epoch = tf.constant(0)
        for epoch in tf.range(epochs):
            accuracy = self._epoch(X, y, epoch, seed)
            val_loss, val_errors = self._validation_loss(X_val, y_val)
            if by_errors:
                better = (val_errors < best_errors) | ((val_errors == best_errors) & (val_loss < best_loss))
            else:
                better = val_loss < best_loss
            if better:
                best_loss, best_errors, best_epoch, best_accuracy = val_loss, val_errors, epoch + 1, accuracy
                waited = tf.constant(0)
                for keep, v in zip(self._best, variables):
                    keep.assign(v)
            else:
                waited += 1
                if waited >= patience:
                    break
        for keep, v in zip(self._best, variables):
            v.assign(keep)
        return epoch + 1, best_epoch, best_loss, best_accuracy, self._flat_weights()

    def fit(self, X, y, mode: str = "scratch", epochs: int | None = None,
            schedule: str | None = None) -> TrainReport:
        """Train on ``(X, y)``; deterministic given the seed.

        ``scratch`` re-initialises the weights and the optimizer and trains up to
        ``max_epochs``; ``warm`` continues from the current weights (and optimizer state)
        for up to ``warm_epochs``. ``epochs`` overrides that cap for this call. How training
        stops is the ``schedule`` (this call's, else the classifier's): ``"validation"``
        stops on the held-out loss (patience, best weights restored), ``"accuracy"`` stops a
        scratch fit at ``early_stop_accuracy`` running training accuracy and runs warm fits
        to the cap, ``"fixed"`` always runs to the cap.
        """
        if mode not in ("scratch", "warm"):
            raise ValueError("training mode must be 'scratch' or 'warm'")
        schedule = self.schedule if schedule is None else schedule
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown training schedule {schedule!r}; "
                             f"choose one of {', '.join(SCHEDULES)}")
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
        if len(X) == 0:
            raise ValueError("cannot train on an empty training set")
        start = time.perf_counter()
        self._numpy_weights = None          # stale until training returns the new weights
        self.weights_version += 1
        if mode == "scratch":
            self.model.set_weights(self._initial_weights)
            self._set_standardization(X)
            self._new_optimizer()
        n_epochs = int(epochs or (self.max_epochs if mode == "scratch" else self.warm_epochs))
        split = None
        if schedule == "validation":
            split = validation_split(X, y, self.seed, self.validation_fraction,
                                     self.min_validation_size)
            if split is None:
                schedule = "fixed"          # too small to hold anything out
        self._fits += 1
        seed = tf.constant([self.seed, self._fits], tf.int32)
        if split is None:
            target = self.early_stop_accuracy if (schedule == "accuracy" and mode == "scratch") else 2.0
            done, acc, flat = self._train(tf.constant(X), tf.constant(y),
                                          tf.constant(n_epochs, tf.int32),
                                          tf.constant(target, tf.float32), seed)
            self._numpy_weights = self._unflatten(flat.numpy())
            self.weights_version += 1
            return TrainReport(mode, int(done), float(acc), time.perf_counter() - start,
                               schedule=schedule, stopped_early=int(done) < n_epochs)
        if self._best is None:
            self._best = [tf.Variable(tf.zeros_like(v), trainable=False)
                          for v in self.model.trainable_variables]
        train, val = split
        done, best_epoch, best_loss, acc, flat = self._train_validated(
            tf.constant(X[train]), tf.constant(y[train]), tf.constant(X[val]),
            tf.constant(y[val]), tf.constant(n_epochs, tf.int32),
            tf.constant(self.patience, tf.int32), seed, tf.constant(self.monitor == "errors"))
        refit_epochs = 0
        if self.refit and mode == "scratch":
            # The held-out part chose how long to train; now train that long on all of it.
            refit_epochs = max(1, int(best_epoch))
            self.model.set_weights(self._initial_weights)
            self._set_standardization(X)
            self._new_optimizer()
            _, acc, flat = self._train(tf.constant(X), tf.constant(y),
                                       tf.constant(refit_epochs, tf.int32),
                                       tf.constant(2.0, tf.float32), seed)
        self._numpy_weights = self._unflatten(flat.numpy())
        self.weights_version += 1
        loss = float(best_loss)
        return TrainReport(mode, int(done), float(acc), time.perf_counter() - start,
                           schedule="validation", best_epoch=int(best_epoch),
                           validation_loss=loss if np.isfinite(loss) else None,
                           n_validation=len(val), stopped_early=int(done) < n_epochs,
                           refit_epochs=refit_epochs)

    def _set_standardization(self, X) -> None:
        """Scratch fits: the ``standardize`` layer takes the training inputs' statistics."""
        if self.standardize:
            layer = self.model.get_layer("standardize")
            mean, inv_scale = standardization(X)
            layer.mean.assign(mean)
            layer.inv_scale.assign(inv_scale)

    # -- persistence ----------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return self.model.get_weights()

    def set_weights(self, weights) -> None:
        """Set every weight; a list saved before the ``standardize`` layer existed (two
        arrays short) gets the identity standardization."""
        weights = list(weights)
        if self.standardize and len(weights) == len(self.model.weights) - 2:
            layer = self.model.get_layer("standardize")
            weights = [np.zeros(layer.mean.shape, np.float32),
                       np.ones(layer.inv_scale.shape, np.float32), *weights]
        self.model.set_weights(weights)
        self._numpy_weights = [np.array(w, dtype=v.dtype) for w, v in zip(weights, self.model.weights)]
        self.weights_version += 1

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
            config.setdefault("standardize", False)    # saved before the layer existed
            n = sum(1 for k in data.files if k.startswith("w"))
            weights = [data[f"w{i}"] for i in range(n)]
            initial = [data[f"init{i}"] for i in range(n)]
        clf = cls(**config)
        clf.set_weights(weights)
        clf._initial_weights = initial
        return clf
