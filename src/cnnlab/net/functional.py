"""Keras' functional API over the spec language: ``Input``, layer objects, symbolic tensors.

Calling a layer on a symbolic tensor records a node (and infers its shape at once, so a
mistake is reported at the line that makes it); :func:`functional_spec` walks back from
the outputs and writes the graph as a :class:`ModelSpec`, the same one YAML would give.
Layer classes are made from the registry (``layer_class``), so every kind has one with
Keras' name and argument names. Pure Python: no torch.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any, ClassVar

from cnnlab.errors import SpecError
from cnnlab.net.fields import ACTIVATION, Bool, shown
from cnnlab.net.inference import infer_layer
from cnnlab.net.registry import LayerKind, get_kind, shape_text
from cnnlab.net.spec import INPUT, LayerSpec, ModelSpec, assign_names, check_input_count, parse_fields, parse_spec

# Keras arguments cnnlab accepts only at the value Keras defaults to (anything else is refused).
KERAS_DEFAULT_ONLY = {
    "data_format": (None, "channels_last"), "kernel_initializer": ("glorot_uniform",),
    "bias_initializer": ("zeros",), "groups": (1,), "noise_shape": (None,), "seed": (None,),
    "dtype": (None, "float32"), "axis": (-1,),
}
_ORDER = itertools.count()  # creation order of nodes: a topological order of any graph


class KerasTensor:
    """A symbolic tensor: the model's input or a layer's output, before any data flows."""

    def __init__(self, shape: tuple[int, ...], layer: Layer | None, inputs: tuple[KerasTensor, ...] = ()):
        self.shape = (None, *shape)  # Keras shows the batch axis as None
        self.layer, self.inputs, self.order = layer, inputs, next(_ORDER)

    def __repr__(self) -> str:
        source = "Input" if self.layer is None else f"{type(self.layer).__name__} '{self.layer.name}'"
        return f"<KerasTensor shape={shape_text(self.shape[1:])}, from {source}>"


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None) -> KerasTensor:  # noqa: N802
    """The model's input, ``shape`` without the batch axis: ``(H, W, C)`` images or ``(D,)`` vectors."""
    if shape is None and batch_shape is not None:
        shape = tuple(batch_shape)[1:]
    shape = python_value(shape)
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3) or \
            not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
        raise SpecError(f"Input: argument 'shape': expected (H, W, C) or (D,) of positive integers, "
                        f"got {shown(shape)}")
    return KerasTensor(tuple(shape), None)


