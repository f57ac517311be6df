"""Keras' callbacks in fit: the hooks run, and stopping, checkpoints, logs and schedules take effect."""

import csv

import numpy as np
import pytest

import cnnlab
from cnnlab import callbacks as cb
from cnnlab.engine.config import ConfigError
from cnnlab.engine.steps import NonFiniteLossError
from cnnlab.layers import BatchNormalization, Dense, Flatten, Input


@pytest.fixture(scope="module")
def digits():
    return cnnlab.load_data("digits")


def model_for(data):
    inp = Input(shape=data.image_shape)
    return cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Flatten()(inp)))


class Recorder(cb.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", sorted(logs)))


def test_hooks_run_in_keras_order_with_keras_logs(digits):
    recorder = Recorder()
    model_for(digits).fit(digits.x_train, digits.y_train, epochs=2, verbose=0, callbacks=[recorder])
    keys = ["accuracy", "loss", "val_accuracy", "val_loss"]  # Keras' logs: learning_rate only from schedulers
    names = [call[0] for call in recorder.calls]
    assert names[0] == "train_begin" and names[-1] == "train_end" and names.count("epoch_end") == 2
    assert ("epoch_end", 0, keys) in recorder.calls and ("epoch_end", 1, keys) in recorder.calls
    assert ("batch_end", 35) in recorder.calls  # the last of 36 steps: 1,149 images, batch 32


def test_early_stopping_stops_and_restores(digits):
    stopper = cb.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)  # nothing improves by 10
    history = model_for(digits).fit(digits.x_train, digits.y_train, epochs=5, verbose=0, callbacks=[stopper])
    assert len(history.history["loss"]) == 2 and stopper.stopped_epoch == 1


def test_checkpoint_csv_and_schedule(digits, tmp_path):
    model = model_for(digits)
    log = tmp_path / "log.csv"
    callbacks = [cb.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.cnnlab"), save_best_only=False),
                 cb.CSVLogger(log), cb.LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1))]
    history = model.fit(digits.x_train, digits.y_train, epochs=2, verbose=0, callbacks=callbacks)
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.005])  # set by the scheduler, as in Keras
    with open(log, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert float(rows[1]["val_accuracy"]) == pytest.approx(history.history["val_accuracy"][1])
    saved = cnnlab.load_model(tmp_path / "ckpt-02.cnnlab")
    assert np.array_equal(saved.predict(digits.x_test[:4]), model.predict(digits.x_test[:4]))


def test_terminate_on_nan_stops_quietly_instead_of_raising(digits, capsys):
    class Poison(cb.Callback):  # NaN weights from the second epoch on
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                for parameter in self.model.module.parameters():
                    parameter.data.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError):
        model_for(digits).fit(digits.x_train, digits.y_train, epochs=3, verbose=0, callbacks=[Poison()])
    history = model_for(digits).fit(digits.x_train, digits.y_train, epochs=3, verbose=0,
                                    callbacks=[Poison(), cb.TerminateOnNaN()])
    # As Keras: the first epoch, then the one that stopped with a NaN loss; fit returns normally.
    assert len(history.history["loss"]) == 2 and np.isnan(history.history["loss"][1])
    assert history.epoch == [0, 1]
    assert "Invalid loss, terminating training" in capsys.readouterr().out


def test_initial_epoch_numbers_epochs_as_keras(digits, tmp_path, capsys):
    model = model_for(digits)
    seen = []
    schedule = cb.LearningRateScheduler(lambda epoch: seen.append(epoch) or 0.001)  # Keras' one-argument form
    saver = cb.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.cnnlab"))
    history = model.fit(digits.x_train, digits.y_train, epochs=4, initial_epoch=2, verbose=2,
                        callbacks=[schedule, saver])
    assert history.epoch == [2, 3] and seen == [2, 3]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m-03.cnnlab", "m-04.cnnlab"]
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")] == \
        ["Epoch 3/4", "Epoch 4/4"]


