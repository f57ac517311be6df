"""The model as an object, against Keras 3 (its torch backend) on the same network and weights: model(x),
get_weights/set_weights (both ways), model.optimizer's learning rate, get_layer(index=), summary's
arguments, get_config/from_config/to_json, inputs/outputs, and feature models sharing trained weights."""

import gc
import json

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.engine.config import ConfigError
from cnnlab.engine.inputs import InputError
from cnnlab.layers import (
    Add,
    BatchNormalization,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    Input,
    MaxPooling2D,
    SeparableConv2D,
)
from cnnlab.models import model_from_json
from cnnlab.net.spec import SpecError
from habits import DIFFERS, habit

from keras_oracle import keras, keras_model

TOPIC = "The model as an object"


def conv_net(data, seed=3):
    """Conv, batchnorm, depthwise, separable, pooling, dense: every weight layout Keras has for them."""
    inp = Input(shape=data.image_shape)
    x = Conv2D(6, 3, padding="same", activation="relu", name="conv")(inp)
    x = BatchNormalization(name="bn")(x)
    x = DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(x)
    x = SeparableConv2D(5, 3, activation="relu", name="separable")(x)
    x = MaxPooling2D(name="pool")(x)
    x = Flatten(name="flatten")(x)
    x = Dense(16, activation="relu", name="hidden")(x)
    return cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax", name="out")(x), seed=seed)


def branched_net(data):
    """A graph whose Keras layer order (deepest first) differs from the order its layers were made in."""
    inp = Input(shape=data.image_shape)
    a = Conv2D(3, 3, padding="same", name="a")(inp)
    c = Conv2D(3, 3, padding="same", name="c")(a)
    b = Conv2D(3, 3, padding="same", name="b")(inp)  # made before d, listed after it by Keras
    d = Conv2D(3, 3, padding="same", name="d")(c)
    x = Flatten(name="flatten")(Add(name="add")([d, b]))
    return cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax", name="out")(x), seed=5)


@pytest.fixture(scope="module")
def trained(digits):
    """A conv net after one epoch: batchnorm's moving statistics are no longer 0 and 1."""
    model = conv_net(digits)
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    return model


def keras_twin(model):
    """The Keras model of the same layers (named alike), with Keras' own random initial weights."""
    return keras_model(model.spec)[0]


def probabilities(keras_net, x):
    return keras_net.predict(x.astype("float32") / 255, verbose=0)


@habit("get_weights into a Keras model", keras="keras_model.set_weights(model.get_weights())",
       cnnlab="the same arrays, Keras' order and shapes (HWIO kernels, (in, out) dense kernels, batchnorm's "
              "gamma, beta, moving mean and variance): Keras predicts what cnnlab does", topic=TOPIC)
def test_get_weights_are_keras_weights(trained, digits):
    twin = keras_twin(trained)
    weights = trained.get_weights()
    assert [w.shape for w in weights] == [tuple(w.shape) for w in twin.get_weights()]
    twin.set_weights(weights)
    x = digits.x_test[:64]
    np.testing.assert_allclose(probabilities(twin, x), trained.predict(x), atol=2e-5)
    for layer in twin.layers[1:]:  # layer by layer too, each in Keras' order
        got = trained.get_layer(layer.name).get_weights()
        assert [w.shape for w in got] == [tuple(w.shape) for w in layer.get_weights()]


@habit("Keras weights into cnnlab", keras="model.set_weights(keras_model.get_weights()); "
       "model.get_layer(n).set_weights(...)", cnnlab="the same: cnnlab then predicts what Keras does", topic=TOPIC)
def test_keras_weights_set_into_cnnlab(digits):
    model = conv_net(digits, seed=11)
    twin = keras_twin(model)
    generator = np.random.default_rng(0)
    bn = twin.get_layer("bn")  # moving statistics that are not 0 and 1, so their order matters
    bn.set_weights([generator.uniform(0.5, 2, w.shape).astype("float32") for w in bn.get_weights()])
    model.set_weights(twin.get_weights())
    x = digits.x_test[:64]
    np.testing.assert_allclose(model.predict(x), probabilities(twin, x), atol=2e-5)
    fresh = conv_net(digits, seed=12)
    for layer in twin.layers[1:]:
        fresh.get_layer(layer.name).set_weights(layer.get_weights())
    np.testing.assert_allclose(fresh.predict(x), probabilities(twin, x), atol=2e-5)


@habit("get_weights of a branched graph", keras="model.get_weights() in model.layers' order",
       cnnlab="the same order (deepest layer first, as Keras lists a graph's layers)", topic=TOPIC)
