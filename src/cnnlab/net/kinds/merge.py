"""Merge kinds, which take several inputs: add (residual shortcuts) and concatenate (branches)."""

from __future__ import annotations

from cnnlab.errors import SpecError
from cnnlab.net.fields import Axis, Field
from cnnlab.net.kinds.source import call
from cnnlab.net.registry import LayerKind, register, shape_text

# Helpers of the exported PyTorch file: modules that take one tensor per input.
_ADD_SOURCE = '''class Add(nn.Module):
    """The element-wise sum of its inputs (a residual shortcut)."""

    def forward(self, *inputs):
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total'''
_CONCATENATE_SOURCE = '''class Concatenate(nn.Module):
    """Its inputs joined along a torch dimension (1: the channels)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, *inputs):
        return torch.cat(inputs, dim=self.dim)'''


def _shapes_listed(layer, shapes) -> str:
    return " and ".join(f"{shape_text(shape)} from '{name}'" for name, shape in zip(layer.inputs, shapes))


@register
class Add(LayerKind):
    name, keras_class = "add", "Add"
    doc = "the element-wise sum of two or more inputs of one shape (a residual shortcut)"
    min_inputs, max_inputs = 2, None
    torch_helpers = {"Add": _ADD_SOURCE}

    def output_shape(self, layer, shapes, where):
        if any(shape != shapes[0] for shape in shapes):
            raise SpecError(f"{where}: field 'inputs': cannot add different shapes: {_shapes_listed(layer, shapes)}")
        return shapes[0]

    def build(self, info):
        from cnnlab.net.torch_ops import Add as TorchAdd

        return TorchAdd()

    def torch_code(self, info, activation):
        return "Add()"


@register
class Concatenate(LayerKind):
    name, keras_class = "concatenate", "Concatenate"
    doc = "joins two or more inputs along `axis` (-1, the channels, by default); the other sizes must agree"
    fields = {"axis": Field(Axis(), -1)}
    keras_args = ("axis",)
    min_inputs, max_inputs = 2, None
    torch_helpers = {"Concatenate": _CONCATENATE_SOURCE}

    def output_shape(self, layer, shapes, where):
        rank = len(shapes[0])
        axis = layer["axis"]
        if not -rank <= axis <= rank or any(len(shape) != rank for shape in shapes):
            raise SpecError(f"{where}: field 'axis': axis {axis} does not fit the inputs "
                            f"{_shapes_listed(layer, shapes)} (axis 0 is the batch)")
        index = axis - 1 if axis > 0 else rank + axis  # in the shape without the batch axis
        others = [shape[:index] + shape[index + 1:] for shape in shapes]
        if any(other != others[0] for other in others):
            raise SpecError(f"{where}: field 'inputs': cannot concatenate along axis {axis}: "
                            f"{_shapes_listed(layer, shapes)} differ elsewhere")
        total = sum(shape[index] for shape in shapes)
        return shapes[0][:index] + (total,) + shapes[0][index + 1:]

    def build(self, info):
        from cnnlab.net.torch_ops import Concatenate as TorchConcatenate

        return TorchConcatenate(self.torch_dim(info))

    def torch_dim(self, info) -> int:
        """The torch dimension (batch first) this layer's Keras axis is."""
        rank = len(info.input_shape)
        index = info.layer["axis"] - 1 if info.layer["axis"] > 0 else rank + info.layer["axis"]
        # Channels-last index (H, W, C) -> torch's (C, H, W) dimension, batch first.
        return {0: 2, 1: 3, 2: 1}[index] if rank == 3 else 1

    def torch_code(self, info, activation):
        return call("Concatenate", dim=str(self.torch_dim(info)))
