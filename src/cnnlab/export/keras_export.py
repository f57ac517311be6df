"""Keras: a runnable Python file that builds the network with Keras' functional API.

The code is what the course asks students to write: ``keras.Input``, one
``keras.layers.<Class>(...)`` call per spec layer with Keras' argument names (each
kind's ``keras_class``, each field's Keras name, arguments at Keras' defaults left
out), the spec's layer names, ``keras.Model(inputs, outputs)``. With weights (a
trained run), they go beside it as ``.weights.npz`` in Keras' layouts
(:mod:`cnnlab.export.keras_weights`), and the file sets each layer's with
``layer.set_weights([...])``. Where Keras 3 can be imported, the source is run before
it is written: every layer's output shape and parameter count must be cnnlab's, and
with weights its probabilities on random images within :data:`TOLERANCE` of cnnlab's.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from cnnlab.export.codegen import WRITTEN_BY, comment_text, literal, module_from_source, variable_names
from cnnlab.export.keras_weights import keras_weights, reaching_output
from cnnlab.export.network import ExportError, Network, check_agreement, reason, reference_probabilities, sample_images
from cnnlab.net.spec import INPUT, parse_fields

TOLERANCE = 1e-5  # max |difference| of a class probability, Keras (torch backend) vs cnnlab
RESERVED = {"inputs", "outputs", "keras", "np", "Path", "model", "path", "w", "x"}


def export_keras(network: Network, path: Path, weights: Path, with_weights: bool | None = None
                 ) -> tuple[str, bytes | None, dict]:
    """The source of ``path``, the weights file's bytes (None without weights) and what was checked.

    ``with_weights`` defaults to whether the network was trained (a run).
    """
    with_weights = network.trained if with_weights is None else with_weights
    arrays = keras_weights(network) if with_weights else None
    source = _source(network, path.name, weights.name if arrays else None, arrays)
    data = None
    if arrays is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **{key: array for layer in arrays.values() for key, array in layer})
        data = buffer.getvalue()
    return source, data, _verify(network, source, path, data)


def keras_call(layer) -> str:
    """``keras.layers.Conv2D(32, (3, 3), padding="same", ..., name="conv2d")`` for a spec layer."""
    kind = layer.definition
    required = {name: layer[name] for name, field in kind.fields.items() if field.required}
    defaults = _defaults(layer)
    by_keras = {field.keras or name: name for name, field in kind.fields.items()}
    args, done = [], set()
    for keras_name in kind.keras_args:  # required arguments first, by position, as Keras' docs show them
        name = by_keras.get(keras_name)
        if name is None or name not in required:
            break
        args.append(_value(layer, name))
        done.add(name)
    for name, field in kind.fields.items():
        if field.cnnlab_field or layer[name] in field.cnnlab_values:
            continue  # cnnlab's own (a data-aware initializer): the exported weights carry its effect
        if name not in done and (name in required or layer[name] != defaults[name]):
            args.append(f"{field.keras or name}={_value(layer, name)}")
    args.append(f"name={literal(layer.name)}")
    return f"keras.layers.{layer.keras_class}({', '.join(args)})"


def _defaults(layer) -> dict:
    """What each optional field would be if left out: its default, or, for a derived one (a pool's
    strides), what the layer's other fields make it."""
    kind = layer.definition
    given = {name: layer[name] for name, field in kind.fields.items() if field.default is not None}
    derived = parse_fields(given, kind, layer.label)  # fields defaulting to None are derived here
    return {name: derived[name] if field.default is None else field.type.check(field.default, layer.label)
            for name, field in kind.fields.items() if not field.required}


def _value(layer, name: str) -> str:
    value = layer[name]
    if layer.kind == "zeropadding2d" and name == "padding":  # ((top, bottom), (left, right)), as briefly as it allows
        (top, bottom), (left, right) = value
        if top == bottom and left == right:
            value = top if top == left else (top, left)
    if name in ("height_factor", "width_factor") and value[0] == -value[1]:
        value = value[1]  # Keras' factor f means [-f, f]
    return literal(value)


def _source(network: Network, file_name: str, weights_name: str | None, arrays) -> str:
    parts = [_header(network, file_name, weights_name), _build(network)]
    if arrays is not None:
        parts.append(_loader(arrays))
    main = ["    model = build_model()"] + (["    load_weights(model)"] if arrays is not None else [])
    parts.append('if __name__ == "__main__":\n' + "\n".join(main) + "\n    model.summary()")
    return "\n\n\n".join(parts) + "\n"