def test_weights_follow_keras_layer_order_in_a_graph(digits):
    model = branched_net(digits)
    twin = keras_twin(model)
    assert [w.shape for w in model.get_weights()] == [tuple(w.shape) for w in twin.get_weights()]
    twin.set_weights(model.get_weights())
    x = digits.x_test[:32]
    np.testing.assert_allclose(probabilities(twin, x), model.predict(x), atol=2e-5)
    names = [layer.name for layer in twin.layers if layer.get_weights()]
    assert names == ["a", "c", "d", "b", "out"]  # b was made before d


@habit("set_weights with wrong shapes", keras="ValueError naming the layer",
       cnnlab="an InputError naming the layer, the weight and its Keras shape; nothing is changed", topic=TOPIC)
def test_wrong_weights_are_refused_by_layer(digits):
    model = conv_net(digits)
    before = model.get_weights()
    wrong = [w.copy() for w in before]
    wrong[-2] = np.zeros((16, 9), "float32")
    with pytest.raises(InputError, match=r"layer 'out' weight 'kernel' has shape \(16, 10\).*got \(16, 9\)"):
        model.set_weights(wrong)
    with pytest.raises(InputError, match=r"expected 15 weights .* got 14"):
        model.set_weights(before[:-1])
    with pytest.raises(InputError, match=r"layer 'conv' weight 'kernel' has shape \(3, 3, 1, 6\)"):
        model.get_layer("conv").set_weights([np.zeros((6, 1, 3, 3)), np.zeros(6)])  # torch's layout
    with pytest.raises(InputError, match="NaN"):
        model.get_layer("hidden").set_weights([np.full((45, 16), np.nan), np.zeros(16)])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    orphan = conv_net(digits).get_layer("conv")  # its model (which holds its weights) is gone at once
    gc.collect()
    with pytest.raises(SpecError, match="the model this layer belonged to no longer exists"):
        orphan.get_weights()


@habit("call the model on a batch", keras="model(x) (a tensor; on the torch backend one that requires grad)",
       cnnlab="model(x): a torch tensor; from numpy, predict's probabilities without gradients (so .numpy() and "
              "np.argmax work); from a torch tensor, gradients flow to the weights and to x", status=DIFFERS,
       topic=TOPIC)
def test_calling_the_model(trained, digits):
    x = digits.x_test[:8]
    out = trained(x)
    assert isinstance(out, torch.Tensor) and out.shape == (8, 10)
    np.testing.assert_allclose(out.numpy(), trained.predict(x), atol=1e-6)
    assert np.array_equal(np.argmax(out, axis=1), trained.predict(x).argmax(1))
    twin = keras_twin(trained)
    twin.set_weights(trained.get_weights())
    images = torch.tensor(x.astype("float32") / 255, requires_grad=True)
    expected = twin(images).detach().cpu().numpy()
    got = trained(images)
    np.testing.assert_allclose(got.detach().cpu().numpy(), expected, atol=2e-5)
    got[:, 3].sum().backward()  # a saliency map: the gradient reaches the images
    assert images.grad is not None and images.grad.shape == x.shape and images.grad.abs().sum() > 0
    with pytest.raises(InputError, match=r"expected a batch of shape \(N, 8, 8, 1\)"):
        trained(torch.zeros(2, 1, 8, 8))


@habit("model.optimizer.learning_rate", keras="read it; model.optimizer.learning_rate = 1e-4 (or .assign) "
       "between fits", cnnlab="the same: the next fit trains at the new rate; the value is a float with Keras' "
       "assign()", topic=TOPIC)
def test_optimizer_learning_rate_is_assignable(digits):
    model = conv_net(digits)
    model.compile(optimizer=cnnlab.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    assert model.optimizer.learning_rate == pytest.approx(0.01) and model.optimizer.name == "adam"
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert model.history.records[0]["lr"] == pytest.approx(0.01)
    model.optimizer.learning_rate = 1e-4
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4) and model.learning_rate == pytest.approx(1e-4)
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert model.history.records[0]["lr"] == pytest.approx(1e-4)
    model.optimizer.learning_rate.assign(5e-5)  # Keras' variable habit
    assert model.optimizer.learning_rate.numpy() == pytest.approx(5e-5)
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert model.history.records[0]["lr"] == pytest.approx(5e-5)
    unfitted = conv_net(digits)
    unfitted.optimizer.learning_rate = 0.003  # before any fit: the first fit starts there
    unfitted.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    assert unfitted.history.records[0]["lr"] == pytest.approx(0.003)
    with pytest.raises(ConfigError, match="expected a positive number"):
        model.optimizer.learning_rate = -1


