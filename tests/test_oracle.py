"""Analytic shapes and parameter counts equal what torch builds, for presets and random specs."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.net.inference import infer
from cnnlab.net.presets import PRESETS, default_input, preset
from cnnlab.net.resolve import summarize
from cnnlab.net.spec import parse_spec

from oracle import analytic_layer_facts, torch_layer_facts


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_match_torch(name):
    info = summarize(name)
    assert torch_layer_facts(preset(name), default_input(name)) == analytic_layer_facts(info)


@pytest.mark.parametrize("name,total", [("mlp", 563_082), ("cnn", 1_341_226), ("q32", 665_317)])
def test_preset_totals_equal_keras(name, total):
    # Totals Keras' model.summary() prints for these networks.
    assert summarize(name).total_params == total


def test_q32_answers_the_question():
    info = summarize("q32")
    assert [layer.params for layer in info.layers] == [448, 12_832, 0, 36_992, 0, 615_045]
    assert info.largest_layer.layer.kind == "dense"
    assert info.layers[2].output_shape == (31, 31, 32)  # 3x3/2 'valid' pool: floor((64-3)/2)+1


PADDING = st.sampled_from(["valid", "same"])
ACTIVATION = st.sampled_from(["linear", "relu", "sigmoid", "tanh", "softmax", "gelu"])


@st.composite
def windowed(draw, kind, height, width):
    """A conv or pool layer whose window fits its input (or uses 'same' padding)."""
    padding = draw(PADDING)
    limit_h, limit_w = (4, 4) if padding == "same" else (min(height, 4), min(width, 4))
    window = [draw(st.integers(1, limit_h)), draw(st.integers(1, limit_w))]
    strides = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    layer = {"kind": kind, "padding": padding, "strides": strides}
    if kind == "conv2d":
        layer.update(filters=draw(st.integers(1, 6)), kernel=window, activation=draw(ACTIVATION),
                     use_bias=draw(st.booleans()))
    else:
        layer["pool"] = window
    return layer


def _next_shape(layer, shape, input_shape, layers):
    return infer(parse_spec({"input": list(input_shape), "layers": [*layers, layer]})).output_shape


@st.composite
def valid_specs(draw):
    input_shape = (draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(1, 3)))
    shape, layers = input_shape, []
    for _ in range(draw(st.integers(1, 7))):
        if len(shape) == 3:
            choice = draw(st.sampled_from(["conv2d", "maxpool2d", "avgpool2d", "batchnorm", "dropout",
                                           "activation", "flatten", "globalavgpool2d"]))
        else:
            choice = draw(st.sampled_from(["dense", "dropout", "batchnorm", "activation"]))
        layer = _simple_layer(draw, choice, shape)
        shape = _next_shape(layer, shape, input_shape, layers)
        layers.append(layer)
    return {"input": list(input_shape), "layers": layers}


def _simple_layer(draw, kind, shape):
    if kind in ("conv2d", "maxpool2d", "avgpool2d"):
        return draw(windowed(kind, shape[0], shape[1]))
    if kind == "dense":
        return {"kind": "dense", "units": draw(st.integers(1, 9)), "activation": draw(ACTIVATION),
                "use_bias": draw(st.booleans())}
    if kind == "dropout":
        return {"kind": "dropout", "rate": draw(st.floats(0, 0.9))}
    if kind == "activation":
        return {"kind": "activation", "activation": draw(ACTIVATION)}
    return {"kind": kind}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_random_specs_match_torch(data):
    spec = parse_spec(data)
    info = infer(spec)
    assert torch_layer_facts(spec, spec.input_shape) == analytic_layer_facts(info)