class Layer:
    """A layer with Keras' constructor; calling it on a KerasTensor records it in the graph."""

    kind_name: ClassVar[str]

    def __init__(self, *args: Any, name: str | None = None, input_shape=None, **kwargs: Any):
        kind = self.kind
        self.name = name
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._fields = keras_arguments(kind, args, kwargs, type(self).__name__)
        self.output: KerasTensor | None = None
        self._info = None
        self._owner: weakref.ref | None = None  # the model this layer belongs to (see ``bind``)

    @property
    def kind(self) -> LayerKind:
        return get_kind(self.kind_name)

    @property
    def fields(self) -> dict[str, Any]:
        """The layer's spec fields: its model's spec layer's once it belongs to a model, else its own."""
        model = self.model
        return dict(model.spec.layers[_position(model.spec, self.name)].fields) if model is not None else self._fields

    @property
    def model(self):
        """The model whose layer this is (``model.layers`` holds it), or None."""
        return None if self._owner is None else self._owner()

    def bind(self, model, name: str) -> None:
        """Make this object ``model``'s layer ``name``: from now on it reads and sets that layer of the
        model's spec (``trainable``), as Keras' layer objects are the model's own. The model holds it."""
        self._owner, self.name = weakref.ref(model), name

    @property
    def trainable(self) -> bool:
        """Keras' ``layer.trainable``: False freezes the layer's weights (a field of its model's spec, so the
        summary, the next fit, save and the exports see it)."""
        return self.fields.get("trainable", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = Bool().check(python_value(value), f"{type(self).__name__} '{self.name}': trainable")
        model = self.model
        if model is None:
            self._fields["trainable"] = value
        else:
            model._set_trainable({self.name: value})

    @property
    def trainable_weights(self) -> list:
        """Keras' ``layer.trainable_weights``: its weights that train (numpy arrays in Keras' layouts)."""
        model = self.model
        return [] if model is None else model._weight_values(True, [self.name])

    @property
    def non_trainable_weights(self) -> list:
        """Keras' ``layer.non_trainable_weights``: all its weights when frozen, else batchnorm's statistics."""
        model = self.model
        return [] if model is None else model._weight_values(False, [self.name])

    def __call__(self, inputs):
        tensors = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
        where = f"{type(self).__name__}" + (f" '{self.name}'" if self.name else "")
        if not tensors or not all(isinstance(t, KerasTensor) for t in tensors):
            raise SpecError(f"{where}: call it on the output of Input() or of another layer, got {shown(inputs)}")
        if self.output is not None:
            raise SpecError(f"{where}: this layer was called already; cnnlab does not share one layer's "
                            "weights between calls: make a new layer for each call")
        return self.connect(tensors, where)

    def connect(self, tensors: tuple[KerasTensor, ...], where: str) -> KerasTensor:
        """Record the layer on ``tensors`` and infer its output (a model reconnects its own layers when its
        input shape becomes known)."""
        kind = self.kind
        names = tuple(f"input_{i}" for i in range(len(tensors)))
        layer = LayerSpec(kind.name, self.name or kind.prefix, 0, parse_fields(self.fields, kind, where), names)
        check_input_count(kind, len(tensors), where)
        self._info = infer_layer(layer, tuple(t.shape[1:] for t in tensors), where)
        self.output = KerasTensor(self._info.output_shape, self, tensors)
        return self.output

    @classmethod
    def from_spec(cls, layer: LayerSpec) -> Layer:
        """The Keras-style layer object of a spec layer (not yet called)."""
        return layer_class(layer.kind)(name=layer.name, **layer.fields)

    def count_params(self) -> int:
        """Parameters, as Keras counts them (batchnorm statistics included); known once called."""
        if self.output is None:
            raise SpecError(f"{type(self).__name__} '{self.name}': not built yet (its input shape is unknown)")
        return self._info.params

    def get_weights(self) -> list:
        """Keras' ``layer.get_weights()``: numpy arrays in Keras' order and layouts (a conv kernel
        ``(kh, kw, in, out)``, a dense kernel ``(in, out)``, then the bias); read from its model's network
        (``[]`` for a layer of no model, or before the model knows its input shape)."""
        model = self._weights_owner("get_weights")
        return [] if model is None else model.layer_weights(self.name)

    def set_weights(self, weights) -> None:
        """Keras' ``layer.set_weights(arrays)``: the arrays ``get_weights`` gives, written into its model's
        network; a wrong count or shape is refused, naming the layer and the expected shape."""
        model = self._weights_owner("set_weights")
        if model is None:
            raise SpecError(f"{type(self).__name__} '{self.name}': set_weights: the layer belongs to no model "
                            "yet, so it has no weights; make the model first (Model(inputs, outputs))")
        model.set_layer_weights(self.name, weights)

    def _weights_owner(self, what: str):
        """The model holding this layer's weights; a layer whose model is gone (it only held it weakly) says so."""
        model = self.model
        if model is None and self._owner is not None:
            raise SpecError(f"{type(self).__name__} '{self.name}': {what}: the model this layer belonged to no "
                            "longer exists, and its weights went with it; keep the model in a variable")
        return model

    def get_config(self) -> dict[str, Any]:
        """The layer's arguments, Keras' names, every default written out."""
        fields = parse_fields(self.fields, self.kind, type(self).__name__)
        keras = {name: spec_field.keras or name for name, spec_field in self.kind.fields.items()}
        return {"name": self.name, **{keras[k]: v for k, v in fields.items()}}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def keras_arguments(kind: LayerKind, args: tuple, kwargs: dict, where: str) -> dict[str, Any]:
    """Keras' positional and keyword arguments -> the spec's raw fields (checked when parsed)."""
    if len(args) > len(kind.keras_args):
        raise SpecError(f"{where}: takes at most {len(kind.keras_args)} positional arguments "
                        f"({', '.join(kind.keras_args)}), got {len(args)}")
    given = dict(zip(kind.keras_args, args))
    for key in kwargs:
        if key in given:
            raise SpecError(f"{where}: argument '{key}' given twice (by position and by name)")
    given.update(kwargs)
    given = {key: python_value(value) for key, value in given.items()}
    field_of = {**{name: name for name in kind.fields},
                **{f.keras: name for name, f in kind.fields.items() if f.keras}}
    raw = {}
    for key, value in given.items():
        if key in field_of:
            field_name = field_of[key]
            raw[field_name] = "linear" if value is None and kind.fields[field_name].type is ACTIVATION else value
        elif value not in KERAS_DEFAULT_ONLY.get(key, ()):
            supported = [f.keras or name for name, f in kind.fields.items()] + ["name"]
            raise SpecError(f"{where}: argument '{key}'={shown(value)} is not supported by cnnlab; "
                            f"supported: {', '.join(supported)}")
    for field_name, spec_field in kind.fields.items():
        keras_name = spec_field.keras or field_name
        if field_name in raw:
            spec_field.type.check(raw[field_name], f"{where}: argument '{keras_name}'")
        elif spec_field.required:
            raise SpecError(f"{where}: missing required argument '{keras_name}'")
    return raw


def python_value(value: Any) -> Any:
    """A numpy scalar (``np.float32(0.5)``, ``np.int64(64)``) as the Python number Keras takes it for; lists and
    tuples item by item; anything else as it is (and checked by the field)."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(python_value(item) for item in value)
    return value


def _position(spec: ModelSpec, name: str) -> int:
    return next(index for index, layer in enumerate(spec.layers) if layer.name == name)


class InputLayer:
    """The model's input as ``model.layers[0]`` of a functional model shows it."""

    trainable = True  # as Keras' InputLayer: no weights, nothing to freeze

    def __init__(self, tensor: KerasTensor, name: str = INPUT):
        self.name, self.output = name, tensor

    def count_params(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"<InputLayer name={self.name!r} shape={self.output.shape}>"


_CLASSES: dict[str, type[Layer]] = {}


def layer_class(kind_name: str) -> type[Layer]:
    """The Keras-named Layer class of a registered kind (made once, then cached)."""
    if kind_name not in _CLASSES:
        kind = get_kind(kind_name)
        doc = f"Keras' ``{kind.keras_class}``: {kind.doc}. Arguments: {', '.join(kind.keras_args) or 'none'}."
        _CLASSES[kind_name] = type(kind.keras_class, (Layer,), {"kind_name": kind.name, "__doc__": doc,
                                                                 "__module__": "cnnlab.layers"})
    return _CLASSES[kind_name]


def _single(value, what: str) -> KerasTensor:
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise SpecError(f"Model: cnnlab models have one input and one output, got {len(value)} {what}s")
        value = value[0]
    if not isinstance(value, KerasTensor):
        raise SpecError(f"Model: {what}s must come from Input() and layer calls, got {shown(value)}")
    return value


def _graph_layers(output: KerasTensor, model_input: KerasTensor) -> list[Layer]:
    """The layers between the input and the output, in the order they were called."""
    found: dict[int, Layer] = {}
    stack = [output]
    while stack:
        tensor = stack.pop()
        if tensor.layer is None:
            if tensor is not model_input:
                raise SpecError("Model: the output depends on an Input() that is not the model's input")
            continue
        if id(tensor.layer) not in found:
            found[id(tensor.layer)] = tensor.layer
            stack.extend(tensor.inputs)
    return sorted(found.values(), key=lambda layer: layer.output.order)


def graph_layers(inputs, outputs) -> list[Layer]:
    """The layer objects of the graph from ``inputs`` to ``outputs``, in the order of the spec
    :func:`functional_spec` makes of it."""
    return _graph_layers(_single(outputs, "output"), _single(inputs, "input"))


def functional_spec(inputs, outputs, name: str | None = None) -> ModelSpec:
    """The spec of the graph from ``inputs`` (one ``Input()``) to ``outputs`` (one layer output)."""
    model_input, output = _single(inputs, "input"), _single(outputs, "output")
    if model_input.layer is not None:
        raise SpecError("Model: 'inputs' must be the tensor Input() returned")
    layers = _graph_layers(output, model_input)
    if not layers:
        raise SpecError("Model: the output is the input itself; add layers between them")
    names = assign_names([layer.kind for layer in layers], [layer.name for layer in layers], "Model")
    name_of = {id(model_input): INPUT, **{id(layer.output): n for layer, n in zip(layers, names)}}
    raw = [{"kind": layer.kind_name, "name": n, "inputs": [name_of[id(t)] for t in layer.output.inputs],
            **layer.fields} for layer, n in zip(layers, names)]
    return parse_spec({"name": name or "functional", "input": list(model_input.shape[1:]), "layers": raw},
                      source=f"model '{name or 'functional'}'")


def sequential_spec(layers: list, name: str | None = None) -> ModelSpec:
    """The chain spec of ``Sequential([...])``: an optional ``Input()`` first, then layers."""
    items = list(layers)
    shape = None
    if items and isinstance(items[0], KerasTensor):
        shape = list(items.pop(0).shape[1:])
    for item in items:
        if not isinstance(item, Layer):
            raise SpecError(f"Sequential: expected layers (and an Input() first), got {shown(item)}")
    if not items:
        raise SpecError("Sequential: add at least one layer")
    if shape is None and items[0].input_shape is not None:
        shape = list(items[0].input_shape)  # Keras 2's habit: input_shape= on the first layer
    raw = [{"kind": layer.kind_name, **({"name": layer.name} if layer.name else {}), **layer.fields}
           for layer in items]
    label = name or "sequential"
    return parse_spec({"name": label, **({"input": shape} if shape else {}), "layers": raw},
                      source=f"model '{label}'")