def test_a_missing_monitored_metric_warns_and_verbose_speaks(digits, tmp_path, capsys):
    with pytest.warns(UserWarning, match="conditioned on metric 'val_acc', which is not available; available "
                                         "metrics are: loss, accuracy, val_loss, val_accuracy"):
        model_for(digits).fit(digits.x_train, digits.y_train, epochs=1, verbose=0,
                              callbacks=cb.EarlyStopping(monitor="val_acc"))  # one callback, not a list
    stopper = cb.EarlyStopping(monitor="loss", patience=0, min_delta=10.0, verbose=1)
    saver = cb.ModelCheckpoint(str(tmp_path / "best.cnnlab"), monitor="val_accuracy", save_best_only=True,
                               verbose=1)
    model_for(digits).fit(digits.x_train, digits.y_train, epochs=3, verbose=0, callbacks=[stopper, saver])
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "Epoch 1: val_accuracy improved from -inf to " in out and "saving model to " in out


def test_tensorboard_writes_event_files(digits, tmp_path):
    pytest.importorskip("tensorboard")
    model_for(digits).fit(digits.x_train, digits.y_train, epochs=1, verbose=0,
                          callbacks=[cb.TensorBoard(log_dir=tmp_path / "tb")])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"loss/train", "accuracy/validation", "learning_rate"} <= set(events.Tags()["scalars"])
    assert events.Tags()["tensors"]  # the summary as text


def test_train_tensorboard_option_writes_the_runs_events(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cnnlab.cli.main import main

    assert main(["train", "mlp", "--dataset", "digits", "--epochs", "2", "--out", str(tmp_path),
                 "--tensorboard", "--quiet"]) == 0
    events = EventAccumulator(str(tmp_path / "mlp-digits" / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("accuracy/validation")] == [1, 2]
    assert events.Scalars("learning_rate")[0].value == pytest.approx(0.001)
    assert events.Tags()["tensors"]  # the summary as text


def test_not_a_callback_is_named(digits):
    with pytest.raises(ConfigError, match="callbacks: str is not a cnnlab.callbacks.Callback"):
        model_for(digits).fit(digits.x_train, digits.y_train, epochs=1, verbose=0, callbacks=["early"])


def test_a_scheduled_learning_rate_keeps_the_biases_scale(digits):
    inp = Input(shape=digits.image_shape)  # a batchnorm: its bias is what bias_lr_scale scales
    model = cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(BatchNormalization()(Flatten()(inp))))
    scheduler = cb.LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1))
    model.fit(digits.x_train, digits.y_train, epochs=2, verbose=0, callbacks=[scheduler], bias_lr_scale=4.0)
    weights, biases = (group["lr"] for group in model._state_now().optimizer.param_groups)
    assert (weights, biases) == (pytest.approx(0.005), pytest.approx(0.02))  # the setter scales each group


def test_the_accuracy_keeps_the_name_compile_gave_it(digits):
    """tf.keras' metrics=["acc"] logs acc and val_acc (Keras names a metric's logs after it): so do fit's
    History and the callbacks' logs, and EarlyStopping can monitor val_acc."""
    seen = []

    class Keys(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(logs))

    model = model_for(digits)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    history = model.fit(digits.x_train, digits.y_train, epochs=2, verbose=0,
                        callbacks=[Keys(), cb.EarlyStopping(monitor="val_acc", patience=5)])
    assert sorted(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert seen == [["acc", "loss", "val_acc", "val_loss"]] * 2
    assert "<th>acc</th>" in history._repr_html_()


def test_keras_names_the_accuracy_logs_the_same_way():
    """The oracle for the test above: Keras 3's own History keys for metrics=["acc"]."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", minversion="3.0")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    rng = np.random.default_rng(0)
    history = model.fit(rng.random((20, 4)), rng.integers(0, 3, 20), validation_split=0.2, epochs=1, verbose=0)
    assert sorted(history.history) == ["acc", "loss", "val_acc", "val_loss"]
