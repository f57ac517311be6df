"""A Keras user's habits: compile, positional fit, verbose, evaluate's list, optimizers, to_categorical."""

import numpy as np
import pytest

import cnnlab
from cnnlab import optimizers
from cnnlab.engine.config import ConfigError
from cnnlab.engine.inputs import InputError
from cnnlab.layers import Dense, Flatten, Input
from cnnlab.utils import to_categorical
from habits import habit


@pytest.fixture(scope="module")
def digits():
    return cnnlab.load_data("digits")


def small_model(data):
    inp = Input(shape=data.image_shape)
    return cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Flatten()(inp)))


@habit("the course's compile, fit (positional), evaluate, predict",
       keras="compile(optimizer='Adam', ...); fit(x, y, 16, 4, 2, None, 0.2)",
       cnnlab="the same: Keras' positional order, verbose=2 prints one line per epoch", topic="Training")
def test_the_course_sequence_with_keras_names(digits, capsys):
    model = small_model(digits)
    model.compile(optimizer="Adam", loss="categorical_crossentropy", metrics=["accuracy"])
    y_train, y_test = to_categorical(digits.y_train, 10), to_categorical(digits.y_test)
    history = model.fit(digits.x_train, y_train, 16, 4, 2, None, 0.2)  # Keras' positional order
    assert len(history.history["val_accuracy"]) == 4
    out = capsys.readouterr().out.splitlines()  # stdout, as Keras prints
    assert [line for line in out if line.startswith("Epoch ")] == [f"Epoch {i}/4" for i in (1, 2, 3, 4)]
    finished = [line for line in out if line.startswith("72/72 - ")]  # 1,149 images, batch 16
    assert len(finished) == 4 and " - val_accuracy: " in finished[0]  # verbose=2: one line per epoch
    loss, accuracy = model.evaluate(digits.x_test, y_test)
    assert 0.5 < accuracy <= 1 and loss > 0
    assert model.predict(digits.x_test[:3]).shape == (3, 10)


@habit("a loss that does not match the labels' format", keras="an error at fit",
       cnnlab="an error naming the loss to use (or to_categorical)", topic="Training")
def test_loss_must_agree_with_the_label_format(digits):
    model = small_model(digits)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(InputError, match="expects one-hot labels .* use loss='sparse_categorical_crossentropy'"):
        model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(InputError, match="expects class indices"):
        model.fit(digits.x_train, to_categorical(digits.y_train), epochs=1, verbose=0)


