"""Keras' losses: loss objects, functions and names with from_logits and label_smoothing, class_weight and
sample_weight, each checked against Keras 3 itself (same arrays; same initial weights, batch and SGD step)."""

import numpy as np
import pytest

import cnnlab
from cnnlab import losses
from cnnlab.engine.config import ConfigError
from cnnlab.engine.inputs import InputError
from cnnlab.layers import Dense, Input
from cnnlab.utils import to_categorical
from habits import DIFFERS, REFUSED, WORKS, habit

from keras_oracle import keras

RNG = np.random.default_rng(7)
LOGITS = RNG.normal(size=(12, 5)).astype(np.float32) * 3
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)
SIGMOIDS = (1 / (1 + np.exp(-LOGITS[:, :1]))).astype(np.float32)
LABELS = RNG.integers(0, 5, size=12)
ONE_HOT = to_categorical(LABELS, 5)
BITS = RNG.integers(0, 2, size=12)
WEIGHTS = RNG.uniform(0, 3, size=12).astype(np.float32)


def keras_value(loss, y_true, y_pred, sample_weight=None) -> float:
    return float(loss(y_true, y_pred, sample_weight=sample_weight))


@habit("loss objects with from_logits and label_smoothing",
       keras="keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)",
       cnnlab="cnnlab.losses: the same classes, functions and names, with Keras' values", topic="Losses")
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_categorical_losses_equal_keras_on_the_same_arrays(from_logits, smoothing):
    outputs = LOGITS if from_logits else PROBS
    ours = losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
    theirs = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
    assert ours(ONE_HOT, outputs) == pytest.approx(keras_value(theirs, ONE_HOT, outputs), rel=1e-5)
    assert ours(ONE_HOT, outputs, WEIGHTS) == pytest.approx(keras_value(theirs, ONE_HOT, outputs, WEIGHTS), rel=1e-5)
    sparse = losses.SparseCategoricalCrossentropy(from_logits=from_logits)(LABELS, outputs)
    assert sparse == pytest.approx(keras_value(keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                                               LABELS, outputs), rel=1e-5)
    function = keras.losses.categorical_crossentropy(ONE_HOT, outputs, from_logits, smoothing)
    assert losses.categorical_crossentropy(ONE_HOT, outputs, from_logits, smoothing) == pytest.approx(
        float(keras.ops.mean(function)), rel=1e-5)


@habit("BinaryCrossentropy for two classes", keras="Dense(1, activation='sigmoid'); loss='binary_crossentropy'",
       cnnlab="the same (one unit, labels 0/1); multi-label (several sigmoid units) is refused by name",
       status=DIFFERS, topic="Losses")
@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_loss_equals_keras_and_multi_label_is_refused(from_logits):
    outputs = LOGITS[:, :1] if from_logits else SIGMOIDS
    for smoothing in (0.0, 0.1):
        ours = losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=smoothing)(BITS, outputs)
        theirs = keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
        assert ours == pytest.approx(keras_value(theirs, BITS[:, None].astype(np.float32), outputs), rel=1e-5)
    with pytest.raises(ConfigError, match="multi-label"):
        losses.BinaryCrossentropy()(np.zeros((12, 5)), PROBS)


def test_compile_takes_names_functions_and_objects_and_refuses_others():
    for given in ("categorical_crossentropy", "CategoricalCrossentropy", losses.categorical_crossentropy,
                  losses.CategoricalCrossentropy()):
        assert losses.get(given).name == "categorical_crossentropy"
    assert "label_smoothing" not in losses.get("categorical_crossentropy").options()  # a recipe's own stays
    assert losses.CategoricalCrossentropy(label_smoothing=0.0).options()["label_smoothing"] == 0.0
    with pytest.raises(ConfigError, match="unsupported loss 'mse'"):
        losses.get("mse")
    with pytest.raises(ConfigError, match="argument 'reduction'='sum' is not supported"):
        losses.CategoricalCrossentropy(reduction="sum")


def dense_pair(activation: str, seed: int = 3):
    """A cnnlab model (64 -> 16 relu -> 10) and Keras' same model with the same initial weights."""
    inp = Input(shape=(64,))
    ours = cnnlab.Model(inputs=inp, outputs=Dense(10, activation=activation)(Dense(16, activation="relu")(inp)),
                        seed=seed)
    ours.build((64,))
    k_in = keras.Input(shape=(64,))
    theirs = keras.Model(k_in, keras.layers.Dense(10, activation=activation)(
        keras.layers.Dense(16, activation="relu")(k_in)))
    state = {k: v.detach().numpy() for k, v in ours.module.state_dict().items()}
    theirs.set_weights([state["blocks.0.linear.weight"].T, state["blocks.0.linear.bias"],
                        state["blocks.1.linear.weight"].T, state["blocks.1.linear.bias"]])
    return ours, theirs


def weights_of(model) -> list[np.ndarray]:
    state = {k: v.detach().numpy() for k, v in model.module.state_dict().items()}
    return [state["blocks.0.linear.weight"].T, state["blocks.0.linear.bias"],
            state["blocks.1.linear.weight"].T, state["blocks.1.linear.bias"]]


@pytest.fixture(scope="module")
def batch():
    data = cnnlab.load_data("digits")
    return data.x_train[:48].reshape(48, -1).astype(np.float32) / 255, data.y_train[:48]


