"""cnnlab export: ONNX, Keras code and PyTorch code, each run and compared with cnnlab's predictions.

Every parameter and batchnorm statistic is randomised first, so a kernel in the wrong
layout, a missing permutation or swapped batchnorm statistics changes the predictions
(a fresh Keras initialisation has zero biases, unit variances and zero means).
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.export import export_network, open_network
from cnnlab.export.network import Network, reference_probabilities

from exported import as_numpy, channels_last, fresh_images, load_file, one_thread, randomise  # noqa: F401

os.environ.setdefault("KERAS_BACKEND", "torch")  # before any import of keras

ATOL = 1e-5  # max |difference| of a class probability, exported file vs cnnlab
pytestmark = pytest.mark.usefixtures("one_thread")
GRAPH = """
name: branches
input: [12, 12, 3]
layers:
  - {kind: rescaling, name: pixels, scale: 2.0, offset: -1.0}
  - {kind: conv2d, name: stem, filters: 4, kernel: 3, strides: 2, padding: same, activation: relu,
     kernel_initializer: partial_identity}
  - {kind: depthwise_conv2d, name: dw, kernel: 3, padding: same, depth_multiplier: 2, activation: tanh}
  - {kind: separable_conv2d, name: sep, inputs: [stem], filters: 8, kernel: 3, padding: same,
     depth_multiplier: 2, activation: gelu}
  - {kind: add, name: sum, inputs: [dw, sep]}
  - {kind: batchnorm, name: bn, scale: false}
  - {kind: zeropadding2d, name: pad, padding: [[0, 1], [1, 0]]}
  - {kind: avgpool2d, name: avg, pool: 2, padding: same}
  - {kind: maxpool2d, name: mx, inputs: [pad], pool: 3, strides: 2, padding: same}
  - {kind: concatenate, name: cat, inputs: [avg, mx]}
  - {kind: globalmaxpool2d, name: gmax}
  - {kind: dense, name: out, units: 5, activation: softmax}
"""
FLAT = """
name: flat
input: [6]
layers:
  - {kind: dense, units: 8, activation: elu}
  - {kind: activation, activation: leaky_relu}
  - {kind: dense, units: 8, activation: silu}
  - {kind: batchnorm, momentum: 0.9}
  - {kind: batchnorm, center: false}
  - {kind: activation, activation: softplus}
  - {kind: dense, units: 8, activation: sigmoid, use_bias: false}
  - {kind: dropout, rate: 0.3}
  - {kind: dense, units: 4}
  - {kind: rescaling, scale: 0.111}
