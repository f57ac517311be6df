"""Keras' Rescaling as the ``rescaling`` kind: ``x * scale + offset``, no weights, any input shape;
the formula against torch, the functional API with Keras' positional ``scale``, the refusals."""

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.errors import SpecError
from cnnlab.export.torch_layers import module_code
from cnnlab.layers import Dense, Flatten, Input, Rescaling
from cnnlab.net.builder import build_model
from cnnlab.net.inference import infer
from cnnlab.net.spec import parse_spec
from cnnlab.net.spec_file import load_spec_file


def _spec(layers, input_shape=(4, 4, 3)):
    return parse_spec({"input": list(input_shape), "layers": layers})


@pytest.mark.parametrize(("scale", "offset"), [(1 / 255, 0.0), (2.0, -1.0), (-0.5, 3)])
def test_rescaling_is_scale_times_input_plus_offset_in_training_and_inference(scale, offset):
    model = build_model(_spec([{"kind": "rescaling", "scale": scale, "offset": offset}]))
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 255  # (N, C, H, W)
    for mode in (model.train(), model.eval()):
        torch.testing.assert_close(mode(x), x * scale + offset)


def test_rescaling_keeps_the_shape_and_has_no_weights():
    spec = _spec([{"kind": "rescaling", "scale": 0.5}, {"kind": "flatten"}, {"kind": "dense", "units": 3},
                  {"kind": "rescaling", "scale": 1 / 9}])
    layers = infer(spec).layers
    assert [layer.output_shape for layer in layers] == [(4, 4, 3), (48,), (3,), (3,)]
    assert layers[0].parameters.total == layers[3].parameters.total == 0
    assert list(build_model(spec).blocks[0].state_dict()) == []


def test_logit_scale_before_the_softmax_divides_the_logits():
    spec = _spec([{"kind": "flatten"}, {"kind": "dense", "units": 5, "use_bias": False},
                  {"kind": "rescaling", "scale": 1 / 9}, {"kind": "activation", "activation": "softmax"}])
    model = build_model(spec).eval()
    x = torch.rand(3, 3, 4, 4)
    dense = model.blocks[1].linear
    logits = dense(x.permute(0, 2, 3, 1).flatten(1)) / 9  # Keras' channels-last flatten
    torch.testing.assert_close(model.probabilities(x), torch.softmax(logits, dim=1))


def test_functional_api_takes_keras_positional_scale():
    inputs = Input(shape=(8,))
    outputs = Rescaling(1.0 / 9, offset=0.5)(Dense(4)(Rescaling(1.0 / 255)(Flatten()(inputs))))
    model = cnnlab.Model(inputs=inputs, outputs=outputs)
    layers = [layer for layer in model.spec.layers if layer.kind == "rescaling"]
    assert [(layer["scale"], layer["offset"]) for layer in layers] == [(1 / 255, 0.0), (1 / 9, 0.5)]
    assert model.count_params() == 8 * 4 + 4


def test_pytorch_export_writes_the_numbers():
    info = infer(_spec([{"kind": "rescaling", "scale": 0.25, "offset": -1.0}, {"kind": "rescaling", "scale": 3}]))
    assert module_code(info.layers[0], strip_softmax=False) == "Rescaling(0.25, offset=-1.0)"
    assert module_code(info.layers[1], strip_softmax=False) == "Rescaling(3.0)"


@pytest.mark.parametrize("fields", [{}, {"scale": "1/255"}, {"scale": float("inf")}, {"scale": True},
                                    {"scale": 1, "offset": float("nan")}])
def test_bad_fields_are_one_error_naming_the_layer_and_field(fields):
    with pytest.raises(SpecError, match="rescaling") as error:
        _spec([{"kind": "rescaling", **fields}])
    assert ("offset" if "offset" in fields else "scale") in str(error.value)


