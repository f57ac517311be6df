"""Keras' callbacks that steer a fit: ReduceLROnPlateau (the same learning rates as Keras' for the same
monitored values), BackupAndRestore (an interrupted fit resumed ends as an uninterrupted one),
LambdaCallback, and the learning rate in History, each checked against Keras itself."""

import numpy as np
import pytest

from cnnlab.callbacks import BackupAndRestore, Callback, LambdaCallback, ReduceLROnPlateau
from cnnlab.engine.config import ConfigError
from habits import DIFFERS, WORKS, habit

from fixtures import small_model
from keras_oracle import keras

TOPIC = "Callbacks"


def keras_model(data):
    model = keras.Sequential([keras.Input(data.image_shape), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def keras_fit(data, epochs, callbacks=()):
    """Keras' own fit on a slice of the same images: its History and what its callbacks saw."""
    x = data.x_train[:300].astype("float32") / 255
    return keras_model(data).fit(x, data.y_train[:300], epochs=epochs, verbose=0, validation_split=0.2,
                                 callbacks=list(callbacks))


class FakeModel:
    """What ReduceLROnPlateau touches: cnnlab's model.learning_rate."""

    _state = None

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class KerasFakeModel:
    """What Keras' ReduceLROnPlateau touches: model.optimizer.learning_rate."""

    def __init__(self, learning_rate):
        self.optimizer = keras.optimizers.SGD(learning_rate=learning_rate)


LOSSES = [1.0, 0.9, 0.9, 0.95, 0.89995, 0.7, 0.7, 0.7, 0.7, 0.7, 0.71, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
PLATEAUS = [dict(), dict(patience=0), dict(patience=1, factor=0.5), dict(patience=1, cooldown=2, factor=0.5),
            dict(patience=2, min_delta=0.1, factor=0.2, min_lr=0.01), dict(patience=0, min_delta=0.0),
            dict(patience=1, mode="max", factor=0.3), dict(patience=1, min_lr=0.05, factor=0.5)]


def learning_rates(callback, model, rate_of, values, monitor):
    callback.set_model(model)
    callback.on_train_begin({})
    logged = []
    for epoch, value in enumerate(values):
        logs = {monitor: value}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    return logged + [rate_of(model)]


@habit("ReduceLROnPlateau(monitor, factor, patience, min_delta, cooldown, min_lr, mode)",
       keras="the learning rate cut when the monitored value stalls; learning_rate in the logs",
       cnnlab="the same sequence of learning rates as Keras' for the same monitored values", topic=TOPIC)
@pytest.mark.parametrize("arguments", PLATEAUS)
def test_reduce_lr_on_plateau_cuts_as_keras_does(arguments):
    monitor = "val_accuracy" if arguments.get("mode") == "max" else "val_loss"
    values = [1 - v for v in LOSSES] if monitor == "val_accuracy" else LOSSES
    ours = learning_rates(ReduceLROnPlateau(monitor=monitor, **arguments), FakeModel(0.1),
                          lambda m: m.learning_rate, values, monitor)
    theirs = learning_rates(keras.callbacks.ReduceLROnPlateau(monitor=monitor, **arguments), KerasFakeModel(0.1),
                            lambda m: float(keras.ops.convert_to_numpy(m.optimizer.learning_rate)), values,
                            monitor)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)  # Keras keeps the rate in float32
    assert len(set(np.round(theirs, 9))) > 1 or arguments == {}  # the cases do cut the rate


@habit("ReduceLROnPlateau in fit", keras="fit(..., callbacks=[ReduceLROnPlateau('loss', patience=0)])",
       cnnlab="the optimizer's rate cut; history['learning_rate'] as Keras' History holds it", topic=TOPIC)
def test_reduce_lr_on_plateau_in_fit(digits):
    def plateau():  # never improves on the first epoch by 10: cut at every later epoch
        return dict(monitor="loss", patience=0, factor=0.5, min_delta=10)

    model = small_model(digits)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(digits.x_train, digits.y_train, epochs=3, verbose=0,
                        callbacks=[ReduceLROnPlateau(**plateau())])
    expected = keras_fit(digits, 3, [keras.callbacks.ReduceLROnPlateau(**plateau())]).history["learning_rate"]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    assert [r["lr"] for r in history.records] == pytest.approx(expected)  # the rate each epoch trained with
    assert model.learning_rate == pytest.approx(0.001 / 4)
    with pytest.raises(ConfigError, match="factor must lie in"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ConfigError, match="fit's schedule sets the learning rate"):
        model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0, schedule="cosine",
                  callbacks=[ReduceLROnPlateau()])


@habit("LambdaCallback(on_epoch_end=lambda epoch, logs: ...)", keras="functions as hooks",
       cnnlab="the same hooks in Keras' order with Keras' logs (batch hooks at the progress points; "
       "on_test_*/on_predict_* refused: fit calls none)", status=WORKS, topic=TOPIC)
def test_lambda_callback_hooks_in_keras_order(digits):
    def recorder(calls):
        return dict(on_train_begin=lambda logs: calls.append(("train_begin",)),
                    on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
                    on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, sorted(logs))),
                    on_train_end=lambda logs: calls.append(("train_end",)))

    ours, theirs = [], []
    small_model(digits).fit(digits.x_train, digits.y_train, epochs=2, verbose=0,
                            callbacks=[LambdaCallback(**recorder(ours))])
    keras_fit(digits, 2, [keras.callbacks.LambdaCallback(**recorder(theirs))])
    assert ours == theirs
    batches = []
    small_model(digits).fit(digits.x_train, digits.y_train, epochs=1, verbose=0,
                            callbacks=[LambdaCallback(on_batch_end=lambda batch, logs: batches.append(batch))])
    assert batches[-1] == 35  # Keras 2's on_batch_end: the training batches (1,149 images, batch 32: 36)
    with pytest.raises(ConfigError, match="'on_test_begin' is not a hook fit calls"):
        LambdaCallback(on_test_begin=lambda logs: None)