@habit("get_layer by index", keras="model.get_layer(index=1)", cnnlab="the same (layers[0] is the InputLayer "
       "of a functional model)", topic=TOPIC)
def test_get_layer_by_index(digits):
    model = conv_net(digits)
    twin = keras_twin(model)
    assert [model.get_layer(index=i).name for i in range(len(twin.layers))] == [layer.name for layer in twin.layers]
    assert model.get_layer(index=2) is model.get_layer("bn")
    with pytest.raises(SpecError, match="index 99 but model 'functional' has 9 layers"):
        model.get_layer(index=99)
    with pytest.raises(SpecError, match="a layer name or an index"):
        model.get_layer("conv", index=1)


@habit("summary's print_fn and line_length", keras="model.summary(print_fn=f, line_length=n)",
       cnnlab="the same: print_fn gets the whole text in one call, as Keras 3 calls it (tf.keras: per line)",
       topic=TOPIC)
def test_summary_print_fn_and_line_length(digits, capsys):
    model = conv_net(digits)
    calls, keras_calls = [], []
    model.summary(print_fn=calls.append)
    keras_twin(model).summary(print_fn=keras_calls.append)
    assert len(calls) == len(keras_calls) == 1 and "Total params" in calls[0]
    assert capsys.readouterr().out == ""
    for width in (70, 160):
        text = []
        model.summary(print_fn=text.append, line_length=width)
        rules = [line for line in text[0].splitlines() if line and set(line) <= {"_", "="}]
        assert rules and {len(line) for line in rules} == {width}
        assert max(len(line) for line in text[0].splitlines()) <= max(width, 80)
    with pytest.raises(ConfigError, match="argument 'layer_range' is not supported"):
        model.summary(layer_range=(0, 2))


@habit("summary(show_trainable=True)", keras="a Trainable column: Y, N, or - for a layer without weights",
       cnnlab="the same column, the same marks", topic=TOPIC)
