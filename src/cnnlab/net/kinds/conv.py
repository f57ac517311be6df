"""Convolutions: conv2d, depthwise_conv2d, separable_conv2d (Keras' Conv2D family)."""

from __future__ import annotations

from cnnlab.errors import SpecError
from cnnlab.net.fields import ACTIVATION, PADDING, Bool, Choice, Field, Pair, PositiveFloat, PositiveInt
from cnnlab.net.geometry import window_output
from cnnlab.net.kinds.source import ACTIVATION_CODE, call, literal, unless, window_pads
from cnnlab.net.registry import LayerKind, Params, register

# patch_whitening is cnnlab's own: the kernel is set from the training data before training
# (cnnlab.engine.data_init); partial_identity too (airbench's: the first filters pass their own input
# channel through, the rest are glorot-uniform). Keras has neither, so exports carry the weights.
KERNEL_INITIALIZERS = ("glorot_uniform", "patch_whitening", "partial_identity")
# kernel_trainable: false keeps the kernel as initialised while the bias trains (airbench's whitened stem).
KERNEL_TRAINABLE = Field(Bool(), True, cnnlab_field=True)
# Values in one patch that patch_whitening may whiten: its covariance is MAX^2 float64s (8 MB),
# its eigendecomposition a fraction of a second. 2x2 RGB patches are 12.
MAX_WHITENED_VALUES = 1024

_WINDOW = {
    "kernel": Field(Pair(), keras="kernel_size"),
    "strides": Field(Pair(), 1),
    "padding": Field(PADDING, "valid"),
    "dilation_rate": Field(Pair(), 1),
    "activation": Field(ACTIVATION, "linear"),
    "use_bias": Field(Bool(), True),
}

# The exported PyTorch file's convolution: nn.Conv2d cannot pad unevenly, as TensorFlow's 'same' does.
_CONV_SOURCE = '''class Conv(nn.Module):
    """A convolution and its activation; ``pad`` (left, right, top, bottom) is TensorFlow's 'same'
    padding where it is uneven (the extra pixel after), which nn.Conv2d cannot express."""

    def __init__(self, conv, pad=None, activation=None):
        super().__init__()
        self.pad = nn.ZeroPad2d(pad) if pad else nn.Identity()
        self.conv = conv
        self.activation = activation or nn.Identity()

    def forward(self, x):
        return self.activation(self.conv(self.pad(x)))'''


def _keras_kernel(weight):
    """A convolution kernel: torch's (out, in, kh, kw) as Keras' (kh, kw, in, out)."""
    return weight.transpose(2, 3, 1, 0)


