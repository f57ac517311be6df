"""The built-in networks of the experiment, layer for layer (pure data).

``mlp`` and ``cnn`` carry no input shape: the dataset supplies it when training,
and summaries default to CIFAR-10's 32x32x3. ``q32`` is the network to analyse.
"""

from __future__ import annotations

from cnnlab.net.spec import ModelSpec, SpecError, parse_spec

CIFAR10_INPUT = (32, 32, 3)


def _conv_block(filters: int) -> list[dict]:
    conv = {"kind": "conv2d", "filters": filters, "kernel": 3, "padding": "same",
            "activation": "relu"}
    return [conv, dict(conv), {"kind": "maxpool2d", "pool": 2, "strides": 2}]


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
    """A preset's validated spec (``mlp``, ``cnn`` or ``q32``)."""
    if name not in PRESETS:
        raise SpecError(f"unknown preset '{name}'; presets: {', '.join(PRESETS)}")
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