class Interrupt(Callback):
    """Raises once, as a crash or a kill would stop a fit, at the start of epoch ``at`` (0-based)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.raised = at, False

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at and not self.raised:
            self.raised = True
            raise RuntimeError("interrupted")


def weights(model):
    return [value.detach().clone() for value in model.module.state_dict().values()]


@habit("BackupAndRestore(backup_dir) after an interrupted fit", keras="fit again with the same callback: "
       "training goes on from the last epoch saved", cnnlab="the same, and exactly: the weights and History "
       "of the resumed fit equal an uninterrupted fit's", topic=TOPIC)
def test_backup_and_restore_resumes_exactly(digits, tmp_path):
    def fit(model, callbacks):  # the schedule's place is part of what is resumed
        return model.fit(digits.x_train, digits.y_train, epochs=4, verbose=0, callbacks=callbacks,
                         schedule="cosine")

    whole = small_model(digits, seed=3)
    whole.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    uninterrupted = fit(whole, [])

    backup = tmp_path / "backup"
    first = small_model(digits, seed=3)
    first.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(first, [BackupAndRestore(backup), Interrupt(2)])
    assert (backup / "checkpoint.pt").is_file()  # two epochs saved

    again = small_model(digits, seed=3)  # a new process: a new model, the same code
    again.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    resumed = fit(again, [BackupAndRestore(backup)])
    assert resumed.epoch == [2, 3]  # as Keras: the History of the epochs this fit ran
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert resumed.history[key] == uninterrupted.history[key][2:], key
    assert all(a.equal(b) for a, b in zip(weights(again), weights(whole)))
    assert not backup.exists()  # removed once the fit ends, as Keras removes it


def test_backup_and_restore_keeps_what_it_did_not_write(digits, tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "notes.txt").write_text("mine")
    small_model(digits).fit(digits.x_train, digits.y_train, epochs=1, verbose=0, callbacks=[BackupAndRestore(backup)])
    assert sorted(p.name for p in backup.iterdir()) == ["notes.txt"]
    with pytest.raises(ConfigError, match="only save_freq='epoch'"):
        BackupAndRestore(backup, save_freq=10)


def test_keras_backup_and_restore_history_is_the_remaining_epochs(digits, tmp_path):
    """The oracle for the History above: Keras' own BackupAndRestore after the same interruption."""
    model, backup = keras_model(digits), keras.callbacks.BackupAndRestore(str(tmp_path / "keras"))
    x = digits.x_train[:200].astype("float32") / 255
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, digits.y_train[:200], epochs=4, verbose=0, callbacks=[backup, KerasInterrupt(2)])
    assert model.fit(x, digits.y_train[:200], epochs=4, verbose=0, callbacks=[backup]).epoch == [2, 3]


class KerasInterrupt(keras.callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise RuntimeError("interrupted")


@habit("the learning rate in History under a schedule", keras="learning_rate logged where a callback sets the "
       "rate (LearningRateScheduler, ReduceLROnPlateau); a constant rate logs none",
       cnnlab="the same, and also under fit's own schedule= and warmup_epochs= (every schedule, onecycle "
       "included): the rate at each epoch's end", status=DIFFERS, topic=TOPIC)
@pytest.mark.parametrize("options", [dict(schedule="onecycle"), dict(schedule="cosine"), dict(schedule="linear"),
                                     dict(warmup_epochs=2)])
def test_learning_rate_in_history_for_every_schedule(digits, options):
    history = small_model(digits).fit(digits.x_train, digits.y_train, epochs=3, verbose=0, **options)
    rates = history.history["learning_rate"]
    assert rates == [record["lr"] for record in history.records] and len(set(rates)) > 1


def test_a_constant_rate_logs_none_as_in_keras(digits):
    history = small_model(digits).fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert "learning_rate" not in history.history
    assert "learning_rate" not in keras_fit(digits, 1).history