def _keras_depthwise(weight, channels: int):
    """A depthwise kernel: torch's (in * multiplier, 1, kh, kw), output channel ``i * multiplier + m``
    reading input channel ``i``, as Keras' (kh, kw, in, multiplier), which keeps that channel order."""
    out, _, kh, kw = weight.shape
    return weight.reshape(channels, out // channels, kh, kw).transpose(2, 3, 0, 1)


class _Convolution(LayerKind):
    """What the three convolutions share: the window, strides, padding, dilation, activation."""

    image_only = True
    torch_helpers = {"Conv": _CONV_SOURCE}
    keras_layout = (("kernel", "conv.weight"), ("bias", "conv.bias"))

    def spatial(self, layer, shape, where) -> tuple[int, int]:
        return window_output(shape, layer["kernel"], layer["strides"], layer["padding"], where, "kernel",
                             layer["dilation_rate"])

    def depthwise_kernel(self, layer, channels: int) -> tuple[int, str]:
        """Weights of a per-channel kernel: count and formula, kh*kw*cin*depth_multiplier."""
        (kh, kw), multiplier = layer["kernel"], layer["depth_multiplier"]
        return kh * kw * channels * multiplier, f"{kh}*{kw}*{channels}*{multiplier}"

    def conv_module(self, layer, input_shape, out_channels: int, *, groups: int = 1, pointwise: bool = False,
                    use_bias: bool | None = None, activation: str | None = None):
        """A torch convolution of this layer's geometry (or a 1x1 one), with its bias and activation."""
        from cnnlab.net.torch_ops import Conv2dBlock

        return Conv2dBlock(input_shape, out_channels, groups=groups,
                           bias=layer["use_bias"] if use_bias is None else use_bias,
                           activation=layer["activation"] if activation is None else activation,
                           **self.geometry(layer, pointwise))

    def geometry(self, layer, pointwise: bool = False) -> dict:
        """The window of this layer's convolution, or of a 1x1 pointwise one."""
        if pointwise:
            return dict(kernel=(1, 1), strides=(1, 1), padding="valid", dilation=(1, 1))
        return dict(kernel=layer["kernel"], strides=layer["strides"], padding=layer["padding"],
                    dilation=layer["dilation_rate"])

    def conv_code(self, layer, input_shape, out_channels: int, activation: str, *, groups: int = 1,
                  pointwise: bool = False, use_bias: bool | None = None) -> str:
        """:meth:`conv_module` as source for the exported PyTorch file: an nn.Conv2d in a ``Conv``."""
        window = self.geometry(layer, pointwise)
        kernel, strides, dilation = window["kernel"], window["strides"], window["dilation"]
        (top, bottom), (left, right) = window_pads(input_shape[:2], kernel, strides, window["padding"], dilation)
        even = top == bottom and left == right  # nn.Conv2d pads evenly itself
        conv = call("nn.Conv2d", str(input_shape[2]), str(out_channels), literal(kernel),
                    stride=unless(strides, (1, 1)), padding=unless((top, left), (0, 0)) if even else None,
                    dilation=unless(dilation, (1, 1)), groups=unless(groups, 1),
                    bias=unless(layer["use_bias"] if use_bias is None else use_bias, True))
        return call("Conv", conv, pad=None if even else literal((left, right, top, bottom)),
                    activation=ACTIVATION_CODE[activation])

    def keras_array(self, weight, array, info):
        return _keras_kernel(array) if weight in ("kernel", "pointwise_kernel") else array


@register
class Conv2D(_Convolution):
    name, keras_class = "conv2d", "Conv2D"
    doc = ("2D convolution: `filters` kernels of size `kernel`, glorot-uniform (or patch_whitening: "
           "whitened from the training data; partial_identity: the first filters pass their input channel "
           "through), zero bias")
    fields = {"filters": Field(PositiveInt()), **_WINDOW,
              "kernel_initializer": Field(Choice(KERNEL_INITIALIZERS), "glorot_uniform",
                                          cnnlab_values=("patch_whitening", "partial_identity")),
              "kernel_trainable": KERNEL_TRAINABLE,
              # patch_whitening's epsilon as a share of the patches' mean eigenvalue: it bounds the gain of
              # the near-empty directions (airbench's 5e-4 on normalised pixels is about 5e-4 of it)
              "whitening_epsilon": Field(PositiveFloat(), 0.01, cnnlab_field=True)}
    keras_args = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                  "activation", "use_bias", "kernel_initializer")

    def normalize(self, fields, where):
        # Keras' Conv2D refuses this pair (its depthwise and separable forms accept it).
        if max(fields["strides"]) > 1 and max(fields["dilation_rate"]) > 1:
            raise SpecError(f"{where}: field 'dilation_rate': a dilation_rate above 1 cannot be combined "
                            f"with strides above 1 (Keras' Conv2D refuses it too)")
        return fields

    def output_shape(self, layer, shapes, where):
        if layer["kernel_initializer"] == "patch_whitening":
            (kh, kw), cin = layer["kernel"], shapes[0][2]
            if kh * kw * cin > MAX_WHITENED_VALUES:
                raise SpecError(f"{where}: field 'kernel_initializer': patch_whitening whitens patches of at "
                                f"most {MAX_WHITENED_VALUES} values, got {kh}x{kw} patches of {cin} channels "
                                f"({kh * kw * cin}); use it on a small kernel over few channels (the image)")
            if layer["filters"] > 2 * kh * kw * cin:
                raise SpecError(f"{where}: field 'filters': patch_whitening makes at most 2*{kh}*{kw}*{cin} = "
                                f"{2 * kh * kw * cin} filters from {kh}x{kw} patches of {cin} channels "
                                f"(each whitened direction and its negative), got {layer['filters']}")
        return (*self.spatial(layer, shapes[0], where), layer["filters"])

    def params(self, layer, shapes):
        (kh, kw), cin, filters = layer["kernel"], shapes[0][2], layer["filters"]
        bias = filters if layer["use_bias"] else 0
        kernel = kh * kw * cin * filters
        formula = f"{kh}*{kw}*{cin}*{filters}" + (f" + {filters}" if bias else "")
        if not layer["kernel_trainable"]:
            return Params(bias, kernel, formula)
        return Params(kernel + bias, formula=formula)

    def macs(self, layer, shapes, output):
        (kh, kw), cin = layer["kernel"], shapes[0][2]
        return output[0] * output[1] * output[2] * kh * kw * cin

    def build(self, info):
        block = self.conv_module(info.layer, info.input_shape, info.layer["filters"])
        if info.layer["kernel_initializer"] == "patch_whitening":
            block.data_init = "patch_whitening"  # set from the training data before training (engine/data_init.py)
            block.whitening_epsilon = info.layer["whitening_epsilon"]
        block.partial_identity = info.layer["kernel_initializer"] == "partial_identity"  # set after glorot
        return block

    def torch_code(self, info, activation):
        return self.conv_code(info.layer, info.input_shape, info.layer["filters"], activation)


