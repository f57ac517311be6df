"""The built-in networks of the experiment, layer for layer (pure data).

``mlp``, ``cnn`` and ``resnet20`` carry no input shape: the dataset supplies it when
training, and summaries default to CIFAR-10's 32x32x3. ``q32`` is the network to analyse.
"""

from __future__ import annotations

from cnnlab.net.fields import shown, suggest
from cnnlab.net.spec import ModelSpec, SpecError, parse_spec

CIFAR10_INPUT = (32, 32, 3)


def _conv_block(filters: int) -> list[dict]:
    conv = {"kind": "conv2d", "filters": filters, "kernel": 3, "padding": "same",
            "activation": "relu"}
    return [conv, dict(conv), {"kind": "maxpool2d", "pool": 2, "strides": 2}]


# torch's default. Keras' 0.99 needs thousands of steps before the moving statistics are usable:
# on digits (36 steps an epoch) validation accuracy stayed near chance for all 5 epochs with it.
BN_MOMENTUM = 0.9


def _conv_bn(name: str, filters: int, kernel: int, strides: int, inputs: str, relu: bool = True) -> list[dict]:
    """ResNet's unit: conv (with bias, as the Keras example has it), batchnorm, optionally relu."""
    unit = [{"kind": "conv2d", "name": f"{name}_conv", "inputs": [inputs], "filters": filters,
             "kernel": kernel, "strides": strides, "padding": "same"},
            {"kind": "batchnorm", "name": f"{name}_bn", "momentum": BN_MOMENTUM}]
    return unit + ([{"kind": "activation", "name": f"{name}_relu", "activation": "relu"}] if relu else [])


def _resnet_v1(depth: int = 20) -> list[dict]:
    """He et al. (2016) CIFAR ResNet v1, as the Keras CIFAR-10 example builds it: three stages of
    (depth - 2) / 6 two-unit blocks at 16, 32, 64 filters; a 1x1 projection where the shape changes;
    global average pooling (the example's 8x8 average pool, valid on any image size), dense softmax.
    Batchnorm momentum is 0.9 rather than the example's 0.99 (see BN_MOMENTUM)."""
    layers = _conv_bn("stem", 16, 3, 1, "input")
    shortcut = "stem_relu"
    for stage, filters in enumerate((16, 32, 64)):
        for block in range((depth - 2) // 6):
            tag = f"s{stage + 1}b{block + 1}"
            strides = 2 if stage > 0 and block == 0 else 1
            layers += _conv_bn(f"{tag}_a", filters, 3, strides, shortcut)
            layers += _conv_bn(f"{tag}_b", filters, 3, 1, f"{tag}_a_relu", relu=False)
            if strides > 1:  # the shape changes: project the shortcut with a 1x1 convolution
                layers.append({"kind": "conv2d", "name": f"{tag}_proj", "inputs": [shortcut], "filters": filters,
                               "kernel": 1, "strides": strides, "padding": "same"})
                shortcut = f"{tag}_proj"
            layers += [{"kind": "add", "name": f"{tag}_add", "inputs": [shortcut, f"{tag}_b_bn"]},
                       {"kind": "activation", "name": f"{tag}_out", "activation": "relu"}]
            shortcut = f"{tag}_out"
    return layers + [{"kind": "globalavgpool2d", "name": "pool"},
                     {"kind": "dense", "name": "classifier", "units": 10, "activation": "softmax"}]


PRESETS: dict[str, dict] = {
    "mlp": {
        "description": "flatten, dense 128/256/512 relu with dropout 0.2, dense 10 softmax",
        "default_input": CIFAR10_INPUT,
        "layers": [
            {"kind": "flatten"},
            {"kind": "dense", "units": 128, "activation": "relu"},
            {"kind": "dropout", "rate": 0.2},
            {"kind": "dense", "units": 256, "activation": "relu"},
            {"kind": "dropout", "rate": 0.2},
            {"kind": "dense", "units": 512, "activation": "relu"},
            {"kind": "dropout", "rate": 0.2},
            {"kind": "dense", "units": 10, "activation": "softmax"},
        ],
    },
    "cnn": {
        "description": "3 blocks of [conv 3x3 same relu x2, maxpool 2] (32/64/128), "
                       "dropout 0.2, dense 512 relu, dropout 0.5, dense 10 softmax",
        "default_input": CIFAR10_INPUT,
        "layers": [
            *_conv_block(32), *_conv_block(64), *_conv_block(128),
            {"kind": "flatten"},
            {"kind": "dropout", "rate": 0.2},
            {"kind": "dense", "units": 512, "activation": "relu"},
            {"kind": "dropout", "rate": 0.5},
            {"kind": "dense", "units": 10, "activation": "softmax"},
        ],
    },
    "resnet20": {
        "description": "CIFAR ResNet-20 v1 (He et al. 2016): conv-BN-ReLU, 3 stages x 3 residual blocks "
                       "(16/32/64), projection shortcuts, global average pooling, dense 10 softmax",
        "default_input": CIFAR10_INPUT,
        "layers": _resnet_v1(20),
    },
    "q32": {
        "description": "the network to analyse: 64x64x3, conv 16 3x3, conv 32 5x5, "
                       "maxpool 3x3/2, conv 128 3x3, fully connected 5",
        "input": [64, 64, 3],
        "layers": [
            {"kind": "conv2d", "filters": 16, "kernel": 3, "padding": "same", "activation": "relu"},
            {"kind": "conv2d", "filters": 32, "kernel": 5, "padding": "same", "activation": "relu"},
            {"kind": "maxpool2d", "pool": 3, "strides": 2},
            {"kind": "conv2d", "filters": 128, "kernel": 3, "padding": "same"},
            {"kind": "flatten"},
            {"kind": "dense", "units": 5},
        ],
    },
}


def preset(name: str) -> ModelSpec:
    """A preset's validated spec (``mlp``, ``cnn``, ``resnet20`` or ``q32``)."""
    if name not in PRESETS:
        raise SpecError(f"unknown preset {shown(name)}{suggest(name, PRESETS)}; presets: {', '.join(PRESETS)}")
    entry = PRESETS[name]
    data = {"name": name, "layers": entry["layers"]}
    if "input" in entry:
        data["input"] = entry["input"]
    return parse_spec(data, source=f"preset '{name}'")


def default_input(name: str) -> tuple[int, ...]:
    """The input a preset is summarised with when none is given."""
    entry = PRESETS[name]
    return tuple(entry.get("input") or entry["default_input"])


def preset_name(spec: ModelSpec) -> str | None:
    """The preset a spec came from, or None for a user's spec."""
    return spec.name if spec.source == f"preset '{spec.name}'" else None
