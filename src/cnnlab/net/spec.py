"""Layer-spec language: parse and validate a network description (a chain or a graph).

Pure computation: no torch, no file I/O (:mod:`cnnlab.net.spec_file` reads YAML).
A spec is an ordered list of layers with Keras' meaning and defaults. A layer takes
the previous layer's output unless it names its ``inputs`` (earlier layers, or ``input``,
the model's input); the last layer is the output. Every field is checked by the layer
kind's declaration in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import SpecError
from cnnlab.net.fields import PositiveInt, shown, suggest
from cnnlab.net.registry import LayerKind, all_kinds, get_kind

INPUT = "input"  # how a layer names the model's input in ``inputs``
TOP_LEVEL_KEYS = ("name", "input", "layers")
COMMON_KEYS = ("kind", "name", "inputs")
MAX_LAYERS = 10_000


@dataclass(frozen=True)
class LayerSpec:
    """One validated layer: kind, (Keras-style) name, position, fields, and the layers it reads."""

    kind: str
    name: str
    index: int
    fields: dict[str, Any] = field(hash=False)
    inputs: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    @property
    def definition(self) -> LayerKind:
        return get_kind(self.kind)

    @property
    def keras_class(self) -> str:
        return self.definition.keras_class

    @property
    def trainable(self) -> bool:
        """Keras' ``trainable`` (a field every kind has): false freezes the layer's weights."""
        return self.fields.get("trainable", True)

    @property
    def frozen_kernel(self) -> tuple[str, str] | None:
        """cnnlab's ``kernel_trainable: false``: the kernel's Keras and torch names (``("kernel",
        "conv.weight")``), which keeps its initial values while the rest of the layer trains; else None."""
        if self.fields.get("kernel_trainable", True) or not self.definition.keras_layout:
            return None
        return self.definition.keras_layout[0]

    @property
    def label(self) -> str:
        """How errors and tables refer to this layer: ``layer 2 'conv2d_1' (conv2d)``."""
        return f"layer {self.index} '{self.name}' ({self.kind})"

    def replace(self, **fields: Any) -> LayerSpec:
        return LayerSpec(self.kind, self.name, self.index, {**self.fields, **fields}, self.inputs)


@dataclass(frozen=True)
class ModelSpec:
    """A validated network: name, optional input shape (H, W, C) or (D,), and its layers in order."""

    name: str
    layers: tuple[LayerSpec, ...]
    input_shape: tuple[int, ...] | None = None
    source: str = "inline"
    warnings: tuple[str, ...] = ()

    @property
    def is_chain(self) -> bool:
        """True when every layer reads the one before it (printed without a 'Connected to' column)."""
        previous = [INPUT, *(layer.name for layer in self.layers)]
        return all(layer.inputs == (previous[i],) for i, layer in enumerate(self.layers))

    def renamed(self, name: str | None) -> ModelSpec:
        """The same network under another name (None keeps this one)."""
        return self if name is None else ModelSpec(name, self.layers, self.input_shape, self.source, self.warnings)

    def with_input(self, input_shape: tuple[int, ...]) -> ModelSpec:
        return ModelSpec(self.name, self.layers, tuple(input_shape), self.source, self.warnings)

    def with_classes(self, classes: int) -> ModelSpec:
        """The same network with its last dense layer resized to ``classes`` units."""
        dense = [layer for layer in self.layers if layer.kind == "dense"]
        if not dense:
            raise SpecError(f"{self.source}: --classes needs a dense layer, and this spec has none")
        PositiveInt().check(classes, f"{self.source}: classes")
        last = dense[-1]
        layers = tuple(layer.replace(units=classes) if layer is last else layer for layer in self.layers)
        return ModelSpec(self.name, layers, self.input_shape, self.source, self.warnings)

    def to_dict(self) -> dict[str, Any]:
        """The spec in its file format, every default written out but ``trainable: true``; ``inputs`` only
        where not implicit."""
        out: dict[str, Any] = {"name": self.name}
        if self.input_shape is not None:
            out["input"] = list(self.input_shape)
        previous = INPUT
        out["layers"] = []
        for layer in self.layers:
            entry = {"kind": layer.kind, "name": layer.name, **_plain(layer.fields)}
            if layer.trainable:
                entry.pop("trainable", None)  # every layer has it: only a frozen one says so
            for name, spec_field in layer.definition.fields.items():
                if spec_field.cnnlab_field and entry.get(name) == spec_field.default:
                    entry.pop(name)  # cnnlab's own options, written only where set
            if layer.inputs != (previous,):
                entry["inputs"] = list(layer.inputs)
            out["layers"].append(entry)
            previous = layer.name
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


# ---------------------------------------------------------------- parsing


def parse_spec(data: Any, source: str = "inline", name: str | None = None) -> ModelSpec:
    """Validate a spec given as a dict (file format) or a plain list of layer dicts."""
    if isinstance(data, list):
        data = {"layers": data}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping with 'layers' (or a list of layers), "
                        f"got {type(data).__name__}")
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise SpecError(f"{source}: unknown top-level key {shown(unknown[0])}"
                        f"{suggest(unknown[0], TOP_LEVEL_KEYS)}; expected name, input, layers")
    input_shape = _parse_input(data.get("input"), source)
    raw_layers = data.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise SpecError(f"{source}: 'layers' must be a non-empty list of layers")
    if len(raw_layers) > MAX_LAYERS:
        raise SpecError(f"{source}: {len(raw_layers):,} layers; cnnlab takes at most {MAX_LAYERS:,}")
    layers = _parse_layers(raw_layers, source)
    spec_name = data.get("name", name or "model")
    if not isinstance(spec_name, str):
        raise SpecError(f"{source}: 'name' must be a string, got {shown(spec_name)}")
    return ModelSpec(spec_name, layers, input_shape, source, _unused_warnings(layers, source))


def _parse_input(value: Any, source: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    where = f"{source}: field 'input'"
    if not isinstance(value, (list, tuple)) or len(value) not in (1, 3):
        raise SpecError(f"{where}: expected [H, W, C] (or [D] for flat input), got {shown(value)}")
    return tuple(PositiveInt().check(v, where) for v in value)


def _parse_layers(raw_layers: list[Any], source: str) -> tuple[LayerSpec, ...]:
    for index, raw in enumerate(raw_layers):
        if not isinstance(raw, dict):
            raise SpecError(f"{source}: layer {index}: expected a mapping with 'kind', got {shown(raw)}")
    kinds = [_kind_of(raw, index, source) for index, raw in enumerate(raw_layers)]
    names = assign_names(kinds, [raw.get("name") for raw in raw_layers], source)
    positions = {name: index for index, name in enumerate(names)}
    layers = []
    for index, raw in enumerate(raw_layers):
        where = f"{source}: layer {index} '{names[index]}' ({kinds[index].name})"
        inputs = _parse_inputs(raw, index, names, positions, raw_layers, where)
        check_input_count(kinds[index], len(inputs), f"{where}: field 'inputs'", inputs)
        fields = parse_fields(raw, kinds[index], where)
        layers.append(LayerSpec(kinds[index].name, names[index], index, fields, inputs))
    return tuple(layers)


def _kind_of(raw: dict, index: int, source: str) -> LayerKind:
    kind = raw.get("kind")
    kinds = all_kinds()
    if not isinstance(kind, str) or kind not in kinds:
        given = raw.get("name")
        tag = f"layer {index}" + (f" {shown(given)}" if given is not None else "")
        raise SpecError(f"{source}: {tag}: field 'kind': unknown kind {shown(kind)}{suggest(kind, kinds)}; "
                        f"expected one of {', '.join(kinds)}")
    return kinds[kind]


def assign_names(kinds: list[LayerKind], given: list[Any], source: str) -> list[str]:
    """Each layer's name: the one given, else Keras' ``prefix``, ``prefix_1``... skipping names in use."""
    taken = set()
    for index, name in enumerate(given):
        if name is None:
            continue
        where = f"{source}: layer {index} {shown(name)} ({kinds[index].name}): field 'name'"
        if not isinstance(name, str) or not name.strip() or not name.isprintable() or "/" in name:
            raise SpecError(f"{where}: expected a non-empty name of printable characters without '/' "
                            f"(as Keras requires), got {shown(name)}")
        if name == INPUT:
            raise SpecError(f"{where}: '{INPUT}' names the model's input; choose another name")
        if name in taken:
            raise SpecError(f"{where}: duplicate layer name")
        taken.add(name)
    counters: dict[str, int] = {}
    names = []
    for kind, name in zip(kinds, given):
        while name is None:
            count = counters.get(kind.prefix, 0)
            counters[kind.prefix] = count + 1
            candidate = kind.prefix if count == 0 else f"{kind.prefix}_{count}"
            name = None if candidate in taken else candidate
        taken.add(name)
        names.append(name)
    return names


def _parse_inputs(raw, index, names, positions, raw_layers, where) -> tuple[str, ...]:
    if "inputs" not in raw:
        return (INPUT if index == 0 else names[index - 1],)
    value = raw["inputs"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: field 'inputs': expected a list of layer names, got {shown(value)}")
    for ref in value:
        if ref == INPUT:
            continue
        if ref not in positions:
            raise SpecError(f"{where}: field 'inputs': unknown layer {shown(ref)}"
                            f"{suggest(ref, [INPUT, *names[:index]])}")
        if positions[ref] >= index:
            raise SpecError(f"{where}: field 'inputs': {_forward_reference(ref, index, names, positions, raw_layers)}")
    return tuple(value)  # one input may appear twice (x + x), as Keras allows


def _forward_reference(ref: str, index: int, names, positions, raw_layers) -> str:
    """Explain a reference to this or a later layer, naming the cycle when there is one."""
    if positions[ref] == index:
        return f"the layer takes its own output ('{ref}'): a cycle"
    path = _path_back(ref, names[index], names, positions, raw_layers, set())
    if path:
        return f"a cycle: {' -> '.join([names[index], *path])}"
    return (f"'{ref}' is defined later (layer {positions[ref]}); "
            "a layer can only take the model's input or earlier layers' outputs")


def _path_back(start: str, target: str, names, positions, raw_layers, seen: set) -> list[str] | None:
    """A chain of 'reads from' links from ``start`` back to ``target``, if one exists."""
    if start == target:
        return [start]
    if start in seen or start not in positions:
        return None
    seen.add(start)
    position = positions[start]
    raw = raw_layers[position]
    refs = raw.get("inputs", names[position - 1] if position else INPUT)
    for ref in [refs] if isinstance(refs, str) else refs if isinstance(refs, list) else []:
        rest = _path_back(ref, target, names, positions, raw_layers, seen) if isinstance(ref, str) else None
        if rest:
            return [start, *rest]
    return None


def check_input_count(kind: LayerKind, count: int, where: str, names: tuple[str, ...] = ()) -> None:
    """Refuse a layer given fewer or more inputs than its kind takes."""
    low, high = kind.min_inputs, kind.max_inputs
    if count < low or (high is not None and count > high):
        wanted = f"{low}" if low == high else f"at least {low}" if high is None else f"{low} to {high}"
        listed = f" ({', '.join(names)})" if names else ""
        raise SpecError(f"{where}: {kind.name} takes {wanted} input(s), got {count}{listed}")


def parse_fields(raw: dict[str, Any], kind: LayerKind, where: str) -> dict[str, Any]:
    """Check a layer's raw fields against its kind: unknown, missing and invalid fields are errors."""
    valid = [*kind.fields, "name", "inputs"]
    for key in raw:
        if key not in kind.fields and key not in COMMON_KEYS:
            raise SpecError(f"{where}: unknown field {shown(key)}{suggest(key, valid)}; "
                            f"valid fields: {', '.join(valid)}")
    fields = {}
    for key, spec_field in kind.fields.items():
        if key in raw:
            fields[key] = spec_field.type.check(raw[key], f"{where}: field '{key}'")
        elif spec_field.required:
            raise SpecError(f"{where}: field '{key}' is required")
        elif spec_field.default is None:
            fields[key] = None
        else:
            fields[key] = spec_field.type.check(spec_field.default, f"{where}: default of '{key}'")
    return kind.normalize(fields, where)


def _unused_warnings(layers: tuple[LayerSpec, ...], source: str) -> tuple[str, ...]:
    used = {ref for layer in layers for ref in layer.inputs}
    return tuple(f"{source}: {layer.label}: its output is never used (only the last layer is the output)"
                 for layer in layers[:-1] if layer.name not in used)