def test_summary_shows_which_layers_train(digits, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # Keras' table is as wide as the terminal: no cell cut short
    model = conv_net(digits)
    model.get_layer("bn").trainable = False
    twin = keras_twin(model)
    twin.get_layer("bn").trainable = False
    texts, keras_texts = [], []
    model.summary(print_fn=texts.append, show_trainable=True)
    twin.summary(print_fn=keras_texts.append, show_trainable=True)

    def marks(text, cells):
        rows = {}
        for line in text.splitlines():
            parts = cells(line)
            if parts and "(" in parts[0] and not parts[0].strip().startswith("Layer (type)"):
                rows[parts[0].strip().split(" (")[0]] = parts[-1].strip()
        return rows

    ours = marks(texts[0], lambda line: line.split("   ") if line.startswith(" ") else None)
    theirs = marks(keras_texts[0], lambda line: [cell.strip() for cell in line.strip("│ ").split("│")]
                   if line.startswith("│") else None)
    assert ours == {name: mark for name, mark in theirs.items() if name != "input"}  # Keras lists its input too
    assert theirs["bn"] == "N" and theirs["conv"] == "Y" and theirs["flatten"] == "-"


@habit("get_config / from_config / to_json", keras="Model.from_config(model.get_config()); "
       "model_from_json(model.to_json())", cnnlab="the same; the config is cnnlab's spec (name, input, layers), "
       "not Keras' JSON", status=DIFFERS, topic=TOPIC)
def test_config_round_trips(trained, digits):
    config = trained.get_config()
    assert config == trained.spec.to_dict() and config["layers"][0]["kind"] == "conv2d"
    copy = cnnlab.Model.from_config(config)
    assert copy.spec.to_dict() == config
    copy.set_weights(trained.get_weights())
    x = digits.x_test[:16]
    np.testing.assert_allclose(copy.predict(x), trained.predict(x), atol=1e-6)
    text = trained.to_json()
    assert json.loads(text) == config
    assert model_from_json(text).get_config() == config
    chain = cnnlab.Sequential([Input(shape=(8, 8, 1)), Flatten(), Dense(10, activation="softmax")])
    again = cnnlab.Sequential.from_config(chain.get_config())
    assert isinstance(again, cnnlab.Sequential) and again.get_config() == chain.get_config()
    with pytest.raises(ConfigError, match="not valid JSON"):
        model_from_json("{'layers': ")


@habit("model.inputs / outputs / input_shape", keras="model.inputs, model.outputs, model.input_shape, "
       "model.output_shape", cnnlab="the same symbolic tensors and shapes", topic=TOPIC)
def test_inputs_outputs_and_shapes(digits):
    model = conv_net(digits)
    twin = keras_twin(model)
    assert model.input_shape == tuple(twin.input_shape) == (None, 8, 8, 1)
    assert model.output_shape == tuple(twin.output_shape) == (None, 10)
    assert model.inputs[0] is model.input and model.outputs[0] is model.get_layer("out").output
    assert model.inputs[0].shape == tuple(twin.inputs[0].shape)
    with pytest.raises(SpecError, match="input shape is not known yet"):
        _ = cnnlab.Sequential([Dense(10)]).inputs


@habit("a feature model", keras="Model(inputs=m.inputs, outputs=m.get_layer(name).output).predict(x)",
       cnnlab="the same: the layer's activations of the trained model, (N, H, W, C) as Keras gives them",
       topic=TOPIC)
def test_feature_model_gives_the_trained_activations(trained, digits):
    x = digits.x_test[:16]
    twin = keras_twin(trained)
    twin.set_weights(trained.get_weights())
    for name in ("conv", "separable", "hidden"):
        features = cnnlab.Model(inputs=trained.inputs, outputs=trained.get_layer(name).output)
        keras_features = keras.Model(twin.inputs, twin.get_layer(name).output)
        got = features.predict(x)
        assert got.shape == (16, *keras_features.output_shape[1:])
        np.testing.assert_allclose(got, probabilities(keras_features, x), atol=2e-5)
    flat = cnnlab.Model(inputs=trained.inputs, outputs=trained.get_layer("flatten").output).predict(x)
    kernel, bias = trained.get_layer("hidden").get_weights()
    by_hand = np.maximum(flat @ kernel + bias, 0)  # Dense(16, relu) of the flattened maps
    hidden = cnnlab.Model(inputs=trained.inputs, outputs=trained.get_layer("hidden").output).predict(x)
    np.testing.assert_allclose(hidden, by_hand, atol=1e-5)


@habit("a feature model shares the layers", keras="training one model changes the other's shared layers",
       cnnlab="the same: a model made of another's layers runs the same torch blocks (a new head on a trained "
              "base trains the base in place)", topic=TOPIC)
def test_feature_models_share_weights_both_ways(digits):
    base = conv_net(digits, seed=21)
    base.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    features = cnnlab.Model(inputs=base.inputs, outputs=base.get_layer("hidden").output)
    x = digits.x_test[:16]
    before = features.predict(x)
    base.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)  # training the base changes the features
    after = features.predict(x)
    assert not np.allclose(before, after)
    kernel, bias = base.get_layer("hidden").get_weights()
    flat = cnnlab.Model(inputs=base.inputs, outputs=base.get_layer("flatten").output).predict(x)
    np.testing.assert_allclose(after, np.maximum(flat @ kernel + bias, 0), atol=1e-5)
    head = Dense(10, activation="softmax", name="new_head")(base.get_layer("hidden").output)
    transfer = cnnlab.Model(inputs=base.inputs, outputs=head, seed=2)  # transfer learning: a new head
    conv_before = base.get_layer("conv").get_weights()[0]
    transfer.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    conv_after = base.get_layer("conv").get_weights()[0]
    assert not np.allclose(conv_before, conv_after)  # the base's own layer trained
    np.testing.assert_array_equal(transfer.get_layer("conv").get_weights()[0], conv_after)
    base.trainable = False  # Keras' transfer learning: freeze the base, then train a new head on it
    head = Dense(10, activation="softmax", name="frozen_head")(base.get_layer("hidden").output)
    frozen = cnnlab.Model(inputs=base.inputs, outputs=head, seed=3)
    head_before = frozen.get_layer("frozen_head").get_weights()[0]
    frozen.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    np.testing.assert_array_equal(base.get_layer("conv").get_weights()[0], conv_after)
    assert not np.allclose(frozen.get_layer("frozen_head").get_weights()[0], head_before)  # the head trained


def test_a_feature_model_without_weights(digits):
    mlp = cnnlab.Sequential([Input(shape=(8, 8, 1)), Flatten(name="flatten"), Dense(10, activation="softmax")])
    flat = cnnlab.Model(inputs=mlp.inputs, outputs=mlp.get_layer("flatten").output)
    x = digits.x_test[:4]
    np.testing.assert_allclose(flat.predict(x), x.reshape(4, -1) / 255, atol=1e-7)
