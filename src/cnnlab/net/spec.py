"""Layer-spec language: parse and validate a network description.

Pure computation: no torch, no file I/O except :func:`load_spec_file`, which
only reads the text it is pointed at. A spec is an ordered list of layers with
Keras' meaning and Keras' defaults; see the README for the file format.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import CnnlabError

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "gelu")
PADDINGS = ("valid", "same")

# Keras' class names and auto-name prefixes, so summaries read like model.summary().
KERAS_CLASS = {
    "conv2d": ("Conv2D", "conv2d"),
    "maxpool2d": ("MaxPooling2D", "max_pooling2d"),
    "avgpool2d": ("AveragePooling2D", "average_pooling2d"),
    "flatten": ("Flatten", "flatten"),
    "dense": ("Dense", "dense"),
    "dropout": ("Dropout", "dropout"),
    "activation": ("Activation", "activation"),
    "batchnorm": ("BatchNormalization", "batch_normalization"),
    "globalavgpool2d": ("GlobalAveragePooling2D", "global_average_pooling2d"),
}


class SpecError(CnnlabError, ValueError):
    """An invalid spec; the message names the source, the layer and the field."""


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer: its kind, its (Keras-style) name and its fields."""

    kind: str
    name: str
    index: int
    fields: dict[str, Any] = field(hash=False)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    @property
    def keras_class(self) -> str:
        return KERAS_CLASS[self.kind][0]

    @property
    def label(self) -> str:
        """How errors and tables refer to this layer: ``layer 2 'conv2d_1' (conv2d)``."""
        return f"layer {self.index} '{self.name}' ({self.kind})"


@dataclass(frozen=True)
class ModelSpec:
    """A validated network: name, optional input shape (H, W, C) and its layers."""

    name: str
    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, ...] | None = None
    source: str = "inline"

    def with_input(self, input_shape: tuple[int, ...]) -> ModelSpec:
        return ModelSpec(self.name, self.layers, tuple(input_shape), self.source)

    def with_classes(self, classes: int) -> ModelSpec:
        """The same network with its last dense layer resized to ``classes`` units."""
        dense = [layer for layer in self.layers if layer.kind == "dense"]
        if not dense:
            raise SpecError(f"{self.source}: --classes needs a dense layer, and this spec has none")
        _check_positive_int(classes, f"{self.source}: classes")
        last = dense[-1]
        changed = LayerSpec(last.kind, last.name, last.index, {**last.fields, "units": classes})
        layers = tuple(changed if layer is last else layer for layer in self.layers)
        return ModelSpec(self.name, layers, self.input_shape, self.source)

    def to_dict(self) -> dict[str, Any]:
        """The spec in its file format, with every default written out."""
        out: dict[str, Any] = {"name": self.name}
        if self.input_shape is not None:
            out["input"] = list(self.input_shape)
        out["layers"] = [
            {"kind": layer.kind, "name": layer.name, **_plain(layer.fields)} for layer in self.layers
        ]
        return out


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


# ---------------------------------------------------------------- field checks
# Each checker takes (value, where) and returns the normalised value or raises.


def _check_positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected a positive integer, got {value!r}")
    if value <= 0:
        raise SpecError(f"{where}: must be positive, got {value}")
    return value


def _pair(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecError(f"{where}: expected an integer or [h, w], got {value!r}")
        return (_check_positive_int(value[0], where), _check_positive_int(value[1], where))
    size = _check_positive_int(value, where)
    return (size, size)


def _optional_pair(value: Any, where: str) -> tuple[int, int] | None:
    return None if value is None else _pair(value, where)


def _choice(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected one of {', '.join(options)}, got {value!r}")
        if value.lower() not in options:
            raise SpecError(f"{where}: unknown value {value!r}{_suggest(value, options)}; "
                            f"expected one of {', '.join(options)}")
        return value.lower()

    return check


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where}: expected true or false, got {value!r}")
    return value


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where}: expected a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise SpecError(f"{where}: must be in [0, 1), got {value}")
    return float(value)


def _positive_float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SpecError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


REQUIRED = object()
_act = _choice(ACTIVATIONS)
_pad = _choice(PADDINGS)
_POOL_FIELDS = {"pool": (_pair, 2), "strides": (_optional_pair, None), "padding": (_pad, "valid")}

# kind -> field -> (checker, default); REQUIRED marks a field without default.
SCHEMA: dict[str, dict[str, tuple[Callable[[Any, str], Any], Any]]] = {
    "conv2d": {
        "filters": (_check_positive_int, REQUIRED),
        "kernel": (_pair, REQUIRED),
        "strides": (_pair, 1),
        "padding": (_pad, "valid"),
        "activation": (_act, "linear"),
        "use_bias": (_bool, True),
    },
    "maxpool2d": _POOL_FIELDS,
    "avgpool2d": _POOL_FIELDS,
    "flatten": {},
    "dense": {
        "units": (_check_positive_int, REQUIRED),
        "activation": (_act, "linear"),
        "use_bias": (_bool, True),
    },
    "dropout": {"rate": (_fraction, REQUIRED)},
    "activation": {"activation": (_act, REQUIRED)},
    "batchnorm": {"momentum": (_fraction, 0.99), "epsilon": (_positive_float, 1e-3)},
    "globalavgpool2d": {},
}


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------- parsing


