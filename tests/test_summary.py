"""The printed summary: golden tables, JSON shape, CLI behaviour, no torch on this path."""

import json
import subprocess
import sys

import pytest

from cnnlab.cli.main import main
from cnnlab.net.resolve import summarize
from cnnlab.presenters.summary_table import format_summary, readable_bytes

from fixtures import assert_error_line


@pytest.mark.parametrize("name", ["mlp", "cnn", "q32"])
def test_preset_tables_match_golden(name, capsys, golden):
    assert main(["summary", name]) == 0
    golden.check(f"summary_{name}.txt", capsys.readouterr().out)


def test_json_matches_golden_and_schema(capsys, golden):
    assert main(["summary", "q32", "--json"]) == 0
    printed = capsys.readouterr().out
    golden.check("summary_q32.json", printed)
    data = json.loads(printed)
    assert data["input_shape"] == [64, 64, 3]
    assert set(data["layers"][0]) == {"name", "type", "inputs", "output_shape", "params", "trainable_params",
                                      "macs", "formula"}
    assert data["total_params"] == sum(layer["params"] for layer in data["layers"])
    assert data["non_trainable_params"] == 0


def test_footer_names_largest_layer_and_sizes():
    text = format_summary(summarize("cnn"))
    assert "Total params: 1,341,226 (5.12 MB)" in text
    assert "Most parameters: dense (Dense) with 1,049,088 (78.2% of total)" in text
    assert "Forward MACs per sample: 39,687,168" in text


def test_batchnorm_counts_four_per_channel_two_frozen(capsys):
    spec = '{input: [8, 8, 3], layers: [{kind: conv2d, filters: 16, kernel: 3}, {kind: batchnorm}]}'
    info = summarize(spec)
    assert (info.layers[1].params, info.layers[1].trainable_params) == (64, 32)
    assert info.non_trainable_params == 32


def test_input_and_classes_override(capsys):
    assert main(["summary", "cnn", "--input", "8x8x1", "--classes", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [8, 8, 1]
    assert data["layers"][-1]["output_shape"] == [4]
    assert data["layers"][-1]["params"] == 512 * 4 + 4


def test_spec_file_and_error_exit(tmp_path, capsys):
    good = tmp_path / "net.yaml"
    good.write_text("name: tiny\ninput: [4, 4, 1]\n"
                    "layers:\n  - {kind: flatten}\n  - {kind: dense, units: 2}\n")
    assert main(["summary", str(good)]) == 0
    assert 'Model: "tiny"' in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [4, 4, 1]\nlayers:\n  - {kind: dense, units: 2}\n")
    assert main(["summary", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: layer 0 'dense' (dense)" in err and "flatten" in err


def test_unknown_preset_is_a_clear_error(capsys):
    assert main(["summary", "resnet"]) == 2
    err = capsys.readouterr().err
    assert ("neither a preset (mlp, cnn, resnet20, fast, airbench93, airbench94, q32) nor a spec file "
            "(did you mean 'resnet20'?)") in err


def test_bad_input_flag_is_refused(capsys):
    assert main(["summary", "cnn", "--input", "32x32"]) == 2
    assert_error_line(capsys.readouterr().err, "expected HxWxC")


def test_models_lists_presets(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    presets, kinds = out.split("\n\n")
    assert [line.split()[0] for line in presets.splitlines()] == ["mlp", "cnn", "resnet20", "fast", "airbench93",
                                                                  "airbench94", "q32"]
    from cnnlab.net.registry import all_kinds

    assert [line.split()[0] for line in kinds.splitlines()[1:]] == list(all_kinds())


def test_summary_does_not_import_torch():
    code = ("import sys; from cnnlab.cli.main import main; main(['summary', 'cnn']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "cnnlab", "summary", "mlp"],
                            capture_output=True, text=True, check=True)
    assert "Total params: 563,082" in result.stdout


def test_readable_bytes_uses_1024_units():
    assert readable_bytes(0) == "0.00 B"
    assert readable_bytes(2048) == "2.00 KB"
    assert readable_bytes(5 * 1024**2) == "5.00 MB"
