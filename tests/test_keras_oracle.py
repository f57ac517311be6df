"""Keras 3 as the second oracle: shapes and parameter counts equal what Keras reports
for the same functional model, and Keras refuses where cnnlab refuses.

Torch (tests/oracle.py) checks that what cnnlab builds matches what it infers; Keras
checks that what it infers is what the spec *means*. Where the two disagree on purpose
(cnnlab is stricter) or by a known fault, a test below says so by name.
Skipped, with the reason, where Keras 3 is not installed.
"""

import inspect

import pytest
from hypothesis import HealthCheck, given, settings

from cnnlab.errors import SpecError
from cnnlab.net.fields import REQUIRED, Field, Pair
from cnnlab.net.inference import infer
from cnnlab.net.presets import PRESETS, default_input, preset
from cnnlab.net.registry import LayerKind, all_kinds, registered
from cnnlab.net.spec import LayerSpec, ModelSpec, parse_spec

from keras_oracle import keras, keras_model, layer_facts, reaching_output, weight_count
from oracle import analytic_layer_facts
from strategies import random_graphs


def named(spec, facts):
    return [(layer.name, *fact) for layer, fact in zip(spec.layers, facts)]


def assert_matches_keras(spec, input_shape=None):
    """Per layer: output shape, trainable and non-trainable counts equal Keras'; and the model's totals.

    Keras' functional model holds the layers its output depends on, and counts their weights; where
    every layer feeds the output, that is cnnlab's total (where not: test_unused_layer_total_...).
    """
    info = infer(spec, input_shape)
    model, layers = keras_model(spec, input_shape)
    assert named(spec, layer_facts(layers)) == named(spec, analytic_layer_facts(info))
    used = reaching_output(spec)
    assert {layer.name for layer in model.layers} - {"input"} == used
    assert model.count_params() == sum(layer.params for layer in info.layers if layer.layer.name in used)
    assert weight_count(model.non_trainable_weights) == sum(
        layer.non_trainable_params for layer in info.layers if layer.layer.name in used)
    if not spec.warnings:
        assert model.count_params() == info.total_params
        assert weight_count(model.non_trainable_weights) == info.non_trainable_params
    return model, info


# ---------------------------------------------------------------- presets

PRESET_TOTALS = {  # (total, non-trainable): what Keras' model.summary() prints for these networks
    "mlp": (563_082, 0),
    "cnn": (1_341_226, 0),
    "resnet20": (274_442, 1_376),
    "fast": (388_408, 1_336),
    # the frozen whitening kernel (288) and the moving statistics; Keras 3 freezes the kernel alone
    "airbench93": (570_296, 1_568),
    "airbench94": (1_973_944, 2_592),
    "q32": (665_317, 0),
}


def test_every_preset_has_a_keras_total():
    assert set(PRESET_TOTALS) == set(PRESETS)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_match_keras(name):
    model, info = assert_matches_keras(preset(name), default_input(name))
    total, non_trainable = PRESET_TOTALS[name]
    assert model.count_params() == info.total_params == total
    assert weight_count(model.non_trainable_weights) == info.non_trainable_params == non_trainable


# ---------------------------------------------------------------- Keras' tricky cases

