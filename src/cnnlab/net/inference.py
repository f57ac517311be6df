"""Shape, parameter and MAC inference for a validated spec (pure Python).

Shapes are channels-last without the batch axis, as Keras shows them: ``(H, W, C)``
for images and ``(D,)`` once flattened. Each layer kind's rules come from the
registry; this module only walks the graph in order. MACs count the
multiply-accumulates of the layers' weights per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnlab.errors import SpecError
from cnnlab.net.registry import Params, shape_text
from cnnlab.net.spec import INPUT, LayerSpec, ModelSpec

BYTES_PER_FLOAT = 4


@dataclass(frozen=True)
class LayerInfo:
    """What one layer does to its inputs: shapes, parameters with their formula, MACs."""

    layer: LayerSpec
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    parameters: Params
    macs: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The (first) input's shape."""
        return self.input_shapes[0]

    @property
    def params(self) -> int:
        return self.parameters.total

    @property
    def trainable_params(self) -> int:
        return self.parameters.trainable

    @property
    def non_trainable_params(self) -> int:
        return self.parameters.non_trainable

    @property
    def formula(self) -> str:
        return self.parameters.formula

    def to_dict(self) -> dict:
        return {
            "name": self.layer.name,
            "type": self.layer.keras_class,
            "inputs": list(self.layer.inputs),
            "output_shape": list(self.output_shape),
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "formula": self.formula,
        }


@dataclass(frozen=True)
class ModelInfo:
    """Per-layer inference and the totals a summary footer shows."""

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerInfo, ...]
    is_chain: bool = True
    warnings: tuple[str, ...] = ()

    @property
    def total_params(self) -> int:
        return sum(info.params for info in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(info.trainable_params for info in self.layers)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def macs(self) -> int:
        return sum(info.macs for info in self.layers)

    @property
    def activation_bytes(self) -> int:
        """float32 bytes of every layer's output for one sample (the forward pass)."""
        return BYTES_PER_FLOAT * sum(math.prod(info.output_shape) for info in self.layers)

    @property
    def largest_layer(self) -> LayerInfo:
        """The layer holding the most parameters (the first one on a tie)."""
        return max(self.layers, key=lambda info: info.params)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [info.to_dict() for info in self.layers],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "macs": self.macs,
        }


def infer(spec: ModelSpec, input_shape: tuple[int, ...] | None = None) -> ModelInfo:
    """Infer every layer's output shape, parameters and MACs; raise SpecError if invalid."""
    shape = tuple(input_shape) if input_shape is not None else spec.input_shape
    if shape is None:
        raise SpecError(f"{spec.source}: the spec has no input shape; give one "
                        "(--input HxWxC, or 'input: [H, W, C]' in the spec)")
    shapes = {INPUT: shape}
    infos = []
    for layer in spec.layers:
        info = infer_layer(layer, tuple(shapes[name] for name in layer.inputs), f"{spec.source}: {layer.label}")
        infos.append(info)
        shapes[layer.name] = info.output_shape
    return ModelInfo(spec.name, shape, tuple(infos), spec.is_chain, spec.warnings)


def infer_layer(layer: LayerSpec, shapes: tuple[tuple[int, ...], ...], where: str) -> LayerInfo:
    """One layer's facts from its kind's rules, given its input shapes."""
    kind = layer.definition
    if kind.image_only:
        for name, shape in zip(layer.inputs, shapes):
            if len(shape) != 3:
                source = "the model input" if name == INPUT else f"'{name}'"
                raise SpecError(f"{where}: needs an image input (H, W, C), got {shape_text(shape)} from "
                                f"{source}; remove the flatten before it")
    output = tuple(kind.output_shape(layer, shapes, where))
    if min(output, default=1) <= 0:
        raise SpecError(f"{where}: the output shape {shape_text(output)} is empty")
    params = kind.params(layer, shapes)
    if not layer.trainable:  # Keras: every weight of a frozen layer is non-trainable
        params = Params(0, params.total, params.formula)
    return LayerInfo(layer, shapes, output, params, kind.macs(layer, shapes, output))
