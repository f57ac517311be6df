"""Every registered layer kind exports: to PyTorch code and to Keras, each run and compared with cnnlab.

The tests are parametrized over the registry and the networks drawn from it (field values
from tests/strategies.py), so a kind added without ``torch_code``, or without a
``keras_layout`` for its weights, fails here rather than in a user's export. Each network
is the kind's layer (reading the input and, for a merge, a 1x1 convolution or dense layer
of it) and a softmax head, every weight drawn at random.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnlab.errors import SpecError
from cnnlab.export import ExportError, export_network, open_network
from cnnlab.export.keras_weights import reaching_output
from cnnlab.export.network import Network, reference_probabilities
from cnnlab.net.builder import build_model
from cnnlab.net.fields import Field, PositiveFloat
from cnnlab.net.inference import infer
from cnnlab.net.registry import LayerKind, Params, all_kinds, registered
from cnnlab.net.spec import INPUT, parse_spec

from exported import as_numpy, channels_last, fresh_images, load_file, one_thread, randomise  # noqa: F401
from strategies import layer_fields, random_graphs

os.environ.setdefault("KERAS_BACKEND", "torch")  # before any import of keras

ATOL = 1e-5  # max |difference| of a class probability, exported file vs cnnlab
KINDS = sorted(all_kinds())
EXAMPLES = settings(max_examples=6, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# Keras faults the Keras export names when it refuses (keras_export.py): RandomCrop does not crop at
# inference; the torch backend averages 'same'-padded pooling windows otherwise than TensorFlow.
KERAS_FAULTS = ("keras-team/keras#21868", "keras-team/keras#18452")
pytestmark = pytest.mark.usefixtures("one_thread")


@st.composite
def kind_networks(draw, name: str) -> dict:
    """A spec dict exercising kind ``name``: its layer (fields drawn) on an input it fits, then a head."""
    kind = all_kinds()[name]
    image = kind.image_only or draw(st.booleans())
    shape = [draw(st.integers(3, 7)), draw(st.integers(3, 7)), draw(st.integers(1, 3))] if image else \
        [draw(st.integers(2, 8))]
    layers = []
    inputs = [INPUT] * kind.min_inputs
    if kind.min_inputs > 1:  # a merge reads the input and a layer of the input's shape
        layers.append({"kind": "conv2d", "name": "pre", "filters": shape[-1], "kernel": 1} if image else
                      {"kind": "dense", "name": "pre", "units": shape[0]})
        inputs[1] = "pre"
    layers.append({"kind": name, "name": "probe", "inputs": inputs, **draw(layer_fields(kind))})
    try:
        rank = len(infer(parse_spec({"input": shape, "layers": layers})).output_shape)
    except SpecError:
        assume(False)
    head = [{"kind": "flatten", "name": "flat"}] if rank == 3 else []
    return {"name": f"probe_{name}", "input": shape,
            "layers": [*layers, *head, {"kind": "dense", "name": "head", "units": 3, "activation": "softmax"}]}


def randomised_network(data: dict) -> Network:
    spec = parse_spec(data)
    return randomise(Network(build_model(spec).eval(), spec.name, f"spec {spec.name}", trained=False))


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", minversion="3.0", reason="Keras 3 is not installed (part of the dev extra)")


@pytest.mark.parametrize("name", KINDS)
@EXAMPLES
@given(data=st.data())
def test_every_kind_exports_to_keras(keras, name, data):
    net = randomised_network(data.draw(kind_networks(name)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe_keras.py"
        try:
            export_network(net, "keras", path, with_weights=True)
        except ExportError as error:  # a documented Keras fault: the code alone is exported and checked
            if not any(fault in str(error) for fault in KERAS_FAULTS):
                raise
            export_network(net, "keras", path, with_weights=False)
        module = load_file(path)
        model = module.build_model()
        shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers[1:]}
        assert shapes == {info.layer.name: info.output_shape for info in net.info.layers
                          if info.layer.definition.in_keras}  # cnnlab's own kinds are left out, as identity
        assert model.count_params() == net.info.total_params
        if not hasattr(module, "load_weights"):
            return
        module.load_weights(model, path.with_name("probe_keras.weights.npz"))
    images = fresh_images(net)
    got = as_numpy(model(channels_last(images), training=False))
    np.testing.assert_allclose(got, reference_probabilities(net, images), rtol=0, atol=ATOL)


class _Gain(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x * self.gain.view((1, -1, 1, 1) if x.dim() == 4 else (1, -1))


class Gain(LayerKind):
    """A made-up kind with a weight, a shape rule and a torch module, but no exporter of its own."""

    name, keras_class = "gain_test", "Gain"
    fields = {"init": Field(PositiveFloat(), 1.0)}

    def output_shape(self, layer, shapes, where):
        return shapes[0]

    def params(self, layer, shapes):
        return Params(shapes[0][-1], formula=str(shapes[0][-1]))

    def build(self, info):
        return _Gain(info.input_shape[-1])


def test_a_kind_without_exporters_is_refused_by_name(tmp_path):
    with registered(Gain):
        net = open_network("input: [4]\nlayers:\n  - {kind: gain_test, name: g}\n  - {kind: dense, units: 2}\n")
        with pytest.raises(ExportError, match="layer 0 'g'.*no code for layer kind 'gain_test'"):
            export_network(net, "pytorch", tmp_path / "g_torch.py")
        with pytest.raises(ExportError, match="layer 0 'g'.*weights gain go.*'gain_test' has no keras_layout"):
            export_network(net, "keras", tmp_path / "g_keras.py", with_weights=True)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def keras_oracle():
    return pytest.importorskip("keras_oracle")  # skipped, with the reason, where Keras 3 is absent


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(random_graphs())
def test_the_exported_layers_are_the_ones_keras_keeps(keras_oracle, data):
    # The Keras export loads weights only for the layers the output depends on; Keras' functional
    # model holds exactly those. The exporter's own walk is checked against Keras' graph here.
    spec = parse_spec(data)
    model, _ = keras_oracle.keras_model(spec)
    assert reaching_output(spec) == {layer.name for layer in model.layers} - {keras_oracle.INPUT_NAME}
