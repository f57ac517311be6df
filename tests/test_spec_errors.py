"""Every invalid spec fails before anything is built, naming the layer and the field."""

import pytest

from cnnlab.net.inference import infer
from cnnlab.net.resolve import resolve_spec
from cnnlab.net.spec import SpecError, parse_spec
from cnnlab.net.spec_file import parse_spec_text

CONV = {"kind": "conv2d", "filters": 8, "kernel": 3}


def error_of(layers, input_shape=(8, 8, 3)):
    with pytest.raises(SpecError) as caught:
        infer(parse_spec({"input": list(input_shape), "layers": layers}))
    return str(caught.value)


def test_unknown_kind_suggests_closest():
    message = error_of([CONV, {"kind": "conv2", "filters": 4, "kernel": 3}])
    assert "layer 1" in message and "field 'kind'" in message
    assert "did you mean 'conv2d'?" in message


def test_unknown_key_suggests_closest_and_names_layer():
    message = error_of([{"kind": "conv2d", "filter": 8, "kernel": 3}])
    assert "layer 0 'conv2d' (conv2d)" in message
    assert "unknown field 'filter'" in message and "did you mean 'filters'?" in message


def test_user_given_name_appears_in_message():
    message = error_of([CONV, {"kind": "dense", "units": 0, "name": "head"}])
    assert "layer 1 'head' (dense): field 'units'" in message
    assert "expected a positive integer (below 2^31), got 0" in message


@pytest.mark.parametrize("field,value,expect", [
    ("filters", "32", "expected a positive integer"),
    ("filters", 2.5, "expected a positive integer"),
    ("filters", True, "expected a positive integer"),
    ("kernel", [3, 3, 3], "expected a positive integer or [h, w], got [3, 3, 3]"),
    ("kernel", -1, "expected a positive integer or [h, w], got -1"),
    ("strides", 0, "expected a positive integer or [h, w], got 0"),
    ("dilation_rate", [1, 0], "expected a positive integer or [h, w], got [1, 0]"),
    ("padding", "sam", "did you mean 'same'?"),
    ("activation", "relu6", "did you mean 'relu'?"),
    ("use_bias", "yes", "expected true or false"),
])
def test_wrong_type_or_value_names_field(field, value, expect):
    message = error_of([CONV, {**CONV, field: value}])
    assert f"layer 1 'conv2d_1' (conv2d): field '{field}'" in message
    assert expect in message


def test_missing_required_field():
    message = error_of([{"kind": "dense"}], input_shape=(4,))
    assert "layer 0 'dense' (dense): field 'units' is required" in message


def test_dropout_rate_out_of_range():
    message = error_of([{"kind": "dropout", "rate": 1.5}])
    assert "layer 0 'dropout' (dropout): field 'rate'" in message and "[0, 1)" in message


def test_kernel_larger_than_input_shows_the_shape_it_would_have():
    message = error_of([CONV, {"kind": "conv2d", "filters": 4, "kernel": 9}])
    assert "layer 1 'conv2d_1' (conv2d): field 'kernel'" in message
    assert "9x9 is larger than its input 6x6" in message
    assert "(None, -2, -2, ...)" in message


def test_pool_shrinking_to_zero_names_layer():
    layers = [CONV, {"kind": "maxpool2d", "pool": 2}, {"kind": "maxpool2d", "pool": 4}]
    message = error_of(layers)
    assert "layer 2 'max_pooling2d_1' (maxpool2d): field 'pool'" in message
    assert "(None, 0, 0, ...)" in message


def test_same_padding_allows_kernel_larger_than_input():
    info = infer(parse_spec({"input": [2, 2, 1], "layers": [{**CONV, "kernel": 5, "padding": "same"}]}))
    assert info.output_shape == (2, 2, 8)


def test_dense_on_image_suggests_flatten():
    message = error_of([CONV, {"kind": "dense", "units": 10}])
    assert "layer 1 'dense' (dense)" in message
    assert "(None, 6, 6, 8)" in message and "add a {kind: flatten} layer" in message


def test_conv_after_flatten_is_refused():
    message = error_of([{"kind": "flatten"}, CONV])
    assert "layer 1 'conv2d' (conv2d)" in message and "needs an image input" in message


def test_duplicate_layer_names():
    with pytest.raises(SpecError, match="layer 1 'a' \\(flatten\\): field 'name': duplicate"):
        parse_spec([{"kind": "flatten", "name": "a"}, {"kind": "flatten", "name": "a"}])


def test_unknown_top_level_key():
    with pytest.raises(SpecError, match="unknown top-level key 'layer'.*did you mean 'layers'"):
        parse_spec({"layer": []})


def test_missing_input_shape_is_explained():
    with pytest.raises(SpecError, match="no input shape.*--input"):
        infer(parse_spec([CONV]))


def test_yaml_object_tags_are_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.yaml"
    path.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(SpecError) as caught:
        resolve_spec(str(path))
    assert str(path) in str(caught.value)
    assert not marker.exists()


def test_invalid_yaml_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("layers: [ {kind: conv2d\n")
    with pytest.raises(SpecError, match="broken.yaml: not a valid spec"):
        resolve_spec(str(path))


def test_missing_file_names_file():
    with pytest.raises(SpecError, match="nope.yaml: cannot read spec file"):
        resolve_spec("nope.yaml")


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("input: [8, 8, 3]\nlayers:\n  - {kind: conv2d, filters: 4, kernal: 3}\n")
    with pytest.raises(SpecError) as caught:
        resolve_spec(str(path))
    assert str(caught.value).startswith(f"{path}: layer 0 'conv2d' (conv2d): unknown field 'kernal'")


def test_inline_yaml_text_parses():
    spec = parse_spec_text("input: [4]\nlayers:\n  - {kind: dense, units: 3}\n")
    assert infer(spec).total_params == 15