def _header(network: Network, file_name: str, weights_name: str | None) -> str:
    output = "class probabilities" if network.model.softmax_output else "the last layer's values"
    shape = literal(network.input_shape) + (" (height, width, channels: channels last)"
                                            if len(network.input_shape) == 3 else " (features)")
    weights = (f"Weights: {comment_text(weights_name)} beside this file, in Keras' layouts; load_weights() "
               "sets them." if weights_name else "Untrained: build_model() makes the network; train it with fit().")
    run = f"builds the model{', loads the weights' if weights_name else ''}, prints its summary"
    imports = "from pathlib import Path\n\nimport keras\nimport numpy as np" if weights_name else "import keras"
    where = f"\nWEIGHTS = Path(__file__).with_name({literal(weights_name)})" if weights_name else ""
    return f'''"""{comment_text(network.name)} ({comment_text(network.origin)}), built with Keras' functional API.

{WRITTEN_BY}
Needs Keras 3 (without TensorFlow, run it with KERAS_BACKEND=torch or jax).
Input: float32 {shape} per sample, in [0, 1]: uint8 pixels divided by 255. Output: {output}.
{weights}

    python {comment_text(file_name)}       # {run}
"""

{imports}

CLASS_NAMES = {literal(network.class_names) if network.class_names else None}{where}'''


def _build(network: Network) -> str:
    spec = network.model.spec
    names = variable_names(spec, RESERVED)
    names[INPUT] = "inputs"
    last = spec.layers[-1].name
    lines = [f"    inputs = keras.Input(shape={literal(network.input_shape)}, name={literal(INPUT)})"]
    for layer in spec.layers:
        sources = [names[source] for source in layer.inputs]
        target = "outputs" if layer.name == last else "x" if spec.is_chain else names[layer.name]
        if spec.is_chain:
            sources = ["inputs" if layer.index == 0 else "x"]
        argument = sources[0] if layer.definition.max_inputs == 1 else f"[{', '.join(sources)}]"
        if not layer.definition.in_keras:  # cnnlab's own augmentation: the identity at inference
            note = comment_text(f"{layer.name} ({layer.kind}): cnnlab's {layer.keras_class}, not a Keras layer")
            kept = f"{target} = {argument}  # " if target != argument else "# "  # a chain's x stays x
            lines.append(f"    {kept}{note}; the identity at inference, left out")
            continue
        lines.append(f"    {target} = {keras_call(layer)}({argument})")
    model_name = spec.name if spec.name and "/" not in spec.name else "model"  # Keras refuses '/' in names
    model = f"keras.Model(inputs, outputs, name={literal(model_name)})"
    frozen = [layer for layer in spec.layers if layer.frozen_kernel and layer.trainable and layer.definition.in_keras]
    if not frozen:
        lines.append(f"    return {model}")
    else:  # no Keras argument says it: Keras 3's variable flag, set on the built layer (not kept by model.save)
        lines.append(f"    model = {model}")
        lines += [f"    model.get_layer({literal(layer.name)}).{layer.frozen_kernel[0]}.trainable = False"
                  "  # cnnlab's kernel_trainable: false" for layer in frozen]
        lines.append("    return model")
    return 'def build_model():\n    """The network, layer by layer."""\n' + "\n".join(lines)


def _loader(arrays) -> str:
    lines = []
    for name, weights in arrays.items():
        values = ", ".join(f"w[{literal(key)}]" for key, _ in weights)
        lines.append(f"        model.get_layer({literal(name)}).set_weights([{values}])")
    return f'''def load_weights(model, path=WEIGHTS):
    """Set each layer's weights from the .npz file cnnlab wrote, already in Keras' layouts:
    kernels (kh, kw, in, out), depthwise kernels (kh, kw, in, multiplier), dense kernels (in, out),
    batchnorm [gamma, beta, moving mean, moving variance]."""
    with np.load(path) as w:
{chr(10).join(lines) if lines else "        pass  # no layer has weights"}'''