CASES = {
    "same_stride2_odd_sizes": {"input": [7, 9, 3], "layers": [
        {"kind": "conv2d", "filters": 4, "kernel": 3, "strides": 2, "padding": "same"},           # 4x5
        {"kind": "conv2d", "filters": 5, "kernel": [2, 4], "strides": [2, 3], "padding": "same"},  # 2x2
        {"kind": "conv2d", "filters": 2, "kernel": 5, "padding": "same", "inputs": ["input"]},    # kernel > image
        {"kind": "maxpool2d", "pool": 3, "strides": 2, "padding": "same"},
        {"kind": "avgpool2d", "pool": 2, "padding": "same"},
        {"kind": "maxpool2d", "pool": 4, "strides": 3, "padding": "same", "inputs": ["input"]},
        {"kind": "avgpool2d", "pool": [3, 2], "strides": [1, 2], "padding": "valid"},
    ]},
    "dilation": {"input": [11, 9, 2], "layers": [
        {"kind": "conv2d", "filters": 3, "kernel": 3, "dilation_rate": 2, "padding": "same"},
        {"kind": "conv2d", "filters": 3, "kernel": 3, "dilation_rate": 2, "padding": "valid"},     # 7x5
        {"kind": "conv2d", "filters": 2, "kernel": [2, 3], "dilation_rate": [3, 1], "inputs": ["input"]},
        {"kind": "depthwise_conv2d", "kernel": 3, "dilation_rate": 2, "padding": "same"},
        {"kind": "depthwise_conv2d", "kernel": 2, "dilation_rate": [1, 3], "padding": "valid"},
        {"kind": "separable_conv2d", "filters": 4, "kernel": 3, "dilation_rate": 2, "inputs": ["input"]},
        {"kind": "separable_conv2d", "filters": 4, "kernel": 2, "dilation_rate": 2, "padding": "same"},
    ]},
    "depthwise_multiplier": {"input": [8, 7, 3], "layers": [
        {"kind": "depthwise_conv2d", "kernel": 3, "depth_multiplier": 2},
        {"kind": "depthwise_conv2d", "kernel": 3, "depth_multiplier": 2, "strides": 2, "padding": "same",
         "use_bias": False},
        {"kind": "depthwise_conv2d", "kernel": [1, 2], "depth_multiplier": 3, "activation": "relu"},
    ]},
    "separable_multiplier_no_bias": {"input": [9, 9, 3], "layers": [
        {"kind": "separable_conv2d", "filters": 8, "kernel": 3, "depth_multiplier": 2, "use_bias": False},
        {"kind": "separable_conv2d", "filters": 5, "kernel": 3, "depth_multiplier": 3, "strides": 2,
         "padding": "same"},
        {"kind": "separable_conv2d", "filters": 2, "kernel": [3, 1], "depth_multiplier": 1, "use_bias": False,
         "activation": "tanh"},
    ]},
    "zeropadding": {"input": [3, 4, 2], "layers": [
        {"kind": "zeropadding2d", "padding": [[1, 2], [0, 3]]},
        {"kind": "zeropadding2d", "padding": [2, 0]},
        {"kind": "zeropadding2d"},
        {"kind": "zeropadding2d", "padding": [[0, 0], [5, 1]]},
        {"kind": "conv2d", "filters": 1, "kernel": [12, 15]},  # exactly the padded 12x15
    ]},
    "concatenate_image_axes": {"input": [4, 5, 2], "layers": [
        {"kind": "conv2d", "name": "wide", "filters": 3, "kernel": 1, "inputs": ["input"]},
        {"kind": "concatenate", "name": "channels", "inputs": ["input", "wide"]},                  # (4, 5, 5)
        {"kind": "zeropadding2d", "name": "taller", "padding": [[1, 2], [0, 0]], "inputs": ["input"]},
        {"kind": "conv2d", "name": "squeeze", "filters": 2, "kernel": 1, "inputs": ["channels"]},
        {"kind": "concatenate", "name": "rows", "axis": 1, "inputs": ["input", "taller", "squeeze"]},  # (15, 5, 2)
        {"kind": "zeropadding2d", "name": "wider", "padding": [[0, 0], [0, 3]], "inputs": ["input"]},
        {"kind": "concatenate", "name": "cols", "axis": 2, "inputs": ["wider", "input"]},          # (4, 13, 2)
        {"kind": "concatenate", "name": "cols_neg", "axis": -2, "inputs": ["input", "wider"]},
        {"kind": "concatenate", "name": "rows_neg", "axis": -3, "inputs": ["taller", "input"]},
        {"kind": "concatenate", "name": "channels_3", "axis": 3, "inputs": ["channels", "wide"]},
        {"kind": "flatten", "name": "f1", "inputs": ["rows"]},
        {"kind": "flatten", "name": "f2", "inputs": ["cols"]},
        {"kind": "flatten", "name": "f3", "inputs": ["cols_neg"]},
        {"kind": "flatten", "name": "f4", "inputs": ["rows_neg"]},
        {"kind": "flatten", "name": "f5", "inputs": ["channels_3"]},
        {"kind": "concatenate", "name": "flat", "axis": 1, "inputs": ["f1", "f2", "f3", "f4", "f5"]},
    ]},
    "add_three_inputs": {"input": [5, 5, 4], "layers": [
        {"kind": "conv2d", "name": "a", "filters": 4, "kernel": 3, "padding": "same"},
        {"kind": "depthwise_conv2d", "name": "b", "kernel": 3, "padding": "same", "inputs": ["input"]},
        {"kind": "add", "name": "sum3", "inputs": ["input", "a", "b"]},
        {"kind": "batchnorm", "name": "bn"},
        {"kind": "add", "name": "sum2", "inputs": ["bn", "sum3"]},
    ]},
    "global_pooling": {"input": [6, 3, 5], "layers": [
        {"kind": "globalmaxpool2d", "name": "gmax"},
        {"kind": "globalavgpool2d", "name": "gavg", "inputs": ["input"]},
        {"kind": "concatenate", "inputs": ["gmax", "gavg"]},
        {"kind": "dense", "units": 3},
    ]},
    "batchnorm_flat": {"input": [12], "layers": [
        {"kind": "batchnorm", "momentum": 0.9, "epsilon": 1e-5},
        {"kind": "dense", "units": 7, "use_bias": False},
        {"kind": "batchnorm"},
        {"kind": "flatten"},
        {"kind": "dropout", "rate": 0.5},
    ]},
    "batchnorm_center_scale": {"input": [5, 5, 4], "layers": [
        {"kind": "conv2d", "filters": 6, "kernel": 3, "use_bias": False, "kernel_initializer": "partial_identity"},
        {"kind": "batchnorm", "scale": False},
        {"kind": "batchnorm", "center": False},
        {"kind": "batchnorm", "center": False, "scale": False},
        {"kind": "flatten"},
        {"kind": "batchnorm", "scale": False, "momentum": 0.6},
    ]},
    "rescaling": {"input": [4, 4, 3], "layers": [
        {"kind": "rescaling", "scale": 1 / 255},
        {"kind": "conv2d", "filters": 2, "kernel": 3},
        {"kind": "rescaling", "scale": 2.0, "offset": -1.0},
        {"kind": "flatten"},
        {"kind": "dense", "units": 3},
        {"kind": "rescaling", "scale": 1 / 9},
        {"kind": "activation", "activation": "softmax"},
    ]},
    "every_activation": {"input": [6], "layers": [
        *({"kind": "dense", "units": 6, "activation": name} for name in
          ("linear", "relu", "sigmoid", "tanh", "softmax", "gelu", "leaky_relu", "elu", "silu", "softplus")),
        *({"kind": "activation", "activation": name} for name in ("swish", "relu", "softmax")),
    ]},
}


