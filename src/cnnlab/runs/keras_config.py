"""A cnnlab spec from a Keras 3 model's configuration (``config.json`` of a ``.keras`` file Keras wrote,
or a legacy ``.h5`` file's ``model_config``).

Supported: a ``Sequential`` model, or a functional model with one input and one output, whose layers
are each of a kind cnnlab has (Keras' class name: ``Conv2D``, ``Dense``, ``BatchNormalization``,
``MaxPooling2D``, ``Add``...; ``cnnlab kinds`` lists them). A layer's settings map onto the kind's
fields by their Keras names. Initializers are left out (the file's weights replace them); a setting
cnnlab has no counterpart for (a regularizer, a constraint, ``data_format="channels_first"``, a shared
layer, a nested model) is refused, naming the layer and the setting, rather than dropped.
"""

from __future__ import annotations

from cnnlab.net.registry import by_keras_class
from cnnlab.net.spec import INPUT
from cnnlab.runs.model_file import ModelFileError

# The layer's name is kept; the rest leave its results alone (renorm_momentum acts only with renorm, refused).
IGNORED = {"name", "dtype", "seed", "build_config", "renorm_momentum"}
ASSUMED = {"data_format": "channels_last", "groups": 1, "renorm": False, "synchronized": False, "keepdims": False,
           "trainable": True}  # what cnnlab's kinds always are; any other setting left at None is unset


def spec_from_keras_config(config: dict, where: str) -> dict:
    """The spec (as a dict, for ``parse_spec``) of a Keras model's serialized configuration."""
    kind, inner = config.get("class_name"), config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise ModelFileError(f"{where}: its model configuration has no layers; damaged")
    if kind == "Sequential":
        shape, layers = _sequential(inner["layers"], where)
    elif kind in ("Functional", "Model"):
        shape, layers = _functional(inner, where)
    else:
        raise ModelFileError(f"{where}: a Keras {str(kind)[:60]!r} model; cnnlab reads Sequential and "
                             "functional models")
    if shape is None:
        raise ModelFileError(f"{where}: the model's input shape is not recorded (built without an Input?)")
    name = inner.get("name") if isinstance(inner.get("name"), str) else "keras"
    return {"name": name, "input": shape, "layers": layers}


def _sequential(entries: list, where: str) -> tuple[list | None, list[dict]]:
    shape, layers = None, []
    for entry in entries:
        if _class(entry) == "InputLayer":
            shape = _input_shape(entry, where)
            continue
        if shape is None:  # Keras 2's input_shape= on the first layer: its build_config says it
            built = (entry.get("build_config") or {}).get("input_shape") if isinstance(entry, dict) else None
            shape = list(built[1:]) if isinstance(built, list) else None
        layers.append(_layer(entry, where))
    return shape, layers


def _functional(inner: dict, where: str) -> tuple[list | None, list[dict]]:
    inputs = [entry for entry in inner["layers"] if _class(entry) == "InputLayer"]
    if len(inputs) != 1 or _single(inner.get("output_layers")) is None:
        raise ModelFileError(f"{where}: a model of {len(inputs)} inputs or several outputs; cnnlab's models "
                             "have one input and one output")
    input_name, output = inputs[0].get("name"), _single(inner.get("output_layers"))
    layers = []
    for entry in inner["layers"]:
        if entry is inputs[0]:
            continue
        layer = _layer(entry, where)
        sources = _sources(entry, where)
        layer["inputs"] = [INPUT if source == input_name else source for source in sources]
        layers.append(layer)
    # The output is the spec's last layer; Keras lists layers by depth, so moving it keeps the order valid.
    last = [layer for layer in layers if layer["name"] == output]
    return _input_shape(inputs[0], where), [layer for layer in layers if layer["name"] != output] + last


def _single(ports):
    """The layer name of Keras' ``output_layers``: ``["dense", 0, 0]`` or ``[["dense", 0, 0]]``."""
    if isinstance(ports, list) and len(ports) == 1 and isinstance(ports[0], list):
        ports = ports[0]
    return ports[0] if isinstance(ports, list) and len(ports) == 3 and isinstance(ports[0], str) else None


def _class(entry) -> str | None:
    return entry.get("class_name") if isinstance(entry, dict) else None


def _input_shape(entry: dict, where: str) -> list:
    config = entry.get("config") or {}
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if not isinstance(shape, list) or len(shape) < 2 or None in shape[1:]:
        raise ModelFileError(f"{where}: input '{config.get('name')}' has no fixed shape ({shape}); cnnlab needs one")
    return list(shape[1:])


def _sources(entry: dict, where: str) -> list[str]:
    """The names of the layers feeding a functional model's layer (one call: a layer used twice is refused)."""
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1:
        raise ModelFileError(f"{where}: layer '{entry.get('name')}' is called {len(nodes or [])} times; cnnlab "
                             "reads models whose layers are each called once")
    args = nodes[0].get("args", []) if isinstance(nodes[0], dict) else []
    tensors = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    names = []
    for tensor in tensors:
        history = (tensor.get("config") or {}).get("keras_history") if isinstance(tensor, dict) else None
        if not isinstance(history, list) or not history or not isinstance(history[0], str):
            raise ModelFileError(f"{where}: layer '{entry.get('name')}' has an input cnnlab cannot follow")
        names.append(history[0])
    return names


def _layer(entry, where: str) -> dict:
    """One spec layer: the kind of the Keras class, its fields from the settings of their Keras names."""
    class_name, config = _class(entry), (entry.get("config") if isinstance(entry, dict) else None)
    kind = by_keras_class(class_name) if isinstance(class_name, str) else None
    if kind is None or not kind.in_keras or not isinstance(config, dict):
        raise ModelFileError(f"{where}: layer '{(config or {}).get('name')}' is a Keras {str(class_name)[:60]}, "
                             "which cnnlab has no layer kind for (`cnnlab kinds` lists those it has)")
    label = f"layer '{config.get('name')}' ({class_name})"
    layer, used = {"kind": kind.name, "name": config.get("name")}, set(IGNORED)
    for name, field in kind.fields.items():
        key = field.keras or name
        if key in config and not key.endswith("_initializer"):  # the weights replace what initialised them
            layer[name] = config[key]
            used.add(key)
    for key, value in config.items():
        if key in used or key.endswith("_initializer") or (key in ASSUMED and value == ASSUMED[key]):
            continue
        if key in ("axis",) and kind.name == "batchnorm" and value in (-1, [-1]):
            continue  # normalising the channels, as cnnlab's batchnorm does
        if value is None:  # unset: a regularizer, a constraint, a noise shape...
            continue
        raise ModelFileError(f"{where}: {label} sets {key}={str(value)[:80]}, which cnnlab has no counterpart "
                             "for; not read")
    return layer