def _import_keras():
    """Keras 3, or None when it is absent or cannot load a backend (the check is then skipped)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # cnnlab's torch is there; TensorFlow may not be
    try:
        import keras
    except Exception:  # ImportError, or a backend that fails to load
        return None
    return keras if int(keras.__version__.split(".")[0]) >= 3 else None


def keras_model(network: Network, path: Path):
    """``(the Keras model, what was checked)``: the network built by the generated code with its weights set,
    its predictions checked against cnnlab's (what ``model.save("m.keras")`` saves); an ExportError naming
    ``path`` where Keras 3 cannot be imported or the model does not agree."""
    arrays = keras_weights(network)
    source = _source(network, path.name, "weights.npz", arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **{key: array for layer in arrays.values() for key, array in layer})
    model, checks = _built(network, source, path, buffer.getvalue())
    if model is None:
        raise ExportError(f"{path}: {checks['skipped']}")
    return model, checks


def _verify(network: Network, source: str, path: Path, weights: bytes | None) -> dict:
    return _built(network, source, path, weights)[1]


def _built(network: Network, source: str, path: Path, weights: bytes | None) -> tuple[object, dict]:
    """The Keras model the source builds (None where Keras 3 is absent) and what was checked."""
    keras = _import_keras()
    if keras is None:
        return None, {"skipped": "Keras 3 is not installed; the file was not run"}
    checks = {"runtime": f"Keras {keras.__version__} ({keras.backend.backend()} backend)"}
    try:
        module = module_from_source(source, path)
        model = module.build_model()
        _check_layers(network, model, path)
        if weights is None:
            return model, checks
        module.load_weights(model, io.BytesIO(weights))
        _check_random_crop(keras, network, path)
        _check_average_pooling(keras, network, path)
        images = sample_images(network)
        channels_last = images.transpose(0, 2, 3, 1) if images.ndim == 4 else images
        got = _numpy(model(channels_last, training=False))
    except ExportError:
        raise
    except Exception as exc:  # whatever Keras refuses; the file is then not written
        raise ExportError(f"{path}: Keras {keras.__version__} cannot run the generated code ({reason(exc)}); "
                          "not written") from None
    expected = reference_probabilities(network, images)
    return model, {**checks, "samples": len(images), "tolerance": TOLERANCE,
                   "max_diff": check_agreement(str(path), got, expected, TOLERANCE)}


def _numpy(tensor) -> np.ndarray:
    """A backend's tensor as numpy; torch's directly (Keras' convert_to_numpy warns under numpy 2)."""
    return tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)


def _check_layers(network: Network, model, path: Path) -> None:
    """Every layer of the Keras model has cnnlab's output shape and parameter count."""
    reached = reaching_output(network.model.spec)
    for info in network.info.layers:
        if info.layer.name not in reached or not info.layer.definition.in_keras:
            continue  # keras.Model leaves out a layer nothing reads; the file leaves out cnnlab's own kinds
        layer = model.get_layer(info.layer.name)
        facts = (tuple(layer.output.shape[1:]), layer.count_params())
        if facts != (tuple(info.output_shape), info.params):
            raise ExportError(f"{path}: Keras builds {info.layer.label} as {facts[0]} with {facts[1]:,} "
                              f"parameters, cnnlab as {info.output_shape} with {info.params:,}; not written")
        trainable = sum(int(np.prod(weight.shape)) for weight in layer.trainable_weights)
        if trainable != info.parameters.trainable:  # a frozen layer or kernel must stay frozen in the file
            raise ExportError(f"{path}: Keras trains {trainable:,} parameters of {info.layer.label}, cnnlab "
                              f"{info.parameters.trainable:,}; not written")


def _check_random_crop(keras, network: Network, path: Path) -> None:
    """Refuse, naming the cause, where this Keras' RandomCrop does not crop at inference (keras-team/keras#21868,
    Keras 3.15 and before at least): the file's predictions could not be cnnlab's."""
    if not any(info.layer.kind == "random_crop" for info in network.info.layers):
        return
    probe = _numpy(keras.layers.RandomCrop(1, 1)(np.zeros((1, 2, 2, 1), np.float32), training=False))
    if probe.shape != (1, 1, 1, 1):
        raise ExportError(f"{path}: Keras {keras.__version__}'s RandomCrop does not crop at inference "
                          "(keras-team/keras#21868), so the exported model cannot predict as cnnlab's does; "
                          "not written (export it untrained with a spec, or to onnx or pytorch)")


def _check_average_pooling(keras, network: Network, path: Path) -> None:
    """Refuse, naming the cause, where this Keras averages a layer's 'same'-padded pooling windows otherwise
    than TensorFlow and cnnlab (its torch backend pads unevenly sized windows evenly, keras-team/keras#18452,
    Keras 3.15 at least): the file's predictions could not be cnnlab's. Each such layer is run alone on a
    random image by both."""
    import torch

    for info in network.info.layers:
        layer = info.layer
        if layer.kind != "avgpool2d" or layer["padding"] != "same":
            continue
        image = np.random.default_rng(0).random((1, *info.input_shape), dtype=np.float32)
        theirs = _numpy(keras.layers.AveragePooling2D(layer["pool"], layer["strides"], padding="same")(image))
        with torch.no_grad():
            ours = layer.definition.build(info)(torch.from_numpy(image.transpose(0, 3, 1, 2))).numpy()
        if theirs.shape != ours.transpose(0, 2, 3, 1).shape or \
                not np.allclose(theirs, ours.transpose(0, 2, 3, 1), rtol=0, atol=TOLERANCE):
            raise ExportError(f"{path}: Keras {keras.__version__} ({keras.backend.backend()} backend) averages "
                              f"the 'same'-padded windows of {layer.label} otherwise than TensorFlow "
                              "(keras-team/keras#18452), so the exported model cannot predict as cnnlab's does; "
                              "not written (export it untrained, or to onnx or pytorch)")
