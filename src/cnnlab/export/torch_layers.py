"""Per layer kind, the torch module of a standalone PyTorch file, as source code.

Each module has the submodule names cnnlab's own builder gives (``conv``, ``linear``,
``0``/``1`` of a separable convolution, batchnorm's own), so cnnlab's state dict,
``blocks.<i>.…``, loads into the generated network with ``strict=True``. Keras'
semantics that torch's defaults lack are written out in small classes (:data:`HELPERS`),
copied into the file only when a layer needs them.
"""

from __future__ import annotations

import re

from cnnlab.export.codegen import literal
from cnnlab.export.network import ExportError
from cnnlab.net.geometry import same_padding
from cnnlab.net.inference import LayerInfo

ACTIVATIONS = {
    "linear": None, "relu": "nn.ReLU()", "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()",
    "softmax": "nn.Softmax(dim=1)", "gelu": "nn.GELU()", "leaky_relu": "nn.LeakyReLU(0.2)",
    "elu": "nn.ELU()", "silu": "nn.SiLU()", "softplus": "nn.Softplus()",
}

HELPERS = {
    "Conv": '''class Conv(nn.Module):
    """A convolution and its activation; ``pad`` (left, right, top, bottom) is TensorFlow's 'same'
    padding where it is uneven (the extra pixel after), which nn.Conv2d cannot express."""

    def __init__(self, conv, pad=None, activation=None):
        super().__init__()
        self.pad = nn.ZeroPad2d(pad) if pad else nn.Identity()
        self.conv = conv
        self.activation = activation or nn.Identity()

    def forward(self, x):
        return self.activation(self.conv(self.pad(x)))''',
    "Dense": '''class Dense(nn.Module):
    """A fully connected layer and its activation."""

    def __init__(self, linear, activation=None):
        super().__init__()
        self.linear = linear
        self.activation = activation or nn.Identity()

    def forward(self, x):
        return self.activation(self.linear(x))''',
    "Flatten": '''class Flatten(nn.Module):
    """Flatten in Keras' channels-last order: (N, C, H, W) -> (N, H*W*C), so feature i is Keras' i."""

    def forward(self, x):
        return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).flatten(1)''',
    "MaxPoolSame": '''class MaxPoolSame(nn.Module):
    """Max pooling with 'same' padding (left, right, top, bottom): padded cells are -inf, never the max."""

    def __init__(self, kernel_size, stride, pad):
        super().__init__()
        self.pad = pad
        self.pool = nn.MaxPool2d(kernel_size, stride)

    def forward(self, x):
        return self.pool(F.pad(x, self.pad, value=float("-inf")))''',
    "AvgPoolSame": '''class AvgPoolSame(nn.Module):
    """Average pooling with 'same' padding: padded cells are left out of each mean, as in Keras."""

    def __init__(self, kernel_size, stride, pad, size):
        super().__init__()
        self.pad = pad
        self.pool = nn.AvgPool2d(kernel_size, stride)
        # The share of real (unpadded) cells under each window, to rescale the mean.
        coverage = self.pool(F.pad(torch.ones(1, 1, *size), pad))
        self.register_buffer("coverage", coverage, persistent=False)

    def forward(self, x):
        return self.pool(F.pad(x, self.pad)) / self.coverage''',
    "GlobalPool": '''class GlobalPool(nn.Module):
    """The mean or maximum of each channel over the image: (N, C, H, W) -> (N, C)."""

    def __init__(self, reduce):
        super().__init__()
        self.reduce = reduce

    def forward(self, x):
        return x.mean(dim=(2, 3)) if self.reduce == "mean" else x.amax(dim=(2, 3))''',
    "Add": '''class Add(nn.Module):
    """The element-wise sum of its inputs (a residual shortcut)."""

    def forward(self, *inputs):
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total''',
    "Concatenate": '''class Concatenate(nn.Module):
    """Its inputs joined along a torch dimension (1: the channels)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *inputs):
        return torch.cat(inputs, dim=self.dim)''',
    "CentreCrop": '''class CentreCrop(nn.Module):
    """Keras' RandomCrop at inference, as Keras documents it: the centred window (top, left, height, width)
    of the target's aspect ratio, resized to ``size`` where it differs (TensorFlow's bilinear resize:
    half-pixel centres, no antialiasing)."""

    def __init__(self, window, size):
        super().__init__()
        self.window, self.size = window, size

    def forward(self, x):
        top, left, height, width = self.window
        x = x[:, :, top:top + height, left:left + width]
        if (height, width) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return x''',
    "Rescaling": '''class Rescaling(nn.Module):
    """Keras' Rescaling: x * scale + offset."""

    def __init__(self, scale, offset=0.0):
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x):
        return x * self.scale + self.offset''',
    "without": '''def without(module, *names):
    """Keras' batchnorm with scale=False / center=False: gamma / beta removed (fixed at 1 / 0)."""
    for name in names:
        module.register_parameter(name, None)
    return module''',
}