def one_step(activation, loss, keras_loss, x, y, **weighting):
    """One SGD step on the whole batch, in both; ``(cnnlab loss, Keras loss, cnnlab weights, Keras weights)``."""
    ours, theirs = dense_pair(activation)
    ours.compile(optimizer=cnnlab.optimizers.SGD(0.5), loss=loss)
    history = ours.fit(x, y, batch_size=len(x), epochs=1, verbose=0, validation_split=0, **weighting)
    theirs.compile(optimizer=keras.optimizers.SGD(0.5), loss=keras_loss)
    keras_loss_value = theirs.train_on_batch(x, y, **weighting)
    return history.history["loss"][0], float(np.ravel(keras_loss_value)[0]), weights_of(ours), theirs.get_weights()


def assert_same_step(result):
    ours_loss, keras_loss, ours_weights, keras_weights = result
    assert ours_loss == pytest.approx(keras_loss, rel=1e-5)
    for mine, theirs in zip(ours_weights, keras_weights, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


@habit("class_weight", keras="fit(x, y, class_weight={0: 5.0, 3: 0.5})",
       cnnlab="the same weighted loss (per-image losses times weights, summed over the batch size) and the "
              "same update; accuracy and validation stay unweighted", status=DIFFERS, topic="Losses")
def test_class_weight_gives_keras_loss_and_update(batch):
    x, y = batch
    assert_same_step(one_step("softmax", "sparse_categorical_crossentropy", "sparse_categorical_crossentropy", x, y,
                              class_weight={0: 5.0, 3: 0.5, 7: 2.0}))


@habit("sample_weight", keras="fit(x, y, sample_weight=w)", cnnlab="the same weighted loss and update; "
       "accuracy stays unweighted (Keras weighs it)", status=DIFFERS, topic="Losses")
def test_sample_weight_gives_keras_loss_and_update(batch):
    x, y = batch
    weights = np.linspace(0.1, 2.0, len(y)).astype(np.float32)
    assert_same_step(one_step("softmax", "categorical_crossentropy", "categorical_crossentropy", x,
                              to_categorical(y, 10), sample_weight=weights))
    with pytest.raises(InputError, match="class_weight or sample_weight, not both"):
        dense_pair("softmax")[0].fit(x, y, class_weight={0: 2.0}, sample_weight=weights, verbose=0)


@habit("from_logits=True on a linear output", keras="Dense(10); SparseCategoricalCrossentropy(from_logits=True)",
       cnnlab="the same loss and update", topic="Losses")
def test_from_logits_on_a_linear_output_equals_keras(batch):
    x, y = batch
    assert_same_step(one_step("linear", losses.SparseCategoricalCrossentropy(from_logits=True),
                              keras.losses.SparseCategoricalCrossentropy(from_logits=True), x, y))


@habit("from_logits=True on a softmax output", keras="a second softmax over the probabilities (a slow start)",
       cnnlab="the same as Keras: the same loss and update", topic="Losses")
def test_from_logits_on_a_softmax_output_equals_keras(batch):
    x, y = batch
    assert_same_step(one_step("softmax", losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
                              keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), x,
                              to_categorical(y, 10)))


@habit("probabilities loss on a linear output", keras="Dense(10) with loss='categorical_crossentropy' trains on "
       "meaningless values", cnnlab="refused, naming the output layer: add a softmax or from_logits=True",
       status=REFUSED, topic="Losses")
def test_a_linear_output_read_as_probabilities_is_refused(batch):
    x, y = batch
    model = dense_pair("linear")[0]
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(InputError, match="is linear .* from_logits=True"):
        model.fit(x, y, epochs=1, verbose=0)


@habit("validation loss with label smoothing", keras="val_loss is the compiled loss (smoothed too)",
       cnnlab="the same for a compiled loss", status=WORKS, topic="Losses")
def test_validation_loss_is_the_compiled_loss(batch):
    x, y = batch
    model = dense_pair("softmax")[0]
    model.compile(optimizer="sgd", loss=losses.SparseCategoricalCrossentropy(label_smoothing=0.3))
    model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y))
    probabilities = model.predict(x)
    expected = losses.CategoricalCrossentropy(label_smoothing=0.3)(to_categorical(y, 10), probabilities)
    assert model.evaluate(x, y)[0] == pytest.approx(expected, rel=1e-5)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")  # fit's own label_smoothing then
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), label_smoothing=0.2)
    assert model.evaluate(x, y)[0] == pytest.approx(history.history["val_loss"][-1], rel=1e-6)


@habit("binary classifier", keras="Dense(1, activation='sigmoid'); fit with loss='binary_crossentropy'",
       cnnlab="the same loss and update; predict gives (N, 1) probabilities", topic="Losses")
def test_binary_classifier_step_equals_keras(batch):
    x, y = batch
    bits = (y % 2).astype(np.float32)
    inp = Input(shape=(64,))
    ours = cnnlab.Model(inputs=inp, outputs=Dense(1, activation="sigmoid")(inp), seed=2)
    ours.build((64,))
    k_in = keras.Input(shape=(64,))
    theirs = keras.Model(k_in, keras.layers.Dense(1, activation="sigmoid")(k_in))
    state = {k: v.detach().numpy() for k, v in ours.module.state_dict().items()}
    theirs.set_weights([state["blocks.0.linear.weight"].T, state["blocks.0.linear.bias"]])
    ours.compile(optimizer=cnnlab.optimizers.SGD(0.5), loss="binary_crossentropy")
    loss = ours.fit(x, bits, batch_size=len(x), epochs=1, verbose=0, validation_split=0).history["loss"][0]
    theirs.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    assert loss == pytest.approx(float(np.ravel(theirs.train_on_batch(x, bits[:, None]))[0]), rel=1e-5)
    np.testing.assert_allclose(ours.module.state_dict()["blocks.0.linear.weight"].numpy().T,
                               theirs.get_weights()[0], rtol=1e-4, atol=1e-6)
    assert ours.predict(x[:3]).shape == (3, 1)
