"""Keras 3 as the second oracle: the same network built with Keras' functional API.

cnnlab's specs have Keras' meaning, so per-layer output shapes and parameter counts
must equal what Keras reports for the same functional model. The Keras model is
built generically from the registry: each kind's ``keras_class`` is looked up in
``keras.layers`` and each field is passed under its Keras argument name (the
Field's ``keras``, else the field's own name). A new kind whose fields match
Keras' arguments therefore needs no change here.

Keras runs on its torch backend (``KERAS_BACKEND=torch`` unless already set). A test
module importing this one is skipped, with the reason, where Keras 3 is absent.
"""

import math
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip(
    "keras", minversion="3.0",
    reason=f"Keras 3 is not installed (or cannot load its {os.environ['KERAS_BACKEND']!r} backend); "
           "the Keras oracle tests need `pip install 'keras>=3.8'` (part of the dev extra)")

from cnnlab.net.spec import INPUT  # noqa: E402

INPUT_NAME = INPUT  # the Keras input layer's name: a spec layer can never be called this


def keras_arguments(layer):
    """The Keras constructor's keyword arguments for a spec layer: fields under their Keras names.

    A value Keras has no counterpart for (a data-aware initializer) is left to Keras' default,
    as the Keras export leaves it: it sets weights, not shapes or counts."""
    kind = layer.definition
    return {spec_field.keras or name: layer[name] for name, spec_field in kind.fields.items()
            if layer[name] not in spec_field.cnnlab_values and not spec_field.cnnlab_field}


def keras_layer(layer):
    """The Keras layer object for a spec layer, named as in the spec.

    A kind of cnnlab's own (``in_keras`` False: augmentation that is the identity at inference) is
    Keras' Identity, as the Keras export leaves it out: same shape, no weights.
    """
    if not layer.definition.in_keras:
        return keras.layers.Identity(name=layer.name)
    cls = getattr(keras.layers, layer.keras_class, None)
    if cls is None:
        raise LookupError(f"kind '{layer.kind}': keras.layers has no class '{layer.keras_class}' "
                          f"(Keras {keras.__version__})")
    return cls(name=layer.name, **keras_arguments(layer))


def keras_model(spec, input_shape=None):
    """``(model, layers)``: the Keras functional model and the Keras layer of each spec layer, in order.

    ``layers`` holds every spec layer, also one whose output is never used (Keras leaves
    such a layer out of ``model.layers``, but it is built and has its weights).
    Raises whatever Keras raises for a network it refuses.
    """
    shape = tuple(input_shape if input_shape is not None else spec.input_shape)
    tensors = {INPUT: keras.Input(shape=shape, name=INPUT_NAME)}
    layers = []
    for layer in spec.layers:
        keras_obj = keras_layer(layer)
        args = [tensors[name] for name in layer.inputs]
        single = layer.definition.max_inputs == 1
        tensors[layer.name] = keras_obj(args[0] if single else args)
        if not layer.fields.get("kernel_trainable", True):  # cnnlab's frozen kernel: Keras 3's variable flag
            keras_obj.kernel.trainable = False
        layers.append(keras_obj)
    model = keras.Model(tensors[INPUT], tensors[spec.layers[-1].name], name=_model_name(spec.name))
    return model, layers


def _model_name(name):
    return name if name and "/" not in name else "model"


def reaching_output(spec):
    """Names of the layers the output depends on (the last layer included): a functional model's layers.

    Not the exporter's walk (a stack of pending names from the output, in cnnlab.export.keras_weights),
    so that a fault there cannot hide here: one backward sweep over the spec's order, in which a layer's
    inputs always come before it, so every reader of a layer is decided before the layer itself."""
    needed = {spec.layers[-1].name}
    for layer in reversed(spec.layers):
        if layer.name in needed:
            needed.update(layer.inputs)
    return needed & {layer.name for layer in spec.layers}  # the input is no layer


def weight_count(weights):
    return sum(math.prod(weight.shape) for weight in weights)


def layer_facts(layers):
    """[(output_shape without the batch axis, trainable, non_trainable)] of built Keras layers."""
    return [(tuple(layer.output.shape[1:]), weight_count(layer.trainable_weights),
             weight_count(layer.non_trainable_weights)) for layer in layers]


def keras_layer_facts(spec, input_shape=None):
    """[(output_shape without the batch axis, trainable, non_trainable)] per spec layer, from Keras."""
    return layer_facts(keras_model(spec, input_shape)[1])
