"""Shape, parameter and MAC inference for a validated spec (pure Python).

Shapes are channels-last without the batch axis, as Keras shows them:
``(H, W, C)`` for images and ``(D,)`` once flattened. MACs count the
multiply-accumulates of the weights of conv2d and dense layers per sample;
pooling, activations and normalisation are counted as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnlab.net.spec import LayerSpec, ModelSpec, SpecError

BYTES_PER_FLOAT = 4


@dataclass(frozen=True)
class LayerInfo:
    """What one layer does to its input: shape, parameters, formula, MACs."""

    layer: LayerSpec
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    formula: str
    macs: int

    @property
    def non_trainable_params(self) -> int:
        return self.params - self.trainable_params

    def to_dict(self) -> dict:
        return {
            "name": self.layer.name,
            "type": self.layer.keras_class,
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


def output_size(size: int, window: int, stride: int, padding: str) -> int:
    """Keras' output length along one axis: 'valid' floors, 'same' is ceil(size/stride)."""
    if padding == "same":
        return -(-size // stride)
    return (size - window) // stride + 1


def same_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after): the extra pixel goes after."""
    total = max((output_size(size, window, stride, "same") - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def infer(spec: ModelSpec, input_shape: tuple[int, ...] | None = None) -> ModelInfo:
    """Infer every layer's output shape, parameters and MACs; raise SpecError if invalid."""
    shape = tuple(input_shape) if input_shape is not None else spec.input_shape
    if shape is None:
        raise SpecError(f"{spec.source}: the spec has no input shape; give one "
                        "(--input HxWxC, or 'input: [H, W, C]' in the spec)")
    start = shape
    infos = []
    for layer in spec.layers:
        info = _infer_layer(layer, shape, spec.source)
        infos.append(info)
        shape = info.output_shape
    return ModelInfo(spec.name, start, tuple(infos))


def _infer_layer(layer: LayerSpec, shape: tuple[int, ...], source: str) -> LayerInfo:
    where = f"{source}: {layer.label}"
    rule = _RULES[layer.kind]
    out, params, trainable, formula, macs = rule(layer, shape, where)
    return LayerInfo(layer, shape, out, params, trainable, formula, macs)


def _need_image(shape: tuple[int, ...], where: str) -> None:
    if len(shape) != 3:
        raise SpecError(f"{where}: needs an image input (H, W, C), got (None, "
                        f"{', '.join(map(str, shape))}); remove the flatten before it")


def _spatial(layer: LayerSpec, shape: tuple[int, ...], window_key: str, where: str):
    """Output (H, W) of a windowed layer, refusing windows that do not fit."""
    _need_image(shape, where)
    window, strides, padding = layer[window_key], layer["strides"], layer["padding"]
    out = [output_size(shape[i], window[i], strides[i], padding) for i in (0, 1)]
    if padding == "valid" and (window[0] > shape[0] or window[1] > shape[1]):
        would = f"(None, {out[0]}, {out[1]}, ...)"
        raise SpecError(
            f"{where}: field '{window_key}': {window[0]}x{window[1]} is larger than its input "
            f"{shape[0]}x{shape[1]} with padding 'valid'; the output would be {would}. "
            f"Use padding 'same' or a smaller {window_key}")
    return out[0], out[1]


def _conv2d(layer, shape, where):
    height, width = _spatial(layer, shape, "kernel", where)
    (kh, kw), cin, filters = layer["kernel"], shape[2], layer["filters"]
    weights = kh * kw * cin * filters
    bias = filters if layer["use_bias"] else 0
    formula = f"{kh}*{kw}*{cin}*{filters}" + (f" + {filters}" if bias else "")
    macs = height * width * filters * kh * kw * cin
    return (height, width, filters), weights + bias, weights + bias, formula, macs


def _pool(layer, shape, where):
    height, width = _spatial(layer, shape, "pool", where)
    return (height, width, shape[2]), 0, 0, "0", 0


def _flatten(layer, shape, where):
    return (math.prod(shape),), 0, 0, "0", 0


def _dense(layer, shape, where):
    if len(shape) != 1:
        raise SpecError(f"{where}: dense needs a flat input, got (None, "
                        f"{', '.join(map(str, shape))}); add a {{kind: flatten}} layer before it")
    fan_in, units = shape[0], layer["units"]
    bias = units if layer["use_bias"] else 0
    formula = f"{fan_in}*{units}" + (f" + {units}" if bias else "")
    return (units,), fan_in * units + bias, fan_in * units + bias, formula, fan_in * units


def _passthrough(layer, shape, where):
    return shape, 0, 0, "0", 0


def _batchnorm(layer, shape, where):
    channels = shape[-1]
    # Keras: gamma and beta train; moving mean and variance do not.
    return shape, 4 * channels, 2 * channels, f"4*{channels}", 0


def _global_avg(layer, shape, where):
    _need_image(shape, where)
    return (shape[2],), 0, 0, "0", 0


_RULES = {
    "conv2d": _conv2d,
    "maxpool2d": _pool,
    "avgpool2d": _pool,
    "flatten": _flatten,
    "dense": _dense,
    "dropout": _passthrough,
    "activation": _passthrough,
    "batchnorm": _batchnorm,
    "globalavgpool2d": _global_avg,
}
