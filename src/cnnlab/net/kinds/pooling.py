"""Pooling and padding: maxpool2d, avgpool2d, their global forms, and zeropadding2d."""

from __future__ import annotations

from cnnlab.net.fields import PADDING, Field, OptionalPair, Padding2D, Pair
from cnnlab.net.geometry import window_output
from cnnlab.net.registry import LayerKind, register

_POOL_FIELDS = {
    "pool": Field(Pair(), 2, keras="pool_size"),
    "strides": Field(OptionalPair(), None, default_text="= pool"),
    "padding": Field(PADDING, "valid"),
}


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


@register
class MaxPooling2D(_Pool):
    name, keras_class = "maxpool2d", "MaxPooling2D"
    doc = "the maximum of each `pool` window ('same' padding never wins)"


@register
class AveragePooling2D(_Pool):
    name, keras_class = "avgpool2d", "AveragePooling2D"
    fields = {**_POOL_FIELDS, "pool": Field(Pair(), keras="pool_size")}  # Keras requires pool_size here
    doc = "the mean of each `pool` window ('same' padding is left out of the mean, as in Keras)"


class _GlobalPool(LayerKind):
    keras_args = ("data_format",)
    image_only = True
    reduce = "mean"

    def output_shape(self, layer, shapes, where):
        return (shapes[0][2],)

    def build(self, info):
        from cnnlab.net.torch_ops import GlobalPool2d

        return GlobalPool2d(self.reduce)


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