def _call(function: str, *args: str, **kwargs: str | None) -> str:
    """``function(arg, key=value)``, leaving out keywords given as None."""
    parts = [*args, *(f"{key}={value}" for key, value in kwargs.items() if value is not None)]
    return f"{function}({', '.join(parts)})"


def _unless(value, default) -> str | None:
    return None if value == default else literal(value)


def _pads(size, window, strides, padding, dilation=(1, 1)):
    if padding == "valid":
        return (0, 0), (0, 0)
    return tuple(same_padding(size[i], window[i], strides[i], dilation[i]) for i in (0, 1))


def _conv(size, cin, cout, kernel, strides, padding, dilation, groups, bias, activation) -> str:
    (top, bottom), (left, right) = _pads(size, kernel, strides, padding, dilation)
    even = top == bottom and left == right
    conv = _call("nn.Conv2d", str(cin), str(cout), literal(kernel), stride=_unless(strides, (1, 1)),
                 padding=_unless((top, left), (0, 0)) if even else None, dilation=_unless(dilation, (1, 1)),
                 groups=_unless(groups, 1), bias=_unless(bias, True))
    return _call("Conv", conv, pad=None if even else literal((left, right, top, bottom)),
                 activation=ACTIVATIONS[activation])


def _conv2d(info: LayerInfo, layer, activation: str) -> str:
    (height, width, channels) = info.input_shape
    code = _conv((height, width), channels, layer["filters"], layer["kernel"], layer["strides"],
                 layer["padding"], layer["dilation_rate"], 1, layer["use_bias"], activation)
    return code if layer["trainable"] else f"{code}.requires_grad_(False)"  # Keras' trainable=False


def _depthwise_conv2d(info: LayerInfo, layer, activation: str) -> str:
    (height, width, channels) = info.input_shape
    return _conv((height, width), channels, channels * layer["depth_multiplier"], layer["kernel"],
                 layer["strides"], layer["padding"], layer["dilation_rate"], channels, layer["use_bias"], activation)


def _separable_conv2d(info: LayerInfo, layer, activation: str) -> str:
    (height, width, channels) = info.input_shape
    middle = channels * layer["depth_multiplier"]
    depthwise = _conv((height, width), channels, middle, layer["kernel"], layer["strides"], layer["padding"],
                      layer["dilation_rate"], channels, False, "linear")
    pointwise = _conv(info.output_shape[:2], middle, layer["filters"], (1, 1), (1, 1), "valid", (1, 1), 1,
                      layer["use_bias"], activation)
    return f"nn.Sequential({depthwise}, {pointwise})"  # one bias and the activation, after both


def _dense(info: LayerInfo, layer, activation: str) -> str:
    linear = _call("nn.Linear", str(info.input_shape[0]), str(layer["units"]), bias=_unless(layer["use_bias"], True))
    return _call("Dense", linear, activation=ACTIVATIONS[activation])


