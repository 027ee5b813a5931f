"""Training schedules of ``Classifier.fit``: validation-loss early stopping and the old rule."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from cincer_service.datasets import load_dataset
from cincer_service.models import SCHEDULES, Classifier, TrainReport, validation_split


@pytest.fixture(scope="module")
def breast():
    ds = load_dataset("breast", seed=0)
    return ds.X_train[:160], ds.y_train[:160], ds


def scripted_validation(clf: Classifier, losses, errors=None):
    """Replace the held-out loss (and error count) with a script: epoch ``e`` (1-based) sees
    ``losses[e - 1]`` (and ``errors[e - 1]``, else 0).

    Must be installed before the classifier's first validated fit (it is traced into the
    compiled training loop). Every call advances one epoch; ``calls`` counts them.
    """
    script = tf.constant(np.asarray(losses, np.float32))
    error_script = tf.constant(np.asarray(errors if errors is not None else [0] * len(losses),
                                          np.float32))
    calls = tf.Variable(0, dtype=tf.int32, trainable=False)

    def loss(X_val, y_val):
        i = tf.minimum(calls.assign_add(1) - 1, len(losses) - 1)
        return tf.gather(script, i), tf.gather(error_script, i)

    clf._validation_loss = loss
    return calls


def weights_equal(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def test_stops_after_patience_epochs_and_restores_the_best_weights(breast):
    X, y, ds = breast
    # epoch:    1    2    3    4    5    6    7 (never reached)
    losses = [5.0, 4.0, 3.0, 3.5, 3.2, 3.0, 1.0]   # epoch 6 ties epoch 3: not an improvement
    clf = Classifier("fc", ds.input_shape, 2, seed=5, patience=3, refit=False)
    calls = scripted_validation(clf, losses)
    report = clf.fit(X, y)
    assert report.schedule == "validation" and report.mode == "scratch"
    assert report.best_epoch == 3 and report.epochs == 6 and report.stopped_early
    assert report.validation_loss == pytest.approx(3.0)
    assert int(calls.numpy()) == 6
    assert report.n_validation == len(validation_split(X, y, 5)[1]) > 0

    # the same training stopped by its epoch cap after 3 epochs ends with the same weights
    twin = Classifier("fc", ds.input_shape, 2, seed=5, patience=3, refit=False)
    scripted_validation(twin, [3.0, 2.0, 1.0])
    twin_report = twin.fit(X, y, epochs=3)
    assert twin_report.best_epoch == twin_report.epochs == 3 and not twin_report.stopped_early
    assert weights_equal(clf.get_weights(), twin.get_weights())
    # and the numpy inference snapshot follows the restored weights
    assert weights_equal(clf._numpy_weights, clf.get_weights())


def test_a_scratch_fit_refits_on_all_data_for_the_best_number_of_epochs(breast):
    X, y, ds = breast
    # lr: no dropout, whose random state the validated epochs advance
    clf = Classifier("lr", ds.input_shape, 2, seed=5, patience=3)          # refit: the default
    scripted_validation(clf, [5.0, 4.0, 3.0, 3.5, 3.2, 3.0])
    report = clf.fit(X, y)
    assert (report.best_epoch, report.epochs, report.refit_epochs) == (3, 6, 3)
    # the same as training 3 epochs on all 160 examples (same seed, same fit number)
    fixed = Classifier("lr", ds.input_shape, 2, seed=5, schedule="fixed")
    fixed_report = fixed.fit(X, y, epochs=3)
    assert fixed_report.epochs == 3
    assert weights_equal(clf.get_weights(), fixed.get_weights())
    assert weights_equal(clf._numpy_weights, clf.get_weights())
    # without refit the weights are the best epoch's, trained on the split's training part
    kept = Classifier("lr", ds.input_shape, 2, seed=5, patience=3, refit=False)
    scripted_validation(kept, [5.0, 4.0, 3.0, 3.5, 3.2, 3.0])
    assert kept.fit(X, y).refit_epochs == 0
    assert not weights_equal(kept.get_weights(), clf.get_weights())


def test_the_errors_monitor_counts_errors_and_breaks_ties_by_loss(breast):
    X, y, ds = breast
    # epoch:     1    2    3    4    5    6    7
    losses = [0.9, 0.5, 0.7, 0.6, 0.4, 0.8, 0.8]
    errors = [6.0, 5.0, 3.0, 3.0, 4.0, 3.0, 3.0]    # best: epoch 4 (3 errors, lower loss than 3)
    clf = Classifier("fc", ds.input_shape, 2, seed=5, patience=3, monitor="errors", refit=False)
    scripted_validation(clf, losses, errors)
    report = clf.fit(X, y)
    assert (report.best_epoch, report.epochs) == (4, 7)
    assert report.validation_loss == pytest.approx(0.6)
    # the loss monitor picks epoch 5 on the same script
    by_loss = Classifier("fc", ds.input_shape, 2, seed=5, patience=3, refit=False)
    scripted_validation(by_loss, losses, errors)
    assert by_loss.fit(X, y).best_epoch == 5
    with pytest.raises(ValueError, match="monitor"):
        Classifier("fc", ds.input_shape, 2, monitor="vibes")


def test_warm_retrains_are_watched_the_same_way(breast):
    X, y, ds = breast
    clf = Classifier("fc", ds.input_shape, 2, seed=2, warm_epochs=6, patience=2)
    scripted_validation(clf, [9.0, 8.0, 7.0] + [2.0, 1.0, 3.0, 3.0, 3.0])
    clf.fit(X, y, epochs=3)                          # scratch: three improving epochs
    report = clf.fit(X, y, mode="warm")              # warm sees 2.0, 1.0, 3.0, 3.0 -> stops
    assert report.mode == "warm" and report.schedule == "validation"
    assert (report.best_epoch, report.epochs) == (2, 4) and report.stopped_early
    assert report.validation_loss == pytest.approx(1.0)

    # the best warm epoch's weights: same history, warm run capped at 2 epochs
    twin = Classifier("fc", ds.input_shape, 2, seed=2, warm_epochs=6, patience=2)
    scripted_validation(twin, [9.0, 8.0, 7.0, 2.0, 1.0])
    twin.fit(X, y, epochs=3)
    twin_report = twin.fit(X, y, mode="warm", epochs=2)
    assert (twin_report.best_epoch, twin_report.epochs) == (2, 2)
    assert weights_equal(clf.get_weights(), twin.get_weights())


def test_real_validation_loss_is_that_of_the_restored_weights(breast):
    X, y, ds = breast
    clf = Classifier("fc", ds.input_shape, 2, seed=1, max_epochs=60, patience=4, refit=False)
    report = clf.fit(X, y)
    assert 1 <= report.best_epoch <= report.epochs <= 60
    if report.stopped_early:
        assert report.epochs - report.best_epoch == 4
    _, val = validation_split(X, y, 1)
    p = clf.predict_proba(X[val])
    loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(y[val], p)))
    assert report.validation_loss == pytest.approx(loss, rel=1e-4)
    assert 0.0 <= report.train_accuracy <= 1.0


def test_training_is_deterministic_given_the_seed(breast):
    X, y, ds = breast
    a = Classifier("fc", ds.input_shape, 2, seed=7, max_epochs=40)
    b = Classifier("fc", ds.input_shape, 2, seed=7, max_epochs=40)
    for mode in ("scratch", "warm"):
        ra, rb = a.fit(X, y, mode=mode), b.fit(X, y, mode=mode)
        assert (ra.epochs, ra.best_epoch, ra.validation_loss, ra.train_accuracy) == \
               (rb.epochs, rb.best_epoch, rb.validation_loss, rb.train_accuracy)
        assert weights_equal(a.get_weights(), b.get_weights())
        assert ra.schedule == "validation" and ra.best_epoch >= 1


def test_split_is_stratified_deterministic_and_stable():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5)).astype(np.float32)
    y = np.repeat([0, 1, 2], [200, 60, 40])
    train, val = validation_split(X, y, seed=3, fraction=0.15)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 300
    assert list(np.bincount(y[val])) == [30, 9, 6]                      # floor(0.15 n_k)
    again = validation_split(X, y, seed=3, fraction=0.15)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(validation_split(X, y, seed=4)[1], val)   # the seed matters
    # content-based: permuting the rows holds out the same examples
    perm = rng.permutation(300)
    _, val_perm = validation_split(X[perm], y[perm], seed=3, fraction=0.15)
    assert {X[i].tobytes() for i in val} == {X[perm][i].tobytes() for i in val_perm}
    # growing the set by one example moves at most one example per class into validation
    X2 = np.concatenate([X, rng.standard_normal((1, 5)).astype(np.float32)])
    y2 = np.append(y, 0)
    _, val2 = validation_split(X2, y2, seed=3, fraction=0.15)
    assert len(np.setdiff1d(val, val2)) <= 1
    # too small to hold out min_size examples: no split
    assert validation_split(X[:40], y[:40], seed=0, min_size=10) is None


def test_too_small_a_set_trains_on_everything_for_the_fixed_epochs():
    ds = load_dataset("iris", seed=0)
    clf = Classifier("lr", ds.input_shape, 3, seed=0, max_epochs=7, warm_epochs=2)
    report = clf.fit(ds.X_train[:30], ds.y_train[:30])
    assert report.schedule == "fixed" and report.epochs == 7 and report.n_validation == 0
    assert report.best_epoch is None and report.validation_loss is None
    assert clf.fit(ds.X_train[:30], ds.y_train[:30], mode="warm").epochs == 2


def legacy_fit(clf: Classifier, X, y, mode: str):
    """The training loop and ``fit`` as they were before schedules existed (verbatim logic)."""
    if not hasattr(clf, "_legacy_train"):
        def train(X, y, epochs, target_accuracy, seed):
            n = tf.shape(X)[0]
            bs = clf.batch_size
            n_batches = (n + bs - 1) // bs
            variables = clf.model.trainable_variables
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
                        _, p = clf.model(xb, training=True)
                        loss = tf.reduce_mean(
                            keras.losses.sparse_categorical_crossentropy(yb, p))
                    grads = tape.gradient(loss, variables)
                    clf.optimizer.apply_gradients(zip(grads, variables))
                    correct += tf.reduce_sum(tf.cast(tf.argmax(p, axis=1) == yb, tf.float32))
                accuracy = correct / tf.cast(n, tf.float32)
                if accuracy >= target_accuracy:
                    break
            return epoch + 1, accuracy
        spec = tf.TensorSpec((None, *clf.input_shape), tf.float32)
        clf._legacy_train = tf.function(train, input_signature=[
            spec, tf.TensorSpec((None,), tf.int64), tf.TensorSpec((), tf.int32),
            tf.TensorSpec((), tf.float32), tf.TensorSpec((2,), tf.int32)])
    if mode == "scratch":
        clf.model.set_weights(clf._initial_weights)
        clf._new_optimizer()
        n_epochs, target = clf.max_epochs, clf.early_stop_accuracy
    else:
        n_epochs, target = clf.warm_epochs, 2.0
    clf._fits += 1
    done, acc = clf._legacy_train(tf.constant(np.asarray(X, np.float32)),
                                  tf.constant(np.asarray(y, np.int64)),
                                  tf.constant(n_epochs, tf.int32), tf.constant(target, tf.float32),
                                  tf.constant([clf.seed, clf._fits], tf.int32))
    return int(done), float(acc)


def test_accuracy_schedule_reproduces_the_original_training_exactly(breast):
    X, y, ds = breast
    # the models before wave 2 fed inputs as they are: standardize=False
    new = Classifier("fc", ds.input_shape, 2, seed=4, schedule="accuracy", standardize=False)
    old = Classifier("fc", ds.input_shape, 2, seed=4, schedule="accuracy", standardize=False)
    for n, mode in ((120, "scratch"), (121, "warm"), (160, "scratch")):
        report = new.fit(X[:n], y[:n], mode=mode)
        done, acc = legacy_fit(old, X[:n], y[:n], mode)
        assert (report.epochs, report.train_accuracy) == (done, acc)
        assert report.schedule == "accuracy" and report.best_epoch is None
        assert weights_equal(new.get_weights(), old.get_weights())
    assert report.epochs < 100 and report.train_accuracy >= 0.9 and report.stopped_early


def test_schedule_is_configured_saved_and_overridable(tmp_path):
    ds = load_dataset("iris", seed=0)
    assert SCHEDULES == ("validation", "accuracy", "fixed")
    clf = Classifier("lr", ds.input_shape, 3, seed=0, max_epochs=5, schedule="accuracy",
                     patience=3, validation_fraction=0.2, min_validation_size=4)
    assert clf.fit(ds.X_train, ds.y_train, schedule="fixed").schedule == "fixed"
    report = clf.fit(ds.X_train, ds.y_train, schedule="validation")
    assert report.schedule == "validation" and report.n_validation >= 4
    clf.save(tmp_path / "m.npz")
    loaded = Classifier.load(tmp_path / "m.npz")
    assert loaded.config() == clf.config() and loaded.schedule == "accuracy"
    assert loaded.config()["patience"] == 3
    assert Classifier("lr", ds.input_shape, 3).schedule == "validation"      # the default
    with pytest.raises(ValueError, match="schedule"):
        Classifier("lr", ds.input_shape, 3, schedule="sometimes")
    with pytest.raises(ValueError, match="schedule"):
        clf.fit(ds.X_train, ds.y_train, schedule="sometimes")
    assert {"schedule", "best_epoch", "validation_loss", "n_validation",
            "stopped_early", "refit_epochs"} <= set(TrainReport.__dataclass_fields__)