def parse_spec(data: Any, source: str = "inline", name: str | None = None) -> ModelSpec:
    """Validate a spec given as a dict (file format) or a plain list of layer dicts."""
    if isinstance(data, list):
        data = {"layers": data}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping with 'layers' (or a list of layers), "
                        f"got {type(data).__name__}")
    unknown = set(data) - {"name", "input", "layers"}
    if unknown:
        key = sorted(unknown)[0]
        raise SpecError(f"{source}: unknown top-level key '{key}'"
                        f"{_suggest(key, ('name', 'input', 'layers'))}; expected name, input, layers")
    input_shape = _parse_input(data.get("input"), source)
    raw_layers = data.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise SpecError(f"{source}: 'layers' must be a non-empty list of layers")
    layers = _parse_layers(raw_layers, source)
    spec_name = data.get("name", name or "model")
    if not isinstance(spec_name, str):
        raise SpecError(f"{source}: 'name' must be a string, got {spec_name!r}")
    return ModelSpec(spec_name, layers, input_shape, source)


def _parse_input(value: Any, source: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    where = f"{source}: field 'input'"
    if not isinstance(value, (list, tuple)) or len(value) not in (1, 3):
        raise SpecError(f"{where}: expected [H, W, C] (or [D] for flat input), got {value!r}")
    return tuple(_check_positive_int(v, where) for v in value)


def _parse_layers(raw_layers: list[Any], source: str) -> tuple[LayerSpec, ...]:
    counters: dict[str, int] = {}
    layers = []
    names: set[str] = set()
    for index, raw in enumerate(raw_layers):
        layer = _parse_layer(raw, index, source, counters)
        if layer.name in names:
            raise SpecError(f"{source}: {layer.label}: field 'name': duplicate layer name")
        names.add(layer.name)
        layers.append(layer)
    return tuple(layers)


def _parse_layer(raw: Any, index: int, source: str, counters: dict[str, int]) -> LayerSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: layer {index}: expected a mapping with 'kind', got {raw!r}")
    given_name = raw.get("name")
    tag = f"layer {index}" + (f" '{given_name}'" if given_name is not None else "")
    kind = raw.get("kind")
    if kind not in SCHEMA:
        hint = _suggest(kind, SCHEMA) if isinstance(kind, str) else ""
        raise SpecError(f"{source}: {tag}: field 'kind': unknown kind {kind!r}{hint}; "
                        f"expected one of {', '.join(SCHEMA)}")
    name = _layer_name(given_name, kind, counters, f"{source}: {tag}")
    where = f"{source}: layer {index} '{name}' ({kind})"
    return LayerSpec(kind, name, index, _parse_fields(raw, kind, where))


def _layer_name(given: Any, kind: str, counters: dict[str, int], where: str) -> str:
    prefix = KERAS_CLASS[kind][1]
    count = counters.get(prefix, 0)
    counters[prefix] = count + 1
    if given is None:
        return prefix if count == 0 else f"{prefix}_{count}"
    if not isinstance(given, str) or not given.strip():
        raise SpecError(f"{where}: field 'name': expected a non-empty string, got {given!r}")
    return given


def _parse_fields(raw: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    schema = SCHEMA[kind]
    for key in raw:
        if key not in schema and key not in ("kind", "name"):
            valid = [*schema, "name"]
            raise SpecError(f"{where}: unknown field '{key}'{_suggest(key, valid)}; "
                            f"valid fields: {', '.join(valid)}")
    fields = {}
    for key, (check, default) in schema.items():
        if key in raw:
            fields[key] = check(raw[key], f"{where}: field '{key}'")
        elif default is REQUIRED:
            raise SpecError(f"{where}: field '{key}' is required")
        else:
            fields[key] = check(default, f"{where}: default of '{key}'")
    if kind in ("maxpool2d", "avgpool2d") and fields["strides"] is None:
        fields["strides"] = fields["pool"]  # Keras: strides default to the pool size
    return fields


def parse_spec_text(text: str, source: str = "inline") -> ModelSpec:
    """Parse YAML (or JSON) text with ``yaml.safe_load``; object-building tags are refused."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not a valid spec: {exc}") from None
    return parse_spec(data, source)


def load_spec_file(path: str) -> ModelSpec:
    """Read and validate a spec file; errors name the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc.strerror}") from None
    return parse_spec_text(text, source=path)
