"""Pooling and padding: maxpool2d, avgpool2d, their global forms, and zeropadding2d."""

from __future__ import annotations

from cnnlab.net.fields import PADDING, Field, OptionalPair, Padding2D, Pair
from cnnlab.net.geometry import window_output
from cnnlab.net.kinds.source import call, literal, window_pads
from cnnlab.net.registry import LayerKind, register

_POOL_FIELDS = {
    "pool": Field(Pair(), 2, keras="pool_size"),
    "strides": Field(OptionalPair(), None, default_text="= pool"),
    "padding": Field(PADDING, "valid"),
}

# Helpers of the exported PyTorch file: Keras' 'same' pooling, which torch's pools do not pad as Keras does.
_MAX_POOL_SAME_SOURCE = '''class MaxPoolSame(nn.Module):
    """Max pooling with 'same' padding (left, right, top, bottom): padded cells are -inf, never the max."""

    def __init__(self, kernel_size, stride, pad):
        super().__init__()
        self.pad = pad
        self.pool = nn.MaxPool2d(kernel_size, stride)

    def forward(self, x):
        return self.pool(F.pad(x, self.pad, value=float("-inf")))'''
_AVG_POOL_SAME_SOURCE = '''class AvgPoolSame(nn.Module):
    """Average pooling with 'same' padding: padded cells are left out of each mean, as in Keras."""

    def __init__(self, kernel_size, stride, pad, size):
        super().__init__()
        self.pad = pad
        self.pool = nn.AvgPool2d(kernel_size, stride)
        # The share of real (unpadded) cells under each window, to rescale the mean.
        coverage = self.pool(F.pad(torch.ones(1, 1, *size), pad))
        self.register_buffer("coverage", coverage, persistent=False)

    def forward(self, x):
        return self.pool(F.pad(x, self.pad)) / self.coverage'''
_GLOBAL_POOL_SOURCE = '''class GlobalPool(nn.Module):
    """The mean or maximum of each channel over the image: (N, C, H, W) -> (N, C)."""

    def __init__(self, reduce):
        super().__init__()
        self.reduce = reduce

    def forward(self, x):
        return x.mean(dim=(2, 3)) if self.reduce == "mean" else x.amax(dim=(2, 3))'''


class _Pool(LayerKind):
    fields = _POOL_FIELDS
    keras_args = ("pool_size", "strides", "padding", "data_format")
    image_only = True

    def normalize(self, fields, where):
        if fields["strides"] is None:
            fields["strides"] = fields["pool"]  # Keras: strides default to the pool size
        return fields

    def output_shape(self, layer, shapes, where):
        size = window_output(shapes[0], layer["pool"], layer["strides"], layer["padding"], where, "pool")
        return (*size, shapes[0][2])

    def build(self, info):
        from cnnlab.net.torch_ops import Pool2d

        layer = info.layer
        return Pool2d(self.name == "maxpool2d", info.input_shape, layer["pool"], layer["strides"],
                      layer["padding"])

    def torch_code(self, info, activation):
        layer, size, is_max = info.layer, info.input_shape[:2], self.name == "maxpool2d"
        (top, bottom), (left, right) = window_pads(size, layer["pool"], layer["strides"], layer["padding"])
        pool, stride = literal(layer["pool"]), literal(layer["strides"])
        if not any((top, bottom, left, right)):
            return call("nn.MaxPool2d" if is_max else "nn.AvgPool2d", pool, stride=stride)
        pads = literal((left, right, top, bottom))
        if is_max:
            return call("MaxPoolSame", pool, stride=stride, pad=pads)
        return call("AvgPoolSame", pool, stride=stride, pad=pads, size=literal(tuple(size)))


@register
class MaxPooling2D(_Pool):
    name, keras_class = "maxpool2d", "MaxPooling2D"
    doc = "the maximum of each `pool` window ('same' padding never wins)"
    torch_helpers = {"MaxPoolSame": _MAX_POOL_SAME_SOURCE}


@register
class AveragePooling2D(_Pool):
    name, keras_class = "avgpool2d", "AveragePooling2D"
    fields = {**_POOL_FIELDS, "pool": Field(Pair(), keras="pool_size")}  # Keras requires pool_size here
    doc = "the mean of each `pool` window ('same' padding is left out of the mean, as in Keras)"
    torch_helpers = {"AvgPoolSame": _AVG_POOL_SAME_SOURCE}


class _GlobalPool(LayerKind):
    keras_args = ("data_format",)
    image_only = True
    reduce = "mean"
    torch_helpers = {"GlobalPool": _GLOBAL_POOL_SOURCE}

    def output_shape(self, layer, shapes, where):
        return (shapes[0][2],)

    def build(self, info):
        from cnnlab.net.torch_ops import GlobalPool2d

        return GlobalPool2d(self.reduce)

    def torch_code(self, info, activation):
        return call("GlobalPool", literal(self.reduce))


@register
class GlobalAveragePooling2D(_GlobalPool):
    name, keras_class = "globalavgpool2d", "GlobalAveragePooling2D"
    doc = "the mean of each channel over the image: (H, W, C) -> (C,)"


@register
class GlobalMaxPooling2D(_GlobalPool):
    name, keras_class = "globalmaxpool2d", "GlobalMaxPooling2D"
    doc = "the maximum of each channel over the image: (H, W, C) -> (C,)"
    reduce = "max"


@register
class ZeroPadding2D(LayerKind):
    name, keras_class = "zeropadding2d", "ZeroPadding2D"
    doc = "zeros around the image: `padding` n, [h, w] or [[top, bottom], [left, right]]"
    fields = {"padding": Field(Padding2D(), 1)}
    keras_args = ("padding", "data_format")
    image_only = True

    def output_shape(self, layer, shapes, where):
        (top, bottom), (left, right) = layer["padding"]
        height, width, channels = shapes[0]
        return (height + top + bottom, width + left + right, channels)

    def build(self, info):
        from torch import nn

        (top, bottom), (left, right) = info.layer["padding"]
        return nn.ZeroPad2d((left, right, top, bottom))

    def torch_code(self, info, activation):
        (top, bottom), (left, right) = info.layer["padding"]
        return call("nn.ZeroPad2d", literal((left, right, top, bottom)))
