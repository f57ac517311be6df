"""Graph specs: named inputs, merge layers, the 'Connected to' summary, and graph errors."""

import json
from pathlib import Path

import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.errors import SpecError
from cnnlab.net.builder import build_model
from cnnlab.net.inference import infer
from cnnlab.net.presets import preset
from cnnlab.net.resolve import summarize
from cnnlab.net.spec import parse_spec
from cnnlab.net.spec_file import parse_spec_text

CONV = {"kind": "conv2d", "filters": 4, "kernel": 3, "padding": "same"}


def error_of(layers, input_shape=(8, 8, 3)):
    with pytest.raises(SpecError) as caught:
        infer(parse_spec({"input": list(input_shape), "layers": layers}))
    return str(caught.value)


@pytest.mark.parametrize("spec,golden_file", [("tests/golden/graph_branches.yaml", "summary_graph_branches.txt"),
                                         ("resnet20", "summary_resnet20.txt")])
def test_graph_summaries_match_golden(spec, golden_file, capsys, monkeypatch, golden):
    monkeypatch.chdir(Path(__file__).parent.parent)
    assert main(["summary", spec]) == 0
    golden.check(golden_file, capsys.readouterr().out)


def test_json_lists_each_layers_inputs(capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    assert main(["summary", "tests/golden/graph_branches.yaml", "--json"]) == 0
    layers = {layer["name"]: layer for layer in json.loads(capsys.readouterr().out)["layers"]}
    assert layers["shortcut"]["inputs"] == ["merge", "stem", "branch_dilated"]
    assert layers["stem"]["inputs"] == ["input"]


def test_a_chain_written_with_inputs_is_still_a_chain():
    explicit = parse_spec({"input": [8, 8, 3], "layers": [
        {**CONV, "name": "a", "inputs": ["input"]}, {"kind": "flatten", "inputs": ["a"]}]})
    assert explicit.is_chain
    assert "inputs" not in str(explicit.to_dict())  # written back as the plain chain it is


def test_spec_round_trips_through_yaml():
    import yaml

    original = preset("resnet20").with_input((32, 32, 3))
    again = parse_spec_text(yaml.safe_dump(original.to_dict()))
    assert again.layers == original.layers
    assert summarize(again).to_dict() == summarize(original).to_dict()


@pytest.mark.parametrize("inputs,expect", [
    (["nope"], "field 'inputs': unknown layer 'nope'"),
    (["conv2d_x"], "unknown layer 'conv2d_x' (did you mean 'conv2d'?)"),
    (["later"], "'later' is defined later (layer 2)"),
    (["b"], "the layer takes its own output ('b'): a cycle"),
    ([], "expected a list of layer names"),
    ("conv2d", None),
])
def test_reference_errors_name_layer_and_field(inputs, expect):
    layers = [CONV, {**CONV, "name": "b", "inputs": inputs}, {**CONV, "name": "later", "inputs": ["input"]}]
    if expect is None:
        infer(parse_spec({"input": [8, 8, 3], "layers": layers}))  # a single name is accepted as a list
        return
    message = error_of(layers)
    assert "layer 1 'b' (conv2d)" in message and expect in message


def test_cycle_is_named_with_its_path():
    message = error_of([CONV, {**CONV, "name": "a", "inputs": ["c"]}, {**CONV, "name": "c", "inputs": ["a"]}])
    assert "a cycle: a -> c -> a" in message


def test_merge_shape_errors_show_both_shapes():
    message = error_of([CONV, {**CONV, "filters": 8}, {"kind": "add", "inputs": ["conv2d", "conv2d_1"]}])
    assert "layer 2 'add' (add): field 'inputs': cannot add different shapes" in message
    assert "(None, 8, 8, 4) from 'conv2d'" in message and "(None, 8, 8, 8) from 'conv2d_1'" in message
    message = error_of([CONV, {**CONV, "strides": 2}, {"kind": "concatenate", "inputs": ["conv2d", "conv2d_1"]}])
    assert "cannot concatenate along axis -1" in message and "(None, 4, 4, 4) from 'conv2d_1'" in message


def test_merge_needs_two_inputs_and_single_input_kinds_one():
    assert "add takes at least 2 input(s), got 1 (conv2d)" in error_of([CONV, {"kind": "add"}])
    message = error_of([CONV, {**CONV, "inputs": ["input", "conv2d"]}])
    assert "conv2d takes 1 input(s), got 2" in message


def test_unused_layer_is_a_warning(capsys, tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("input: [8, 8, 3]\nlayers:\n  - {kind: conv2d, filters: 2, kernel: 1, name: dead}\n"
                    "  - {kind: flatten, inputs: [input]}\n  - {kind: dense, units: 2}\n")
    assert main(["summary", str(path)]) == 0
    err = capsys.readouterr().err
    assert "cnnlab: warning:" in err and "layer 0 'dead' (conv2d): its output is never used" in err


def test_input_is_a_reserved_name():
    assert "'input' names the model's input" in error_of([{**CONV, "name": "input"}])


def test_auto_names_skip_names_given_later():
    spec = parse_spec({"input": [4, 4, 1], "layers": [CONV, {**CONV, "name": "conv2d_1"}, CONV]})
    assert [layer.name for layer in spec.layers] == ["conv2d", "conv2d_1", "conv2d_2"]


def test_graph_forward_equals_hand_written_torch():
    spec = parse_spec({"input": [5, 5, 2], "layers": [
        {"kind": "conv2d", "name": "a", "filters": 2, "kernel": 1, "use_bias": False},
        {"kind": "add", "inputs": ["input", "a"]},
        {"kind": "concatenate", "inputs": ["add", "input"], "axis": 1},
    ]})
    model = build_model(spec).eval()
    x = torch.randn(3, 2, 5, 5)
    a = torch.nn.functional.conv2d(x, model.blocks[0].conv.weight)
    expected = torch.cat([x + a, x], dim=2)  # Keras axis 1 is H: torch dimension 2
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert infer(spec).output_shape == (10, 5, 2)


@pytest.mark.slow
def test_compare_mlp_cnn_resnet20_on_digits(tmp_path, capsys):
    assert main(["compare", "mlp", "cnn", "resnet20", "--dataset", "digits", "--epochs", "1", "--out",
                 str(tmp_path), "--quiet"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith(("mlp ", "cnn ", "resnet20 "))}
    assert list(rows) == ["mlp", "cnn", "resnet20"]
    assert rows["resnet20"][1] == "274,154"  # digits: one input channel, so the stem has 3*3*1*16 + 16
    folder = tmp_path / "compare-mlp-cnn-resnet20-digits"
    (run,) = (folder / "runs").glob("resnet20-*-seed0")  # named by the spec's content hash too
    assert "Connected to" in (run / "summary.txt").read_text()
    assert "s1b1_add (Add)" in (folder / "report.md").read_text()
