"""Build a torch module from a validated spec, with Keras' semantics.

The module takes channels-first float input ``(N, C, H, W)`` (or ``(N, D)`` for a
flat input) and returns logits: a softmax on the last layer is left to the loss
(cross-entropy on logits is the numerically stable form) and to ``predict``.
Everything else follows Keras: 'same' padding puts the extra pixel after,
flatten reads channels-last order, batchnorm momentum is Keras' complement.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.net.inference import LayerInfo, infer, same_padding
from cnnlab.net.spec import ModelSpec

_ACTIVATIONS = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "gelu": nn.GELU,  # exact erf form, Keras 3's default
}


def _pads(info: LayerInfo, window: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(top, bottom), (left, right) padding that reproduces the layer's output size."""
    if info.layer["padding"] == "valid":
        return (0, 0), (0, 0)
    strides = info.layer["strides"]
    return (same_padding(info.input_shape[0], window[0], strides[0]),
            same_padding(info.input_shape[1], window[1], strides[1]))


class Conv2dBlock(nn.Module):
    """Conv2d (+ activation), with TensorFlow's asymmetric 'same' padding when needed."""

    def __init__(self, info: LayerInfo):
        super().__init__()
        layer = info.layer
        (top, bottom), (left, right) = _pads(info, layer["kernel"])
        symmetric = top == bottom and left == right
        self.pad = nn.Identity() if symmetric else nn.ZeroPad2d((left, right, top, bottom))
        self.conv = nn.Conv2d(info.input_shape[2], layer["filters"], layer["kernel"],
                              stride=layer["strides"], bias=layer["use_bias"],
                              padding=(top, left) if symmetric else 0)
        self.activation = _ACTIVATIONS[layer["activation"]]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(self.pad(x)))


class Pool2d(nn.Module):
    """Max or average pooling; 'same' padding ignores the padded cells, as Keras does."""

    def __init__(self, info: LayerInfo):
        super().__init__()
        layer = info.layer
        self.is_max = layer.kind == "maxpool2d"
        (top, bottom), (left, right) = _pads(info, layer["pool"])
        self.padding = (left, right, top, bottom)
        self.padded = any(self.padding)
        pool_cls = nn.MaxPool2d if self.is_max else nn.AvgPool2d
        self.pool = pool_cls(layer["pool"], stride=layer["strides"])
        if self.padded and not self.is_max:
            # Fraction of real (unpadded) cells under each window, to rescale the mean.
            ones = torch.ones(1, 1, info.input_shape[0], info.input_shape[1])
            self.register_buffer("coverage", self.pool(F.pad(ones, self.padding)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.padded:
            return self.pool(x)
        if self.is_max:
            return self.pool(F.pad(x, self.padding, value=float("-inf")))
        return self.pool(F.pad(x, self.padding)) / self.coverage


class KerasFlatten(nn.Module):
    """Flatten in channels-last order, so unit i of the next dense sees Keras' feature i."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C); free in channels_last
        return x.flatten(1)  # (N, H*W*C)


class DenseBlock(nn.Module):
    def __init__(self, info: LayerInfo):
        super().__init__()
        layer = info.layer
        self.linear = nn.Linear(info.input_shape[0], layer["units"], bias=layer["use_bias"])
        self.activation = _ACTIVATIONS[layer["activation"]]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class Dropout(nn.Module):
    """Inverted dropout (Keras' and torch's), drawing its keep-mask from 16-bit random numbers.

    Four mask entries come from each 64-bit random word, which on the CPU takes a third
    of the time ``bernoulli_`` does (the MLP's dropouts were a tenth of its step). The
    drop probability is ``rate`` rounded to a multiple of 1/65536.
    """

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate
        self.threshold = -32768 + round(rate * 65536)  # int16 values below it are dropped
        self.scale = 1.0 / (1.0 - rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        count = x.numel()
        words = torch.empty((count + 3) // 4, dtype=torch.int64, device=x.device)
        words.random_(-2**63, 2**63 - 1)  # the full 64 bits
        keep = words.view(torch.int16)[:count].view(x.shape) >= self.threshold
        return x * keep * self.scale

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class GlobalAvgPool2d(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))  # (N, C, H, W) -> (N, C)


def _batchnorm(info: LayerInfo) -> nn.Module:
    layer = info.layer
    cls = nn.BatchNorm2d if len(info.input_shape) == 3 else nn.BatchNorm1d
    # Keras' moving average keeps `momentum` of the old value; torch's momentum is the new share.
    return cls(info.input_shape[-1], eps=layer["epsilon"], momentum=1 - layer["momentum"])


def _build_layer(info: LayerInfo) -> nn.Module:
    kind = info.layer.kind
    if kind == "conv2d":
        return Conv2dBlock(info)
    if kind in ("maxpool2d", "avgpool2d"):
        return Pool2d(info)
    if kind == "dense":
        return DenseBlock(info)
    if kind == "dropout":
        return Dropout(info.layer["rate"])
    if kind == "activation":
        return _ACTIVATIONS[info.layer["activation"]]()
    if kind == "batchnorm":
        return _batchnorm(info)
    return {"flatten": KerasFlatten, "globalavgpool2d": GlobalAvgPool2d}[kind]()


class SpecModel(nn.Module):
    """A network built from a spec; ``blocks[i]`` is spec layer ``i``."""

    def __init__(self, spec: ModelSpec, input_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.info = infer(spec, input_shape)
        self.spec = spec
        self.layer_names = [info.layer.name for info in self.info.layers]
        self.blocks = nn.ModuleList(_build_layer(info) for info in self.info.layers)
        last = spec.layers[-1]
        # The final softmax is applied by predict(); forward() returns logits.
        self.softmax_output = last.kind in ("dense", "activation") and last["activation"] == "softmax"
        if self.softmax_output:
            self._strip_final_softmax()

    def _strip_final_softmax(self) -> None:
        last = self.blocks[-1]
        if isinstance(last, DenseBlock):
            last.activation = nn.Identity()
        else:
            self.blocks[-1] = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        logits = self(x)
        return torch.softmax(logits, dim=1) if self.softmax_output else logits


def keras_init(model: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases, as a fresh Keras model has."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_model(spec: ModelSpec, input_shape: tuple[int, ...] | None = None,
                init: str = "keras") -> SpecModel:
    """Build the torch module for ``spec``; ``init`` is 'keras' (default) or 'torch'."""
    if init not in ("keras", "torch"):
        raise ValueError(f"unknown init '{init}'; expected 'keras' or 'torch'")
    model = SpecModel(spec, input_shape)
    if init == "keras":
        keras_init(model)
    return model