def test_optimizer_objects_and_keras2_lr(digits):
    assert optimizers.Adam(learning_rate=0.01).options() == {"optimizer": "adam", "lr": 0.01}
    assert optimizers.Adam(lr=0.02).options()["lr"] == 0.02
    assert optimizers.SGD(0.1, momentum=0.9, nesterov=True).options() == {
        "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True}
    model = small_model(digits)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert model.history.records[0]["lr"] == 0.05 and "lr" not in model.history.history
    for bad, expect in ((lambda: model.compile(optimizer="adagrad"), "unknown optimizer 'adagrad'"),
                        (lambda: model.compile(loss="mse"), "unsupported loss 'mse'"),
                        (lambda: model.compile(metrics=["auc"]), "unsupported metric 'auc'"),
                        (lambda: optimizers.Adam(beta_1=0.5), "argument 'beta_1'=0.5 is not supported")):
        with pytest.raises(ConfigError, match=expect):
            bad()


def test_verbose_and_epochs_arguments(digits):
    model = small_model(digits)
    with pytest.raises(InputError, match="verbose must be 0"):
        model.fit(digits.x_train, digits.y_train, epochs=1, verbose=3)
    history = model.fit(digits.x_train, digits.y_train, epochs=3, initial_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 1  # Keras: epochs is the last epoch's number
    with pytest.raises(InputError, match="epochs .* must be larger than initial_epoch"):
        model.fit(digits.x_train, digits.y_train, epochs=2, initial_epoch=2, verbose=0)


def test_to_categorical_as_keras():
    assert to_categorical([0, 2, 1]).tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert to_categorical(np.array([[1], [0]]), 3).shape == (2, 3)
    with pytest.raises(InputError, match="does not fit num_classes=2"):
        to_categorical([0, 2], 2)


def test_save_and_load_model_round_trip(digits, tmp_path):
    model = small_model(digits)
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    path = model.save(tmp_path / "net.cnnlab")
    again = cnnlab.load_model(path)
    assert np.array_equal(again.predict(digits.x_test[:8]), model.predict(digits.x_test[:8]))
    assert again.count_params() == model.count_params()
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:  # a plain safetensors file, nothing pickled
        assert handle.metadata()["format"] == "cnnlab-model/1"
    model.save(path)  # replacing its own file is fine
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    with pytest.raises(cnnlab.CnnlabError, match="not a cnnlab model file; choose another name"):
        model.save(other)
    assert other.read_text() == "mine"
    with pytest.raises(cnnlab.CnnlabError, match="not a cnnlab model file"):
        cnnlab.load_model(other)


def test_load_model_from_a_run_directory(digits, tmp_path):
    from cnnlab.cli.main import main

    assert main(["train", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path), "--quiet"]) == 0
    model = cnnlab.load_model(tmp_path / "mlp-digits")
    assert model.class_names == [str(i) for i in range(10)]
    assert model.predict(digits.x_test[:2]).shape == (2, 10)


def keras_rmsprop(weights, gradients, lr=0.001, rho=0.9, epsilon=1e-7):
    """Keras 3's RMSprop update (keras/src/optimizers/rmsprop.py), in numpy."""
    velocity = np.zeros_like(weights)
    for gradient in gradients:
        velocity = rho * velocity + (1 - rho) * gradient ** 2
        weights = weights - lr * gradient / np.sqrt(velocity + epsilon)
    return weights


def test_rmsprop_follows_keras_update_rule():
    import torch

    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.optim import make_optimizer

    assert optimizers.get("RMSprop").options() == {"optimizer": "rmsprop", "lr": 0.001}
    with pytest.raises(ConfigError, match="'centered'"):
        optimizers.RMSprop(centered=True)
    rng = np.random.default_rng(0)
    gradients = rng.normal(0, 1, (20, 50)).astype(np.float64)
    start = rng.normal(0, 1, 50)
    param = torch.nn.Parameter(torch.tensor(start))
    optimizer = make_optimizer([param], TrainConfig(optimizer="rmsprop", lr=0.01))
    for gradient in gradients:
        param.grad = torch.tensor(gradient)
        optimizer.step()
    expected = keras_rmsprop(start, gradients, lr=0.01)
    np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_dataset_unpacks_as_keras_and_has_short_reprs(digits):
    (x_train, y_train), (x_test, y_test) = digits
    assert x_train is digits.x_train and y_test is digits.y_test and x_train.dtype == np.uint8
    assert repr(digits) == "<Dataset 'digits': 1,437 train / 360 test images 8x8x1, 10 classes>"
    html = digits._repr_html_()
    assert "<table>" in html and "<td>143</td>" in html and len(html) < 2000


def test_show_samples_never_touches_pyplot_or_the_backend(digits):
    import subprocess
    import sys

    # In a fresh interpreter: the figure draws itself as PNG and pyplot is never imported.
    code = ("import sys, matplotlib; matplotlib.use('svg'); import cnnlab; "
            "fig = cnnlab.show_samples(cnnlab.load_data('digits'), n=4); png = fig._repr_png_(); "
            "assert png.startswith(b'\\x89PNG'), png[:8]; "
            "assert 'matplotlib.pyplot' not in sys.modules; assert matplotlib.get_backend() == 'svg'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


def test_import_cnnlab_gives_its_submodules_as_import_keras_does():
    import subprocess
    import sys

    code = ("import cnnlab as keras; keras.layers.Dense; keras.optimizers.Adam; keras.callbacks.EarlyStopping; "
            "keras.utils.to_categorical; import sys; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr  # and still no torch on import


def test_a_functional_model_predicts_before_fit_and_sequential_starts_from_input(digits):
    model = small_model(digits)
    assert model.predict(digits.x_test[:3]).shape == (3, 10)  # Keras builds a functional model at once
    loss, accuracy = model.evaluate(digits.x_test, digits.y_test)
    assert 0 <= accuracy < 0.4 and loss > 1  # untrained: about chance
    sequential = cnnlab.Sequential([Input(shape=(8, 8, 1))])
    sequential.add(Flatten())
    with pytest.raises(Exception, match="expected layers"):
        sequential.add("dense")
    sequential.add(Dense(10, activation="softmax"))
    assert sequential.count_params() == 650 and sequential.predict(digits.x_test[0]).shape == (1, 10)


def test_history_holds_keras_keys_and_records_hold_the_rest(digits):
    history = small_model(digits).fit(digits.x_train, digits.y_train, epochs=1, verbose=0, validation_split=0.0)
    assert list(history.history) == ["loss", "accuracy"]  # no val_* without validation, no timings
    assert {"time", "images_per_second", "lr"} <= set(history.records[0])
