"""The course's Keras functional-API code runs with only its imports changed to cnnlab."""


import pytest

import cnnlab
from cnnlab.errors import SpecError
from cnnlab.layers import (
    Activation,
    Add,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    MaxPooling2D,
    add,
)


def course_mlp():
    # The course's MLP, as students write it in Keras (imports changed).
    inp = Input(shape=(32, 32, 3))
    x = Flatten()(inp)
    x = Dense(128, activation="relu")(x)
    x = Dropout(0.2)(x)
    x = Dense(256, activation="relu")(x)
    x = Dropout(0.2)(x)
    x = Dense(512, activation="relu")(x)
    x = Dropout(0.2)(x)
    out = Dense(10, activation="softmax")(x)
    return cnnlab.Model(inputs=inp, outputs=out)


def course_cnn():
    inp = Input(shape=(32, 32, 3))
    x = inp
    for filters in (32, 64, 128):
        x = Conv2D(filters, (3, 3), strides=(1, 1), padding="same", activation="relu", use_bias=True)(x)
        x = Conv2D(filters, (3, 3), strides=(1, 1), padding="same", activation="relu", use_bias=True)(x)
        x = MaxPooling2D(pool_size=(2, 2), strides=(2, 2), padding="same")(x)
    x = Flatten()(x)
    x = Dropout(0.2)(x)
    x = Dense(512, activation="relu")(x)
    x = Dropout(0.5)(x)
    out = Dense(10, activation="softmax")(x)
    return cnnlab.Model(inputs=inp, outputs=out)


@pytest.mark.parametrize("build,total,preset", [(course_mlp, 563_082, "mlp"), (course_cnn, 1_341_226, "cnn")])
def test_course_code_gives_keras_totals(build, total, preset, capsys, golden):
    model = build()
    assert model.count_params() == total
    model.summary()
    printed = capsys.readouterr().out
    # The same table as the preset's, line for line, but for the model's name (the first line).
    golden.check(f"summary_{preset}.txt", printed, from_line=1)
    assert printed.startswith('Model: "functional"')


def test_layers_and_get_layer_as_in_keras():
    model = course_cnn()
    names = [layer.name for layer in model.layers]
    assert names[0] == "input" and names[1:3] == ["conv2d", "conv2d_1"] and names[-1] == "dense_1"
    assert type(model.layers[1]).__name__ == "Conv2D"
    assert model.layers[1].output.shape == (None, 32, 32, 32)
    assert model.get_layer("dense").count_params() == 2048 * 512 + 512


def test_residual_graph_and_sequential_build_the_same_spec_as_yaml(tmp_path):
    inp = Input(shape=(8, 8, 3))
    stem = Conv2D(4, 3, padding="same", activation="relu", name="stem")(inp)
    y = BatchNormalization()(Conv2D(4, 3, padding="same")(stem))
    x = Activation("relu")(add([stem, y]))
    both = Concatenate()([x, stem])
    out = Dense(3, activation="softmax")(GlobalAveragePooling2D()(both))
    model = cnnlab.Model(inp, out, name="tiny-resnet")
    path = model.save_spec(tmp_path / "tiny.yaml")
    from cnnlab.net.resolve import resolve_spec

    assert resolve_spec(str(path)).layers == model.spec.layers
    assert cnnlab.summarize(str(path)).total_params == model.count_params() == 112 + 148 + 16 + 27
    chain = cnnlab.Sequential([Input(shape=(4,)), Dense(3, activation="relu"), Dense(2)])
    assert chain.spec.is_chain and chain.count_params() == 15 + 8
    keras2 = cnnlab.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(2)])
    assert keras2.count_params() == 10


def test_mistakes_are_reported_where_they_are_made():
    inp = Input(shape=(8, 8, 3))
    with pytest.raises(SpecError, match=r"Dense: dense needs a flat input, got \(None, 8, 8, 3\)"):
        Dense(4)(inp)
    with pytest.raises(SpecError, match="Add: field 'inputs': cannot add different shapes"):
        Add()([inp, Conv2D(5, 1)(inp)])
    with pytest.raises(SpecError, match="argument 'kernel_regularizer'='l2' is not supported"):
        Conv2D(4, 3, kernel_regularizer="l2")
    with pytest.raises(SpecError, match="missing required argument 'filters'"):
        Conv2D(kernel_size=3)
    with pytest.raises(SpecError, match="argument 'pool_size': expected a positive integer"):
        MaxPooling2D(pool_size=0)
    shared = Dense(2)
    flat = Flatten()(inp)
    shared(flat)
    with pytest.raises(SpecError, match="called already"):
        shared(flat)
    with pytest.raises(SpecError, match="not the model's input"):
        cnnlab.Model(inp, Dense(2)(Flatten()(Input(shape=(8, 8, 3)))))


def test_functional_model_trains(tmp_path):
    data = cnnlab.load_data("digits")
    inp = Input(shape=data.image_shape)
    x = Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = add([x, Conv2D(8, 1)(x)])
    out = Dense(10, activation="softmax")(GlobalAveragePooling2D()(x))
    model = cnnlab.Model(inputs=inp, outputs=out)
    history = model.fit(data.x_train, data.y_train, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert history.history["loss"][1] < history.history["loss"][0]
