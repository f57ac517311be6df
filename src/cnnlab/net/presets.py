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


# Keras' momentum keeps this share of the old moving statistics. fast trains about 1,000 steps:
# statistics that follow the recent weights matter more there than smooth ones.
FAST_BN_MOMENTUM = 0.6


def _fast_group(filters: int) -> list[dict]:
    """conv, pool, BN, GELU, conv, BN, GELU: the first convolution works at full resolution, the second
    at half (pooling before normalising costs a quarter of the BN work), as airbench's groups do."""
    def conv():
        return {"kind": "conv2d", "filters": filters, "kernel": 3, "padding": "same", "use_bias": False}

    def bn_gelu():
        return [{"kind": "batchnorm", "momentum": FAST_BN_MOMENTUM, "epsilon": 1e-5},
                {"kind": "activation", "activation": "gelu"}]

    return [conv(), {"kind": "maxpool2d", "pool": 2}, *bn_gelu(), conv(), *bn_gelu()]


def _fast() -> list[dict]:
    """A small all-convolutional network in the spirit of airbench (Jordan, 2024): a frozen 2x2
    patch-whitening stem, three conv groups of 32, 96 and 128 filters, max pooling to one cell, a
    bias-free dense softmax. 26 M MACs per image, two thirds of ``cnn``'s: on a 2-core CPU the
    budget buys more epochs of a narrow network than of a wide one, and epochs won (docs/benchmarks.md)."""
    # The image's 2x2 patches whitened from the training data (24 = both signs of the 12
    # directions), frozen: the groups start from decorrelated, unit-variance features.
    stem = [{"kind": "conv2d", "filters": 24, "kernel": 2, "padding": "valid",
             "kernel_initializer": "patch_whitening", "trainable": False},
            {"kind": "activation", "activation": "gelu"}]
    # alternating flips (airbench's): every image is seen both ways in any two epochs in a row
    augment = [{"kind": "random_flip", "mode": "horizontal", "alternating": True},
               {"kind": "random_translation", "height_factor": 2 / 32, "width_factor": 2 / 32,
                "fill_mode": "reflect", "interpolation": "nearest"}]
    return [*augment, *stem, *_fast_group(32), *_fast_group(96), *_fast_group(128),
            {"kind": "maxpool2d", "pool": 3}, {"kind": "flatten"},
            {"kind": "dense", "units": 10, "activation": "softmax", "use_bias": False}]


def _airbench_group(filters: int) -> list[dict]:
    """airbench's conv group: conv, pool, BN, GELU, conv, BN, GELU; bias-free convolutions whose first
    filters start as the identity, batchnorm without a trained scale (momentum 0.6, epsilon 1e-12)."""
    def conv():
        return {"kind": "conv2d", "filters": filters, "kernel": 3, "padding": "same", "use_bias": False,
                "kernel_initializer": "partial_identity"}

    def bn_gelu():
        return [{"kind": "batchnorm", "momentum": 0.6, "epsilon": 1e-12, "scale": False},
                {"kind": "activation", "activation": "gelu"}]

    return [conv(), {"kind": "maxpool2d", "pool": 2}, *bn_gelu(), conv(), *bn_gelu()]


def _airbench(widths: tuple[int, int, int]) -> list[dict]:
    """airbench93/94 (Jordan 2024) in cnnlab's layer kinds: alternating flips and 2-pixel translations; a
    2x2 patch-whitening stem whose kernel stays frozen and whose bias trains for the first 3 epochs; three
    conv groups; max pooling to one cell; a bias-free dense layer whose logits are scaled by 1/9."""
    augment = [{"kind": "random_flip", "mode": "horizontal", "alternating": True},
               {"kind": "random_translation", "height_factor": 2 / 32, "width_factor": 2 / 32,
                "fill_mode": "reflect", "interpolation": "nearest"}]
    stem = [{"kind": "conv2d", "filters": 24, "kernel": 2, "padding": "valid", "kernel_initializer": "patch_whitening",
             "whitening_epsilon": 5e-4, "kernel_trainable": False, "trainable_epochs": 3},
            {"kind": "activation", "activation": "gelu"}]
    groups = [layer for width in widths for layer in _airbench_group(width)]
    return [*augment, *stem, *groups, {"kind": "maxpool2d", "pool": 3}, {"kind": "flatten"},
            {"kind": "dense", "units": 10, "use_bias": False}, {"kind": "rescaling", "scale": 1 / 9},
            {"kind": "activation", "activation": "softmax"}]


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
    "fast": {
        "description": "augmentation (alternating flip, 2-pixel translation), frozen 2x2 patch-whitening conv 24, "
                       "3 groups of [conv, pool, BN, GELU, conv, BN, GELU] (32/96/128), maxpool, dense 10 softmax; "
                       "its own recipe (fast)",
        "default_input": CIFAR10_INPUT,
        "recipe": "fast",
        "layers": _fast(),
    },
    "airbench93": {
        "description": "airbench93 (Jordan 2024) in cnnlab's kinds: alternating flip, 2-pixel translation, "
                       "frozen 2x2 whitening conv 24 (bias trained 3 epochs), 3 groups of [conv, pool, BN, GELU, "
                       "conv, BN, GELU] (64/128/128), maxpool, dense 10 / 9 softmax; its own recipe (airbench93)",
        "default_input": CIFAR10_INPUT,
        "recipe": "airbench93",
        "layers": _airbench((64, 128, 128)),
    },
    "airbench94": {
        "description": "airbench94 (Jordan 2024): airbench93 with groups of 64/256/256 filters; its own recipe "
                       "(airbench94: 10 epochs for the paper's 9.9, 476 steps against 480)",
        "default_input": CIFAR10_INPUT,
        "recipe": "airbench94",
        "layers": _airbench((64, 256, 256)),
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


def recipe_of(spec) -> str:
    """The recipe a spec trains with by default: a preset's own (``fast``), else the experiment's ``homework``."""
    entry = PRESETS.get(spec) if isinstance(spec, str) else None
    return (entry or {}).get("recipe", "homework")


def preset_name(spec: ModelSpec) -> str | None:
    """The preset a spec came from, or None for a user's spec."""
    return spec.name if spec.source == f"preset '{spec.name}'" else None