@register
class DepthwiseConv2D(_Convolution):
    name, keras_class = "depthwise_conv2d", "DepthwiseConv2D"
    doc = "one `kernel` per input channel (times `depth_multiplier`); no mixing across channels"
    fields = {"kernel": _WINDOW["kernel"], "strides": _WINDOW["strides"], "padding": _WINDOW["padding"],
              "depth_multiplier": Field(PositiveInt(), 1), "dilation_rate": _WINDOW["dilation_rate"],
              "activation": _WINDOW["activation"], "use_bias": _WINDOW["use_bias"]}
    keras_args = ("kernel_size", "strides", "padding", "depth_multiplier", "data_format", "dilation_rate",
                  "activation", "use_bias")

    def output_shape(self, layer, shapes, where):
        return (*self.spatial(layer, shapes[0], where), shapes[0][2] * layer["depth_multiplier"])

    def params(self, layer, shapes):
        weights, formula = self.depthwise_kernel(layer, shapes[0][2])
        bias = shapes[0][2] * layer["depth_multiplier"] if layer["use_bias"] else 0
        return Params(weights + bias, formula=formula + (f" + {bias}" if bias else ""))

    def macs(self, layer, shapes, output):
        return output[0] * output[1] * self.depthwise_kernel(layer, shapes[0][2])[0]

    def build(self, info):
        channels = info.input_shape[2]
        return self.conv_module(info.layer, info.input_shape, channels * info.layer["depth_multiplier"],
                                groups=channels)

    def torch_code(self, info, activation):
        channels = info.input_shape[2]
        return self.conv_code(info.layer, info.input_shape, channels * info.layer["depth_multiplier"], activation,
                              groups=channels)

    def keras_array(self, weight, array, info):
        return _keras_depthwise(array, info.input_shape[2]) if weight == "kernel" else array


@register
class SeparableConv2D(_Convolution):
    name, keras_class = "separable_conv2d", "SeparableConv2D"
    doc = "depthwise convolution, then a 1x1 convolution to `filters` channels (one bias, after both)"
    fields = {"filters": Field(PositiveInt()), **_WINDOW, "depth_multiplier": Field(PositiveInt(), 1)}
    keras_args = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
                  "depth_multiplier", "activation", "use_bias")
    keras_layout = (("depthwise_kernel", "0.conv.weight"), ("pointwise_kernel", "1.conv.weight"),
                    ("bias", "1.conv.bias"))

    def output_shape(self, layer, shapes, where):
        return (*self.spatial(layer, shapes[0], where), layer["filters"])

    def params(self, layer, shapes):
        depthwise, formula = self.depthwise_kernel(layer, shapes[0][2])
        middle, filters = shapes[0][2] * layer["depth_multiplier"], layer["filters"]
        bias = filters if layer["use_bias"] else 0
        return Params(depthwise + middle * filters + bias,
                      formula=f"{formula} + {middle}*{filters}" + (f" + {filters}" if bias else ""))

    def macs(self, layer, shapes, output):
        middle = shapes[0][2] * layer["depth_multiplier"]
        per_pixel = self.depthwise_kernel(layer, shapes[0][2])[0] + middle * layer["filters"]
        return output[0] * output[1] * per_pixel

    def build(self, info):
        from torch import nn

        layer, channels = info.layer, info.input_shape[2]
        middle = channels * layer["depth_multiplier"]
        depthwise = self.conv_module(layer, info.input_shape, middle, groups=channels, use_bias=False,
                                     activation="linear")
        pointwise = self.conv_module(layer, (*info.output_shape[:2], middle), layer["filters"], pointwise=True)
        return nn.Sequential(depthwise, pointwise)  # Keras: one bias and the activation, after both

    def torch_code(self, info, activation):
        layer, channels = info.layer, info.input_shape[2]
        middle = channels * layer["depth_multiplier"]
        depthwise = self.conv_code(layer, info.input_shape, middle, "linear", groups=channels, use_bias=False)
        pointwise = self.conv_code(layer, (*info.output_shape[:2], middle), layer["filters"], activation,
                                   pointwise=True)
        return f"nn.Sequential({depthwise}, {pointwise})"  # as build: one bias and the activation, after both

    def keras_array(self, weight, array, info):
        if weight == "depthwise_kernel":
            return _keras_depthwise(array, info.input_shape[2])
        return super().keras_array(weight, array, info)
