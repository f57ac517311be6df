"""Augmentation kinds: random_flip, random_translation, random_crop (Keras') and random_erasing (cutout).

They change images in training only and hold no parameters. At inference random_flip,
random_translation and random_erasing are the identity; random_crop then does what Keras
documents for RandomCrop (the largest centred window of the target's aspect ratio, resized
to the target size). Their modules are in :mod:`cnnlab.net.augment_ops`.
"""

from __future__ import annotations

from cnnlab.errors import SpecError
from cnnlab.net.fields import Bool, Choice, Extent, Factor, Field, Number, PositiveInt, Probability
from cnnlab.net.kinds.source import call, literal
from cnnlab.net.registry import LayerKind, register

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")
FILL_MODES = ("reflect", "constant", "nearest")  # Keras' 'wrap' is left out (Keras' torch backend lacks it too)
INTERPOLATIONS = ("bilinear", "nearest")

# The exported PyTorch file's random_crop: an inference graph, so Keras' inference behaviour only.
_CENTRE_CROP_SOURCE = '''class CentreCrop(nn.Module):
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
        return x'''


class _Augmentation(LayerKind):
    """A parameter-free image layer that keeps its input's shape."""

    image_only = True
    augmentation = True

    def output_shape(self, layer, shapes, where):
        return shapes[0]

    def torch_code(self, info, activation):
        return "nn.Identity()"  # the exported file is an inference graph: augmentation acts in training only


@register
class RandomFlip(_Augmentation):
    name, keras_class = "random_flip", "RandomFlip"
    doc = ("in training, mirrors each image along `mode`'s axes, each with probability 1/2 (independently: "
           "Keras 3 flips both or neither); identity otherwise")
    # alternating (cnnlab's; airbench's derandomised flip): each training image is flipped at random in the
    # first epoch and the other way in every next one, so it is seen both ways in any two epochs in a row
    fields = {"mode": Field(Choice(FLIP_MODES), "horizontal_and_vertical"),
              "alternating": Field(Bool(), False, cnnlab_field=True)}
    keras_args = ("mode", "seed", "data_format")

    def normalize(self, fields, where):
        if fields["alternating"] and fields["mode"] == "horizontal_and_vertical":
            raise SpecError(f"{where}: field 'alternating': alternating flips take one axis; set mode "
                            "'horizontal' or 'vertical'")
        return fields

    def build(self, info):
        from cnnlab.net.augment_ops import RandomFlip as Module

        return Module(info.layer["mode"], info.layer["alternating"])


@register
class RandomTranslation(_Augmentation):
    name, keras_class = "random_translation", "RandomTranslation"
    doc = ("in training, shifts each image by a random fraction of its height and width (f: [-f, f], or "
           "[lower, upper]), filling as `fill_mode`; identity otherwise")
    fields = {"height_factor": Field(Factor()), "width_factor": Field(Factor()),
              "fill_mode": Field(Choice(FILL_MODES), "reflect"),
              "interpolation": Field(Choice(INTERPOLATIONS), "bilinear"),
              "fill_value": Field(Number(), 0.0)}
    keras_args = ("height_factor", "width_factor", "fill_mode", "interpolation", "seed", "fill_value", "data_format")

    def build(self, info):
        from cnnlab.net.augment_ops import RandomTranslation as Module

        layer = info.layer
        return Module(layer["height_factor"], layer["width_factor"], layer["fill_mode"], layer["interpolation"],
                      layer["fill_value"])


@register
class RandomCrop(LayerKind):
    name, keras_class = "random_crop", "RandomCrop"
    doc = ("in training, a random `height` x `width` window of each image; otherwise, as Keras documents, the "
           "largest centred window of that aspect ratio, resized to it")
    fields = {"height": Field(PositiveInt()), "width": Field(PositiveInt())}
    keras_args = ("height", "width", "seed", "data_format")
    image_only = True
    torch_helpers = {"CentreCrop": _CENTRE_CROP_SOURCE}

    def output_shape(self, layer, shapes, where):
        height, width, channels = shapes[0]
        for field, size, side in (("height", layer["height"], height), ("width", layer["width"], width)):
            if size > side:
                raise SpecError(f"{where}: field '{field}': {size} is larger than the input's {field} {side}; "
                                "random_crop only crops (Keras would stretch the image instead)")
        return (layer["height"], layer["width"], channels)

    def build(self, info):
        from cnnlab.net.augment_ops import RandomCrop as Module

        return Module(info.input_shape[:2], info.layer["height"], info.layer["width"])

    def torch_code(self, info, activation):
        from cnnlab.net.augment_ops import keras_inference_window

        size = (info.layer["height"], info.layer["width"])
        return call("CentreCrop", literal(keras_inference_window(info.input_shape[:2], size)), literal(size))


@register
class RandomErasing(_Augmentation):
    name, keras_class = "random_erasing", "RandomCutout"
    keras_prefix = "random_erasing"
    in_keras = False  # Keras' own RandomErasing (3.9+) draws boxes and fills differently; see the doc
    doc = ("cnnlab's cutout, not Keras': in training, with `probability`, sets a `size` box (a fraction of "
           "the side, or pixels) centred anywhere in the image to `value`; identity otherwise")
    fields = {"size": Field(Extent(), 0.5), "probability": Field(Probability(), 0.5), "value": Field(Number(), 0.0)}
    keras_args = ("size", "probability", "value")

    def build(self, info):
        from cnnlab.net.augment_ops import RandomErasing as Module

        layer = info.layer
        return Module(info.input_shape[:2], layer["size"], layer["probability"], layer["value"])
