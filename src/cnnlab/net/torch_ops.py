"""Torch modules the layer kinds build from, with Keras' semantics (imported only to build).

Tensors are channels-first ``(N, C, H, W)`` (or ``(N, D)`` once flat). What Keras does
differently from torch's defaults is done here once: TensorFlow's asymmetric 'same'
padding, pooling that ignores padded cells, flatten in channels-last order.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.net.geometry import same_padding

_ACTIVATIONS = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "gelu": nn.GELU,                                   # exact erf form, Keras 3's default
    "leaky_relu": lambda: nn.LeakyReLU(0.2),           # keras.activations.leaky_relu's slope
    "elu": nn.ELU,                                     # alpha 1.0, as Keras
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
}


def activation_module(name: str) -> nn.Module:
    return _ACTIVATIONS[name]()


def _pads(input_shape, window, strides, padding, dilation=(1, 1)):
    """(top, bottom), (left, right) padding that reproduces Keras' output size."""
    if padding == "valid":
        return (0, 0), (0, 0)
    return (same_padding(input_shape[0], window[0], strides[0], dilation[0]),
            same_padding(input_shape[1], window[1], strides[1], dilation[1]))


class Conv2dBlock(nn.Module):
    """Conv2d (+ activation), with TensorFlow's asymmetric 'same' padding when needed.

    ``groups`` equal to the input channels makes it depthwise (Keras' DepthwiseConv2D).
    """

    def __init__(self, input_shape, out_channels: int, kernel, strides, padding: str, dilation, groups: int,
                 bias: bool, activation: str):
        super().__init__()
        (top, bottom), (left, right) = _pads(input_shape, kernel, strides, padding, dilation)
        symmetric = top == bottom and left == right
        self.pad = nn.Identity() if symmetric else nn.ZeroPad2d((left, right, top, bottom))
        self.conv = nn.Conv2d(input_shape[2], out_channels, kernel, stride=strides, dilation=dilation,
                              groups=groups, bias=bias, padding=(top, left) if symmetric else 0)
        self.activation = activation_module(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(self.pad(x)))


class Pool2d(nn.Module):
    """Max or average pooling; 'same' padding ignores the padded cells, as Keras does."""

    def __init__(self, is_max: bool, input_shape, pool, strides, padding: str):
        super().__init__()
        self.is_max = is_max
        (top, bottom), (left, right) = _pads(input_shape, pool, strides, padding)
        self.padding = (left, right, top, bottom)
        self.padded = any(self.padding)
        self.pool = (nn.MaxPool2d if is_max else nn.AvgPool2d)(pool, stride=strides)
        if self.padded and not is_max:
            # Fraction of real (unpadded) cells under each window, to rescale the mean.
            ones = torch.ones(1, 1, input_shape[0], input_shape[1])
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
    def __init__(self, fan_in: int, units: int, bias: bool, activation: str):
        super().__init__()
        self.linear = nn.Linear(fan_in, units, bias=bias)
        self.activation = activation_module(activation)

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


class Rescale(nn.Module):
    """Keras' Rescaling: ``x * scale + offset``, element-wise; the two numbers are constants, not weights."""

    def __init__(self, scale: float, offset: float):
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset if self.offset else x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}, offset={self.offset}"


class GlobalPool2d(nn.Module):
    def __init__(self, reduce: str):
        super().__init__()
        self.reduce = reduce

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C, H, W) -> (N, C)
        return x.mean(dim=(2, 3)) if self.reduce == "mean" else x.amax(dim=(2, 3))


class Add(nn.Module):
    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total


class Concatenate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim  # a torch dimension of (N, C, H, W) or (N, D)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=self.dim)


def keras_init(model: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases, as a fresh Keras model has.

    Keras stores a depthwise kernel as (kh, kw, in, multiplier), so its fans are
    in*kh*kw and multiplier*kh*kw, not torch's grouped-weight fans.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels:
                kh, kw = module.kernel_size
                fan_in, fan_out = module.in_channels * kh * kw, module.out_channels // module.groups * kh * kw
                limit = (6 / (fan_in + fan_out)) ** 0.5
                nn.init.uniform_(module.weight, -limit, limit)
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def batch_norm(input_shape, eps: float, momentum: float, center: bool, scale: bool) -> nn.Module:
    """torch's batch normalisation of an (H, W, C) or (C,) input; without Keras' gamma (``scale``
    false: fixed at 1) or beta (``center`` false: fixed at 0), which F.batch_norm reads as None."""
    cls = nn.BatchNorm2d if len(input_shape) == 3 else nn.BatchNorm1d
    module = cls(input_shape[-1], eps=eps, momentum=momentum)
    if not scale:
        module.register_parameter("weight", None)
    if not center:
        module.register_parameter("bias", None)
    return module


@torch.no_grad()
def partial_identity_init(model: nn.Module) -> None:
    """The convolutions marked ``partial_identity``: filter i < min(filters, channels) becomes the
    identity of input channel i (1 at the kernel's centre), the others keep their initialisation."""
    for module in model.modules():
        if getattr(module, "partial_identity", False):
            weight = module.conv.weight  # (out, in, kh, kw)
            nn.init.dirac_(weight[:min(weight.shape[0], weight.shape[1])])