"""
NETWORKS = {"mlp": "mlp", "cnn": "cnn", "resnet20": "resnet20", "graph": GRAPH, "flat": FLAT}


def randomised(source: str) -> Network:
    """The network of a spec or run, every weight drawn at random (see exported.randomise)."""
    return randomise(open_network(source))


def imports_cnnlab(path) -> bool:
    return bool(re.search(r"^\s*(import|from)\s+cnnlab\b", path.read_text(), re.MULTILINE))


def ort_session(ort, path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=list(NETWORKS))
def network(request):
    return request.param, randomised(NETWORKS[request.param])


def test_onnx_matches_cnnlab(network, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    _, net = network
    result = export_network(net, "onnx", tmp_path / "model.onnx")
    assert result.checks["max_diff"] <= ATOL and result.files == [tmp_path / "model.onnx"]
    session = ort_session(ort, tmp_path / "model.onnx")
    assert session.get_inputs()[0].shape[0] == "batch"  # a dynamic batch axis
    images = fresh_images(net)
    got = session.run(["probabilities"], {"images": images})[0]
    np.testing.assert_allclose(got, reference_probabilities(net, images), rtol=0, atol=ATOL)


def test_pytorch_file_matches_cnnlab(network, tmp_path):
    _, net = network
    export_network(net, "pytorch", tmp_path / "net_torch.py")
    module = load_file(tmp_path / "net_torch.py")
    model = module.load(tmp_path / "net_torch.safetensors")  # load_state_dict(strict=True) inside
    assert list(model.state_dict()) == list(net.model.state_dict())
    images = fresh_images(net)
    with torch.no_grad():
        got = model.probabilities(torch.from_numpy(images)).numpy()
        logits = model(torch.from_numpy(images)).numpy()
        expected_logits = net.model(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(got, reference_probabilities(net, images), rtol=0, atol=ATOL)
    np.testing.assert_allclose(logits, expected_logits, rtol=0, atol=1e-4)
    assert not imports_cnnlab(tmp_path / "net_torch.py")


def test_keras_file_matches_cnnlab(network, tmp_path):
    pytest.importorskip("keras", minversion="3.0", reason="Keras 3 is not installed (part of the dev extra)")
    _, net = network
    result = export_network(net, "keras", tmp_path / "net_keras.py", with_weights=True)
    assert result.checks["max_diff"] <= ATOL, result.checks
    module = load_file(tmp_path / "net_keras.py")
    model = module.build_model()
    module.load_weights(model, tmp_path / "net_keras.weights.npz")
    assert model.count_params() == net.info.total_params
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers[1:]}
    assert shapes == {info.layer.name: info.output_shape for info in net.info.layers}
    classes = {layer.name: type(layer).__name__ for layer in model.layers[1:]}
    assert classes == {info.layer.name: info.layer.keras_class for info in net.info.layers}
    images = fresh_images(net)
    got = as_numpy(model(channels_last(images), training=False))
    np.testing.assert_allclose(got, reference_probabilities(net, images), rtol=0, atol=ATOL)
    assert not imports_cnnlab(tmp_path / "net_keras.py")


def test_keras_code_reads_like_the_course():
    from cnnlab.export.keras_export import keras_call
    from cnnlab.net.spec import parse_spec

    spec = parse_spec([{"kind": "conv2d", "filters": 32, "kernel": 3, "strides": 2, "padding": "same",
                        "activation": "relu"}, {"kind": "maxpool2d", "pool": 3},
                       {"kind": "zeropadding2d", "padding": [[1, 1], [2, 2]]}, {"kind": "flatten"},
                       {"kind": "dense", "units": 10, "activation": "softmax", "use_bias": False}])
    assert [keras_call(layer) for layer in spec.layers] == [
        'keras.layers.Conv2D(32, (3, 3), strides=(2, 2), padding="same", activation="relu", name="conv2d")',
        'keras.layers.MaxPooling2D(pool_size=(3, 3), name="max_pooling2d")',
        'keras.layers.ZeroPadding2D(padding=(1, 2), name="zero_padding2d")',
        'keras.layers.Flatten(name="flatten")',
        'keras.layers.Dense(10, activation="softmax", use_bias=False, name="dense")']


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A one-epoch run of the MLP on digits, made by the CLI."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--name", "mlp",
                 "--quiet"]) == 0
    return out / "mlp"


def test_run_exports_from_the_command_line(run_dir, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    onnx_path, torch_path = tmp_path / "digits.onnx", tmp_path / "digits_torch.py"
    assert main(["export", str(run_dir), "--to", "onnx", "-o", str(onnx_path)]) == 0
    assert main(["export", str(run_dir), "--to", "pytorch", "-o", str(torch_path)]) == 0
    out = capsys.readouterr().out
    assert "torch.onnx dynamo=True" in out and "tolerance 1e-05" in out
    net = open_network(str(run_dir))
    images = fresh_images(net)
    session = ort_session(ort, onnx_path)
    got = session.run(None, {"images": images})[0]
    np.testing.assert_allclose(got, reference_probabilities(net, images), rtol=0, atol=ATOL)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["cnnlab.classes"] == '["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]'
    # The standalone file runs on its own, cnnlab unimportable: its __main__ loads the weights beside it
    # (strictly) and counts the parameters.
    script = ("import runpy, sys; sys.modules['cnnlab'] = None; "
              f"runpy.run_path({str(torch_path)!r}, run_name='__main__')")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"Mlp: {net.info.total_params:,} parameters"


def test_run_exports_keras_with_its_weights(run_dir, tmp_path, capsys):
    pytest.importorskip("keras", minversion="3.0", reason="Keras 3 is not installed (part of the dev extra)")
    path = tmp_path / "digits_keras.py"
    assert main(["export", str(run_dir), "--to", "keras", "-o", str(path)]) == 0
    assert "digits_keras.weights.npz" in capsys.readouterr().out
    module = load_file(path)
    classes = module.CLASS_NAMES
    assert classes == list("0123456789")
    model = module.build_model()
    module.load_weights(model)  # the weights file beside it, by default
    net = open_network(str(run_dir))
    images = fresh_images(net)
    got = as_numpy(model(channels_last(images), training=False))
    np.testing.assert_allclose(got, reference_probabilities(net, images), rtol=0, atol=ATOL)


def test_a_spec_exports_to_keras_as_code_only(tmp_path, capsys):
    pytest.importorskip("keras", minversion="3.0", reason="Keras 3 is not installed (part of the dev extra)")
    assert main(["export", "cnn", "--to", "keras", "-o", str(tmp_path / "cnn_keras.py")]) == 0
    assert "output shape and parameter count match" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["cnn_keras.py"]
    assert load_file(tmp_path / "cnn_keras.py").build_model().count_params() == 1_341_226


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cnnlab: error: "), err
    return err


def test_unknown_format_is_one_error(capsys):
    assert main(["export", "cnn", "--to", "tflite"]) == 2
    assert "--to: unknown format 'tflite'" in error_line(capsys)


def test_existing_output_is_refused_and_kept(tmp_path, capsys):
    path = tmp_path / "mine.onnx"
    path.write_text("not cnnlab's")
    assert main(["export", "mlp", "--to", "onnx", "-o", str(path)]) == 2
    assert f"{path}: exists" in error_line(capsys)
    assert path.read_text() == "not cnnlab's"


def test_links_and_taken_weights_files_are_refused(tmp_path, capsys):
    target = tmp_path / "target.py"
    target.write_text("kept")
    (tmp_path / "link.py").symlink_to(target)
    assert main(["export", "mlp", "--to", "pytorch", "-o", str(tmp_path / "link.py")]) == 2
    assert "symbolic link" in error_line(capsys) and target.read_text() == "kept"
    (tmp_path / "net.safetensors").write_bytes(b"mine")
    assert main(["export", "mlp", "--to", "pytorch", "-o", str(tmp_path / "net.py")]) == 2
    assert "net.safetensors: exists" in error_line(capsys)
    assert not (tmp_path / "net.py").exists() and (tmp_path / "net.safetensors").read_bytes() == b"mine"


@pytest.mark.parametrize("source, words", [
    ("no/such/thing", "neither a run directory"),
    ("EMPTY_DIR", "not a cnnlab run directory"),
])
def test_neither_run_nor_spec(source, words, tmp_path, capsys):
    if source == "EMPTY_DIR":
        source = str(tmp_path)
    assert main(["export", source, "--to", "pytorch", "-o", str(tmp_path / "x.py")]) == 2
    assert words in error_line(capsys)


def test_spec_without_input_needs_one(tmp_path, capsys):
    spec = tmp_path / "net.yaml"
    spec.write_text("layers:\n  - {kind: flatten}\n  - {kind: dense, units: 3, activation: softmax}\n")
    assert main(["export", str(spec), "--to", "pytorch", "-o", str(tmp_path / "a.py")]) == 2
    assert "give --input HxWxC" in error_line(capsys)
    assert main(["export", str(spec), "--to", "pytorch", "--input", "4x4x1", "-o", str(tmp_path / "a.py")]) == 0
    assert load_file(tmp_path / "a.py").INPUT_SHAPE == (1, 4, 4)


def test_missing_onnx_packages_are_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    assert main(["export", "mlp", "--to", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'cnnlab[onnx]'" in error_line(capsys) and not (tmp_path / "m.onnx").exists()


def test_an_export_that_fails_its_check_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("cnnlab.export.torch_export.TOLERANCE", -1.0)  # no difference can pass
    assert main(["export", "mlp", "--to", "pytorch", "-o", str(tmp_path / "m.py")]) == 2
    assert "differ from cnnlab's" in error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_model_from_python_exports(tmp_path, capsys):
    import cnnlab
    from cnnlab.cli.main import main
    from cnnlab.layers import Dense, Flatten, Input

    inp = Input(shape=(8, 8, 1))
    model = cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Flatten()(inp)), name="tiny")
    files = model.export(tmp_path / "tiny_torch.py", format="pytorch")
    assert [path.name for path in files] == ["tiny_torch.py", "tiny_torch.safetensors"]
    model.save(tmp_path / "tiny.cnnlab")
    output = str(tmp_path / "file_torch.py")
    assert main(["export", str(tmp_path / "tiny.cnnlab"), "--to", "pytorch", "-o", output]) == 0
    assert "verified with" in capsys.readouterr().out


def test_the_pytorch_file_keeps_a_frozen_layer_frozen(tmp_path):
    net = randomised(GRAPH.replace("kernel_initializer: partial_identity", "trainable: false"))
    export_network(net, "pytorch", tmp_path / "frozen_torch.py")
    model = load_file(tmp_path / "frozen_torch.py").load(tmp_path / "frozen_torch.safetensors")
    frozen = [name for name, param in model.named_parameters() if not param.requires_grad]
    assert frozen == ["blocks.1.conv.weight", "blocks.1.conv.bias"]  # the stem, after the rescaling


KERNEL_FROZEN = (GRAPH.replace("kernel_initializer: partial_identity", "kernel_trainable: false")
                 .replace("units: 5, activation: softmax", "units: 5, activation: softmax, kernel_trainable: false"))


def test_the_pytorch_file_keeps_a_frozen_kernel_frozen_and_its_bias_training(tmp_path):
    """cnnlab's kernel_trainable: false (airbench's whitened stem) has no torch argument: the file says it."""
    export_network(randomised(KERNEL_FROZEN), "pytorch", tmp_path / "kernel_torch.py")
    model = load_file(tmp_path / "kernel_torch.py").load(tmp_path / "kernel_torch.safetensors")
    frozen = [name for name, param in model.named_parameters() if not param.requires_grad]
    assert frozen == ["blocks.1.conv.weight", "blocks.11.linear.weight"]  # the stem's and the head's kernels


def test_the_keras_file_keeps_a_frozen_kernel_frozen_and_its_bias_training(tmp_path):
    pytest.importorskip("keras", minversion="3.0", reason="Keras 3 is not installed (part of the dev extra)")
    net = randomised(KERNEL_FROZEN)
    result = export_network(net, "keras", tmp_path / "kernel_keras.py", with_weights=True)
    assert result.checks["max_diff"] <= ATOL, result.checks
    model = load_file(tmp_path / "kernel_keras.py").build_model()
    trained = {layer.name: [weight.name for weight in layer.trainable_weights] for layer in model.layers}
    assert trained["stem"] == ["bias"] and trained["out"] == ["bias"]
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == net.info.trainable_params
