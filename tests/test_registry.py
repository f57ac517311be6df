"""The registry is the one place a layer kind lives: a made-up kind works everywhere from its class alone."""

from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.net.fields import Field, PositiveFloat
from cnnlab.net.registry import KINDS, LayerKind, Params, registered
from cnnlab.net.spec_file import parse_spec_text
from cnnlab.presenters.kinds_table import kinds_markdown
from cnnlab.presenters.summary_table import format_summary

from oracle import analytic_layer_facts, torch_layer_facts


class _ScaleModule(torch.nn.Module):
    def __init__(self, channels: int, init: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((channels,), init))

    def forward(self, x):
        shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)  # per channel of (N, C, H, W) or (N, D)
        return x * self.weight.view(shape)


class Scale(LayerKind):
    """A made-up kind, defined only here: one learned factor per channel."""

    name, keras_class, doc = "scale", "Scale", "multiplies each channel by a learned factor"
    fields = {"init": Field(PositiveFloat(), 1.0)}
    keras_args = ("init",)

    def output_shape(self, layer, shapes, where):
        return shapes[0]

    def params(self, layer, shapes):
        return Params(shapes[0][-1], formula=f"{shapes[0][-1]}")

    def build(self, info):
        return _ScaleModule(info.input_shape[-1], info.layer["init"])


SPEC = """
input: [8, 8, 1]
layers:
  - {kind: conv2d, filters: 4, kernel: 3, padding: same, activation: relu}
  - {kind: scale, init: 0.5}
  - {kind: add, inputs: [conv2d, scale]}
  - {kind: flatten}
  - {kind: dense, units: 10, activation: softmax}
"""


@pytest.fixture
def scale_kind():
    with registered(Scale) as kind:
        yield kind
    assert "scale" not in KINDS


def test_made_up_kind_summarises_and_builds(scale_kind):
    info = cnnlab.summarize(SPEC)
    assert "scale (Scale)" in format_summary(info)
    assert info.layers[1].params == 4 and info.layers[1].formula == "4"
    spec = parse_spec_text(SPEC)
    assert torch_layer_facts(spec, (8, 8, 1)) == analytic_layer_facts(info)


def test_made_up_kind_has_a_keras_layer_and_docs_row(scale_kind):
    from cnnlab.layers import Dense, Flatten, Input  # found by its Keras class name
    from cnnlab.layers import Scale as ScaleLayer

    inp = Input(shape=(4,))
    out = Dense(2)(Flatten()(ScaleLayer(init=2.0)(inp)))
    assert cnnlab.Model(inputs=inp, outputs=out).count_params() == 4 + 4 * 2 + 2
    assert "| `scale` | `Scale` | `init` (1.0) |" in kinds_markdown()


def test_made_up_kind_trains(scale_kind):
    data = cnnlab.load_data("digits")
    model = cnnlab.Model(SPEC)
    history = model.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    factors = model.module.blocks[1].weight.detach()
    assert not torch.equal(factors, torch.full((4,), 0.5))  # the new kind's parameter was trained


def test_networks_guide_documents_every_kind():
    guide = (Path(__file__).parent.parent / "docs" / "networks.md").read_text()
    assert kinds_markdown() in guide, "docs/networks.md's kind table differs from the registry: paste kinds_markdown()"


def test_a_kind_cannot_be_registered_twice():
    from cnnlab.net.kinds.core import Dense

    with pytest.raises(ValueError, match="registered already"), registered(Dense):
        pass