@pytest.mark.parametrize("name", list(CASES))
def test_tricky_cases_match_keras(name):
    assert_matches_keras(parse_spec(CASES[name]))


def test_a_new_kind_needs_no_change_to_the_keras_oracle():
    class UpSampling(LayerKind):
        name, keras_class = "upsampling2d_test", "UpSampling2D"
        fields = {"size": Field(Pair(), 2)}
        image_only = True

        def output_shape(self, layer, shapes, where):
            (height, width, channels), (rows, cols) = shapes[0], layer["size"]
            return (height * rows, width * cols, channels)

    with registered(UpSampling):
        spec = parse_spec({"input": [3, 2, 1], "layers": [{"kind": "upsampling2d_test", "size": [2, 3]},
                                                          {"kind": "conv2d", "filters": 2, "kernel": 3}]})
        assert_matches_keras(spec)


# ---------------------------------------------------------------- random graphs


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(random_graphs())
def test_random_graphs_match_keras(data):
    assert_matches_keras(parse_spec(data))


# ---------------------------------------------------------------- refusals: Keras refuses too

REFUSED = {  # spec -> (Keras' exception(s), what its message says)
    "add_mismatched_channels": ({"input": [4, 4, 2], "layers": [
        {"kind": "conv2d", "filters": 3, "kernel": 1},
        {"kind": "add", "inputs": ["input", "conv2d"]}]}, ValueError, "incompatible shapes"),
    "add_mismatched_flat": ({"input": [4], "layers": [
        {"kind": "dense", "units": 5},
        {"kind": "add", "inputs": ["dense", "input"]}]}, ValueError, "incompatible shapes"),
    "conv_valid_kernel_larger_than_input": ({"input": [4, 6, 1], "layers": [
        {"kind": "conv2d", "filters": 2, "kernel": 5}]}, ValueError, "zero or negative"),
    "conv_valid_dilated_kernel_larger_than_input": ({"input": [4, 4, 1], "layers": [
        {"kind": "conv2d", "filters": 2, "kernel": 3, "dilation_rate": 2}]}, ValueError, "zero or negative"),
    "depthwise_valid_kernel_larger_than_input": ({"input": [3, 3, 2], "layers": [
        {"kind": "depthwise_conv2d", "kernel": [1, 4]}]}, ValueError, "zero or negative"),
    "separable_valid_kernel_larger_than_input": ({"input": [3, 3, 2], "layers": [
        {"kind": "separable_conv2d", "filters": 2, "kernel": 4}]}, ValueError, "zero or negative"),
    "maxpool_valid_pool_larger_than_input": ({"input": [2, 5, 1], "layers": [
        {"kind": "maxpool2d", "pool": 3}]}, ValueError, "zero or negative"),
    "avgpool_valid_pool_larger_than_input": ({"input": [5, 2, 1], "layers": [
        {"kind": "avgpool2d", "pool": [2, 3], "strides": 1}]}, ValueError, "zero or negative"),
    "concatenate_sizes_differ_elsewhere": ({"input": [4, 4, 2], "layers": [
        {"kind": "maxpool2d"},
        {"kind": "concatenate", "inputs": ["input", "max_pooling2d"]}]}, ValueError, "matching shapes"),
    "concatenate_ranks_differ": ({"input": [4, 4, 2], "layers": [
        {"kind": "flatten"},
        {"kind": "concatenate", "inputs": ["input", "flatten"]}]}, ValueError, "matching shapes"),
    "concatenate_axis_past_the_rank": ({"input": [6], "layers": [
        {"kind": "dense", "units": 6},
        {"kind": "concatenate", "axis": 2, "inputs": ["input", "dense"]}]}, (IndexError, ValueError), "range|axis"),
    "conv_on_flat_input": ({"input": [16], "layers": [
        {"kind": "conv2d", "filters": 1, "kernel": 1}]}, ValueError, "expected min_ndim=4"),
    "pool_on_flat_input": ({"input": [16], "layers": [{"kind": "maxpool2d"}]}, ValueError, "expected ndim=4"),
    "global_pool_after_flatten": ({"input": [2, 2, 1], "layers": [
        {"kind": "flatten"}, {"kind": "globalavgpool2d"}]}, ValueError, "expected ndim=4"),
    "zeropadding_on_flat_input": ({"input": [16], "layers": [{"kind": "zeropadding2d"}]},
                                  ValueError, "expected ndim=4"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_keras_refuses_what_cnnlab_refuses(name):
    data, error, message = REFUSED[name]
    spec = parse_spec(data)
    with pytest.raises(SpecError):
        infer(spec)
    with pytest.raises(error, match=message):
        keras_model(spec)


def with_fields(spec, **fields):
    """The spec with its last layer's fields overridden, bypassing cnnlab's checks (to ask Keras alone)."""
    *rest, last = spec.layers
    return ModelSpec(spec.name, (*rest, last.replace(**fields)), spec.input_shape)


def _dilated_stride(kind, **extra):
    return {"input": [9, 9, 2], "layers": [{"kind": kind, "kernel": 3, "dilation_rate": 2, **extra}]}


def refusals(data, bypass):
    """(cnnlab's error, Keras' error) for a spec, each None where it is accepted.

    Where cnnlab refuses while parsing, ``bypass()`` gives the spec to ask Keras about.
    """
    try:
        spec, ours = parse_spec(data), None
    except SpecError as exc:
        spec, ours = bypass(), str(exc)
    try:
        keras_model(spec)
        theirs = None
    except ValueError as exc:
        theirs = str(exc)
    return spec, ours, theirs


@pytest.mark.parametrize("kind,extra", [
    ("conv2d", {"filters": 2}),
    ("depthwise_conv2d", {}),
    ("separable_conv2d", {"filters": 2}),
])
def test_strides_with_dilation_refused_where_keras_refuses(kind, extra):
    # Keras' Conv2D refuses strides > 1 with dilation > 1; its depthwise and separable forms build it.
    def layer(**fields):
        return {"input": [9, 9, 2], "layers": [{"kind": kind, "kernel": 3, "dilation_rate": 2, **extra, **fields}]}

    spec, ours, theirs = refusals(layer(strides=2), lambda: with_fields(parse_spec(layer()), strides=(2, 2)))
    assert (ours is None) == (theirs is None), (ours, theirs)
    if ours is None:
        assert_matches_keras(spec)
    else:
        assert "strides > 1` not supported in conjunction with `dilation_rate > 1`" in theirs


# ---------------------------------------------------------------- where cnnlab and Keras differ

STRICTER = {  # cnnlab refuses on purpose, with a message that says why; Keras builds these
    "dense_on_image": ({"input": [2, 3, 4], "layers": [{"kind": "dense", "units": 5}]}, (2, 3, 5)),
    "concatenate_on_the_batch_axis": ({"input": [8], "layers": [
        {"kind": "dropout", "rate": 0.1},
        {"kind": "concatenate", "axis": -2, "inputs": ["input", "dropout"]}]}, (8,)),
    "add_broadcasting_channels": ({"input": [7, 3, 2], "layers": [
        {"kind": "conv2d", "filters": 1, "kernel": 1},
        {"kind": "add", "inputs": ["input", "conv2d"]}]}, (7, 3, 2)),
    "add_broadcasting_rows_and_columns": ({"input": [4, 4, 2], "layers": [
        {"kind": "globalavgpool2d"},
        {"kind": "add", "inputs": ["input", "global_average_pooling2d"]}]}, (4, 4, 2)),
}


@pytest.mark.parametrize("name", list(STRICTER))
def test_cnnlab_is_stricter_than_keras_here(name):
    # Documents each divergence: should Keras start refusing (or cnnlab accepting), this fails.
    data, keras_shape = STRICTER[name]
    spec = parse_spec(data)
    with pytest.raises(SpecError):
        infer(spec)
    _, layers = keras_model(spec)
    assert tuple(layers[-1].output.shape[1:]) == keras_shape


@pytest.mark.parametrize("kind", ["add", "concatenate"])
def test_one_input_twice_merges_as_in_keras(kind):
    # Keras merges a tensor with itself (x + x, [x, x]); so does cnnlab.
    assert_matches_keras(parse_spec({"input": [3, 2, 4], "layers": [{"kind": kind, "inputs": ["input", "input"]}]}))


def test_unused_layer_is_counted_where_keras_leaves_it_out():
    # A documented difference: cnnlab warns about a layer nothing reads and still counts it.
    spec = parse_spec({"input": [4], "layers": [
        {"kind": "dense", "name": "unused", "units": 3},
        {"kind": "dense", "name": "out", "units": 2, "inputs": ["input"]}]})
    assert spec.warnings
    model, info = assert_matches_keras(spec)  # every layer's own facts agree ...
    assert (info.total_params, model.count_params()) == (25, 10)  # ... the totals differ by the unused layer


@pytest.mark.parametrize("name", ["block/dense", "dense_1", "Block-1"])
def test_layer_names_are_refused_where_keras_refuses_them(name):
    data = {"input": [4], "layers": [{"kind": "dense", "name": name, "units": 2}]}
    def named_anyway():  # the same spec with the name cnnlab refused, to ask Keras alone
        accepted = parse_spec({**data, "layers": [{**data["layers"][0], "name": "x"}]})
        layer = accepted.layers[0]
        return ModelSpec(accepted.name, (LayerSpec(layer.kind, name, 0, layer.fields, layer.inputs),),
                         accepted.input_shape)

    _, ours, theirs = refusals(data, named_anyway)
    assert (ours is None) == (theirs is None), (ours, theirs)


def _keras_default(kind, keras_name):
    """The default of a Keras constructor argument: the layer class's own, else the base Layer's (trainable)."""
    own = inspect.signature(getattr(keras.layers, kind.keras_class).__init__).parameters
    parameter = own.get(keras_name) or inspect.signature(keras.layers.Layer.__init__).parameters[keras_name]
    return REQUIRED if parameter.default is inspect.Parameter.empty else parameter.default


def _same_default(spec_field, ours, theirs):
    if ours is REQUIRED or theirs is REQUIRED:
        return ours is theirs
    if theirs is None and ours == "linear":
        return True  # Keras' activation=None is the identity
    return ours == theirs or spec_field.type.check(theirs, "Keras' default") == spec_field.type.check(ours, "ours")


@pytest.mark.parametrize("kind", [
    name for name in sorted(all_kinds()) if all_kinds()[name].in_keras])  # cnnlab's own kinds have no Keras class
def test_defaults_equal_keras_defaults(kind):
    definition = all_kinds()[kind]
    for name, spec_field in definition.fields.items():
        if spec_field.cnnlab_field:  # cnnlab's own: Keras has no such argument
            continue
        theirs = _keras_default(definition, spec_field.keras or name)
        assert _same_default(spec_field, spec_field.default, theirs), (name, spec_field.default, theirs)
