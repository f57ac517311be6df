"""The core kinds: dense, flatten, dropout, activation, rescaling, batchnorm."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cnnlab.errors import SpecError
from cnnlab.net.fields import ACTIVATION, Bool, Field, Fraction, Number, PositiveFloat, PositiveInt
from cnnlab.net.kinds.source import ACTIVATION_CODE, call, literal, unless
from cnnlab.net.registry import LayerKind, Params, register, shape_text
from cnnlab.net.spec import INPUT

if TYPE_CHECKING:
    from cnnlab.net.spec import LayerSpec

# Helpers of the exported PyTorch file: Keras' semantics that torch's own modules lack.
_DENSE_SOURCE = '''class Dense(nn.Module):
    """A fully connected layer and its activation."""

    def __init__(self, linear, activation=None):
        super().__init__()
        self.linear = linear
        self.activation = activation or nn.Identity()

    def forward(self, x):
        return self.activation(self.linear(x))'''
_FLATTEN_SOURCE = '''class Flatten(nn.Module):
    """Flatten in Keras' channels-last order: (N, C, H, W) -> (N, H*W*C), so feature i is Keras' i."""

    def forward(self, x):
        return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).flatten(1)'''
_RESCALING_SOURCE = '''class Rescaling(nn.Module):
    """Keras' Rescaling: x * scale + offset."""

    def __init__(self, scale, offset=0.0):
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x):
        return x * self.scale + self.offset'''
_WITHOUT_SOURCE = '''def without(module, *names):
    """Keras' batchnorm with scale=False / center=False: gamma / beta removed (fixed at 1 / 0)."""
    for name in names:
        module.register_parameter(name, None)
    return module'''

_FROZEN_NORM_SOURCE = '''def frozen_norm(norm):
    """Keras 3's frozen BatchNormalization (trainable=False): no gradient, and its moving statistics also
    in training (train() keeps it in eval mode); its parameter names stay torch's own."""
    class Frozen(type(norm)):
        def train(self, mode=True):
            return super().train(False)

    norm.__class__ = Frozen
    return norm.requires_grad_(False)'''


@register
class Dense(LayerKind):
    name, keras_class = "dense", "Dense"
    doc = "fully connected: `units` outputs from a flat input, glorot-uniform, zero bias"
    fields = {"units": Field(PositiveInt()), "activation": Field(ACTIVATION, "linear"),
              "use_bias": Field(Bool(), True),
              # cnnlab's: false keeps the kernel as initialised while the bias trains
              "kernel_trainable": Field(Bool(), True, cnnlab_field=True)}
    keras_args = ("units", "activation", "use_bias")
    torch_helpers = {"Dense": _DENSE_SOURCE}
    keras_layout = (("kernel", "linear.weight"), ("bias", "linear.bias"))

    def output_shape(self, layer, shapes, where):
        if len(shapes[0]) != 1:
            raise SpecError(f"{where}: dense needs a flat input, got {shape_text(shapes[0])}; "
                            "add a {kind: flatten} layer before it")
        return (layer["units"],)

    def params(self, layer, shapes):
        fan_in, units = shapes[0][0], layer["units"]
        bias = units if layer["use_bias"] else 0
        formula = f"{fan_in}*{units}" + (f" + {units}" if bias else "")
        if not layer["kernel_trainable"]:
            return Params(bias, fan_in * units, formula)
        return Params(fan_in * units + bias, formula=formula)

    def macs(self, layer, shapes, output):
        return shapes[0][0] * layer["units"]

    def build(self, info):
        from cnnlab.net.torch_ops import DenseBlock

        return DenseBlock(info.input_shape[0], info.layer["units"], info.layer["use_bias"],
                          info.layer["activation"])

    def torch_code(self, info, activation):
        linear = call("nn.Linear", str(info.input_shape[0]), str(info.layer["units"]),
                      bias=unless(info.layer["use_bias"], True))
        return call("Dense", linear, activation=ACTIVATION_CODE[activation])

    def keras_array(self, weight, array, info):
        # torch's kernel is (out, in), Keras' (in, out). cnnlab's flatten already reads channels-last
        # order, as Keras' does, so a dense layer after it needs no reordering of its rows.
        return array.T if weight == "kernel" else array


@register
class Flatten(LayerKind):
    name, keras_class = "flatten", "Flatten"
    doc = "(H, W, C) -> (H*W*C,), in Keras' channels-last order"
    keras_args = ("data_format",)
    torch_helpers = {"Flatten": _FLATTEN_SOURCE}

    def output_shape(self, layer, shapes, where):
        return (math.prod(shapes[0]),)

    def build(self, info):
        from cnnlab.net.torch_ops import KerasFlatten

        return KerasFlatten()

    def torch_code(self, info, activation):
        return "Flatten()"


@register
class Dropout(LayerKind):
    name, keras_class = "dropout", "Dropout"
    doc = "zeroes a `rate` fraction of its inputs in training (scaling the rest), identity otherwise"
    fields = {"rate": Field(Fraction())}
    keras_args = ("rate", "noise_shape", "seed")

    def output_shape(self, layer, shapes, where):
        return shapes[0]

    def build(self, info):
        from cnnlab.net.torch_ops import Dropout as TorchDropout

        return TorchDropout(info.layer["rate"])

    def torch_code(self, info, activation):
        return call("nn.Dropout", literal(info.layer["rate"]))


@register
class Activation(LayerKind):
    name, keras_class = "activation", "Activation"
    doc = "applies `activation` element-wise"
    fields = {"activation": Field(ACTIVATION)}
    keras_args = ("activation",)

    def output_shape(self, layer, shapes, where):
        return shapes[0]

    def build(self, info):
        from cnnlab.net.torch_ops import activation_module

        return activation_module(info.layer["activation"])

    def torch_code(self, info, activation):
        return ACTIVATION_CODE[activation] or "nn.Identity()"


@register
class Rescaling(LayerKind):
    name, keras_class = "rescaling", "Rescaling"
    doc = ("multiplies its input by `scale` and adds `offset` (no parameters): `scale: 2, offset: -1` maps "
           "the [0, 1] pixels to [-1, 1]; `scale: 0.111` before the softmax is airbench's 1/9 logit scale")
    fields = {"scale": Field(Number()), "offset": Field(Number(), 0.0)}
    keras_args = ("scale", "offset")
    torch_helpers = {"Rescaling": _RESCALING_SOURCE}

    def output_shape(self, layer, shapes, where):
        return shapes[0]

    def build(self, info):
        from cnnlab.net.torch_ops import Rescale

        return Rescale(info.layer["scale"], info.layer["offset"])

    def torch_code(self, info, activation):
        return call("Rescaling", literal(info.layer["scale"]), offset=unless(info.layer["offset"], 0.0))


RAW_PIXEL_SCALE = 1 / 64  # a first rescaling this small or smaller expects 0..255 pixels (1/255, 1/127.5...)


def input_rescaling(spec) -> LayerSpec | None:
    """The ``rescaling`` layer the network's input reaches first (through augmentation layers only), or None:
    where a Keras user's ``Rescaling(1./255)`` sits, so the pixels it is handed can be judged."""
    reached, found = {INPUT}, None
    for layer in spec.layers:  # in order: a layer's inputs come before it
        if len(layer.inputs) != 1 or layer.inputs[0] not in reached:
            continue
        if layer.kind == "rescaling":
            found = found or layer
        elif layer.definition.augmentation:
            reached.add(layer.name)
    return found


def expects_raw_pixels(spec) -> bool:
    """Whether the network scales its pixels down itself (a first ``rescaling`` of at most 1/64, as
    ``Rescaling(1./255)``): it is then handed 0..255 pixels, as in Keras."""
    layer = input_rescaling(spec)
    return layer is not None and 0 < abs(layer["scale"]) <= RAW_PIXEL_SCALE


@register
class BatchNormalization(LayerKind):
    name, keras_class = "batchnorm", "BatchNormalization"
    doc = ("normalises each channel; 4 parameters per channel, 2 trainable (gamma, beta; "
           "`scale: false` fixes gamma at 1, `center: false` beta at 0)")
    fields = {"momentum": Field(Fraction(), 0.99), "epsilon": Field(PositiveFloat(), 1e-3),
              "center": Field(Bool(), True), "scale": Field(Bool(), True)}
    keras_args = ("axis", "momentum", "epsilon", "center", "scale")
    inference_when_frozen = True  # Keras 3: a frozen BatchNormalization uses, and keeps, its moving statistics
    torch_helpers = {"without": _WITHOUT_SOURCE, "frozen_norm": _FROZEN_NORM_SOURCE}
    keras_layout = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                    ("moving_variance", "running_var"))

    def output_shape(self, layer, shapes, where):
        return shapes[0]

    def params(self, layer, shapes):
        channels = shapes[0][-1]
        affine = int(layer["center"]) + int(layer["scale"])
        # Keras: gamma and beta (those kept) train; the moving mean and variance do not.
        return Params(affine * channels, 2 * channels, f"{affine + 2}*{channels}")

    def build(self, info):
        from cnnlab.net.torch_ops import batch_norm

        # Keras' moving average keeps `momentum` of the old value; torch's momentum is the new share.
        return batch_norm(info.input_shape, eps=info.layer["epsilon"], momentum=1 - info.layer["momentum"],
                          center=info.layer["center"], scale=info.layer["scale"])

    def torch_code(self, info, activation):
        layer = info.layer
        cls = "nn.BatchNorm2d" if len(info.input_shape) == 3 else "nn.BatchNorm1d"
        momentum = float(f"{1 - layer['momentum']:.12g}")  # as build: torch's momentum is the new value's share
        module = call(cls, str(info.input_shape[-1]), eps=literal(layer["epsilon"]), momentum=literal(momentum))
        removed = [literal(name) for name, kept in (("weight", layer["scale"]), ("bias", layer["center"])) if not kept]
        module = f"without({module}, {', '.join(removed)})" if removed else module
        return module if layer.trainable else f"frozen_norm({module})"