def _batchnorm(info: LayerInfo, layer, activation: str) -> str:
    cls = "nn.BatchNorm2d" if len(info.input_shape) == 3 else "nn.BatchNorm1d"
    # Keras' momentum is the share of the old moving average kept; torch's is the new value's share.
    momentum = float(f"{1 - layer['momentum']:.12g}")
    module = _call(cls, str(info.input_shape[-1]), eps=literal(layer["epsilon"]), momentum=literal(momentum))
    removed = [literal(name) for name, kept in (("weight", layer["scale"]), ("bias", layer["center"])) if not kept]
    return f"without({module}, {', '.join(removed)})" if removed else module


def _pool(info: LayerInfo, layer, activation: str) -> str:
    is_max = layer.kind == "maxpool2d"
    size = info.input_shape[:2]
    (top, bottom), (left, right) = _pads(size, layer["pool"], layer["strides"], layer["padding"])
    if not any((top, bottom, left, right)):
        return _call("nn.MaxPool2d" if is_max else "nn.AvgPool2d", literal(layer["pool"]),
                     stride=literal(layer["strides"]))
    pads = literal((left, right, top, bottom))
    if is_max:
        return _call("MaxPoolSame", literal(layer["pool"]), stride=literal(layer["strides"]), pad=pads)
    return _call("AvgPoolSame", literal(layer["pool"]), stride=literal(layer["strides"]), pad=pads,
                 size=literal(tuple(size)))


def _concatenate(info: LayerInfo, layer, activation: str) -> str:
    rank, axis = len(info.input_shape), layer["axis"]
    index = axis - 1 if axis > 0 else rank + axis  # in Keras' shape without the batch axis
    return _call("Concatenate", dim=str({0: 2, 1: 3, 2: 1}[index] if rank == 3 else 1))  # (H, W, C) -> (C, H, W)


def _zeropadding2d(info: LayerInfo, layer, activation: str) -> str:
    (top, bottom), (left, right) = layer["padding"]
    return _call("nn.ZeroPad2d", literal((left, right, top, bottom)))


def _random_crop(info: LayerInfo, layer, activation: str) -> str:
    from cnnlab.net.augment_ops import keras_inference_window

    size = (layer["height"], layer["width"])
    return _call("CentreCrop", literal(keras_inference_window(info.input_shape[:2], size)), literal(size))


def _augmentation(info: LayerInfo, layer, activation: str) -> str:
    return "nn.Identity()"  # an inference graph: augmentation acts in training only


MODULES = {  # kind -> (layer info, layer, effective activation) -> source of its torch module
    "conv2d": _conv2d, "depthwise_conv2d": _depthwise_conv2d, "separable_conv2d": _separable_conv2d,
    "dense": _dense, "batchnorm": _batchnorm, "maxpool2d": _pool, "avgpool2d": _pool,
    "concatenate": _concatenate, "zeropadding2d": _zeropadding2d,
    "flatten": lambda info, layer, activation: "Flatten()",
    "dropout": lambda info, layer, activation: _call("nn.Dropout", literal(layer["rate"])),
    "activation": lambda info, layer, activation: ACTIVATIONS[activation] or "nn.Identity()",
    "globalavgpool2d": lambda info, layer, activation: 'GlobalPool("mean")',
    "globalmaxpool2d": lambda info, layer, activation: 'GlobalPool("max")',
    "add": lambda info, layer, activation: "Add()",
    "rescaling": lambda info, layer, activation: _call("Rescaling", literal(layer["scale"]),
                                                       offset=_unless(layer["offset"], 0.0)),
    "random_flip": _augmentation, "random_translation": _augmentation, "random_erasing": _augmentation,
    "random_crop": _random_crop,
}


def module_code(info: LayerInfo, strip_softmax: bool) -> str:
    """Source of the torch module for one layer; ``strip_softmax`` leaves the output layer's softmax out."""
    layer = info.layer
    if layer.kind not in MODULES:
        raise ExportError(f"{layer.label}: the PyTorch export has no code for layer kind '{layer.kind}'")
    activation = layer.fields.get("activation", "linear")
    return MODULES[layer.kind](info, layer, "linear" if strip_softmax else activation)


def helpers_used(code: str) -> list[str]:
    """The helper classes the modules' code calls, in a fixed order."""
    return [name for name in HELPERS if re.search(rf"(?<![\w.]){name}\(", code)]