def test_pixels_already_in_0_1_rescaled_by_the_network_again_get_a_note():
    from cnnlab.engine.session import rescaled_twice

    pixels = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    keras_habit = _spec([{"kind": "rescaling", "scale": 1 / 255, "name": "scale"}, {"kind": "flatten"}])
    assert "layer 'scale' (rescaling) multiplies the pixels by 0.00392" in rescaled_twice(keras_habit, pixels)
    assert "scaled twice" in rescaled_twice(keras_habit, np.full((2, 4, 4, 3), 0.5, np.float32))  # [0, 1] floats
    assert rescaled_twice(keras_habit, np.full((2, 4, 4, 3), 200.0, np.float32)) is None  # 0..255: as Keras meant
    centred = _spec([{"kind": "rescaling", "scale": 2.0, "offset": -1.0}, {"kind": "flatten"}])
    logits = _spec([{"kind": "flatten"}, {"kind": "rescaling", "scale": 1 / 255}])
    assert rescaled_twice(centred, pixels) is None and rescaled_twice(logits, pixels) is None
    # Keras' tutorials augment first: the rescaling after the augmentation layers reads the pixels too
    tutorial = _spec([{"kind": "random_flip", "mode": "horizontal"}, {"kind": "random_translation",
                      "height_factor": 0.1, "width_factor": 0.1}, {"kind": "rescaling", "scale": 1 / 255}])
    assert "scaled twice" in rescaled_twice(tutorial, pixels)


def test_float_pixels_in_0_255_are_taken_where_the_network_rescales_them():
    from cnnlab.engine.inputs import InputError

    inputs = Input(shape=(4, 4, 3))
    keras_habit = cnnlab.Model(inputs=inputs, outputs=Dense(2, activation="softmax")(
        Flatten()(Rescaling(1 / 255)(inputs))))
    pixels = np.random.default_rng(0).uniform(0, 255, (8, 4, 4, 3)).astype(np.float32)
    assert keras_habit.predict(pixels).shape == (8, 2)  # as Keras takes them
    plain = cnnlab.Model(inputs=inputs, outputs=Dense(2, activation="softmax")(Flatten()(inputs)))
    with pytest.raises(InputError, match="look like unscaled 0..255 pixels"):
        plain.predict(pixels)


def test_numpy_scalars_are_the_numbers_keras_takes_them_for():
    inputs = Input(shape=(np.int64(4), np.int64(4), np.int64(3)))
    outputs = Dense(np.int64(3))(Flatten()(Rescaling(np.float32(0.5), offset=np.int64(1))(inputs)))
    model = cnnlab.Model(inputs=inputs, outputs=outputs)
    assert [(layer["scale"], layer["offset"]) for layer in model.spec.layers[:1]] == [(0.5, 1.0)]
    assert model.count_params() == 48 * 3 + 3


def test_a_scale_beyond_float32_or_written_as_yaml_text_is_named(tmp_path):
    with pytest.raises(SpecError, match="float32's range"):
        _spec([{"kind": "rescaling", "scale": 1e39}])
    path = tmp_path / "net.yaml"
    path.write_text("input: [4, 4, 3]\nlayers:\n  - {kind: rescaling, scale: 1e-3}\n")
    with pytest.raises(SpecError, match=r"got .1e-3. \(text: YAML reads 1e-3 as a string; write 1.0e-3\)"):
        load_spec_file(str(path))


def test_fit_says_so_once_in_its_output(capsys):
    inputs = Input(shape=(4, 4, 3))
    model = cnnlab.Model(inputs=inputs, outputs=Dense(2, activation="softmax")(Flatten()(Rescaling(1 / 255)(inputs))))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    pixels = np.random.default_rng(0).integers(0, 256, (8, 4, 4, 3), dtype=np.uint8)
    model.fit(pixels, np.arange(8) % 2, epochs=1, batch_size=4, verbose=2)
    assert capsys.readouterr().out.count("scaled twice") == 1


def test_validation_pixels_scaled_twice_get_the_note_too(capsys):
    inputs = Input(shape=(4, 4, 3))
    model = cnnlab.Model(inputs=inputs, outputs=Dense(2, activation="softmax")(Flatten()(Rescaling(1 / 255)(inputs))))
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 255, (8, 4, 4, 3)).astype(np.float32)  # as Keras takes them: no note
    model.fit(raw, np.arange(8) % 2, epochs=1, batch_size=4, verbose=2, validation_data=(raw, np.arange(8) % 2))
    assert "scaled twice" not in capsys.readouterr().out
    pixels = rng.integers(0, 256, (8, 4, 4, 3), dtype=np.uint8)
    model.fit(raw, np.arange(8) % 2, epochs=1, batch_size=4, verbose=2, validation_data=(pixels, np.arange(8) % 2))
    assert "multiplies the validation pixels by 0.00392" in capsys.readouterr().out
