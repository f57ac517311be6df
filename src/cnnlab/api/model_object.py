"""The model as an object, as Keras has it: ``model(x)``, ``model.optimizer``, ``get_layer(index=)``,
``summary(print_fn=, line_length=)``, ``get_config``/``from_config``/``to_json``, and the symbolic
``inputs``/``outputs`` a feature model is made from (``Model(inputs=m.inputs, outputs=m.get_layer(n).output)``).
"""

from __future__ import annotations

import json

from cnnlab.engine.config import ConfigError
from cnnlab.engine.inputs import InputError
from cnnlab.net.spec import SpecError

# summary()'s Keras arguments cnnlab takes only at Keras' default (its table has its own columns)
_SUMMARY_DEFAULTS = {"positions": None, "layer_range": None}


class ModelObject:
    """Keras' object-level API on a :class:`cnnlab.Model` (a mixin: needs the model's spec, module,
    ``layers``, ``predict`` and ``summary_text``)."""

    def __call__(self, inputs, training: bool = False, mask=None):
        """Keras' ``model(x)``: the outputs for one batch, as a torch tensor (what Keras returns on its torch
        backend), probabilities where the network ends in softmax; images ``(N, H, W, C)``, feature maps
        back channels-last. Given a torch tensor, it runs on the model's device with gradients flowing
        (to the weights and to ``x``: saliency maps); given a numpy array it is ``predict``'s result as a
        CPU tensor without gradients, so ``model(x).numpy()`` and ``np.argmax(model(x), 1)`` work (on Keras'
        torch backend they raise). ``training=True`` runs dropout and batchnorm as in training."""
        import torch

        if mask is not None:
            raise InputError("model(x, mask=...): masks are not supported (cnnlab's networks take images)")
        if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
            return self._forward(self._tensor_input(inputs), training)
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.detach().cpu().numpy()  # uint8 pixels: scaled as predict scales them
        if not training:
            return torch.from_numpy(self.predict(inputs))
        from cnnlab.engine.batches import images_to_tensor

        return self._forward(images_to_tensor(self._images(inputs, "x"), self._device()), True).detach().cpu()

    def _tensor_input(self, tensor):
        """A float tensor ``(N, H, W, C)`` (or ``(N, D)``) -> the module's channels-first input on its device."""
        shape = tuple(self._require_module().info.input_shape)
        if tuple(tensor.shape[1:]) != shape:
            raise InputError(f"model(x): expected a batch of shape (N, {', '.join(map(str, shape))}) "
                             f"(channels last, as Keras), got {tuple(tensor.shape)}")
        moved = tensor.to(self._device(), dtype=torch_float32())
        return moved.permute(0, 3, 1, 2) if moved.ndim == 4 else moved

    def _forward(self, tensor, training: bool):
        """One forward pass in train or eval mode (the module's mode is given back)."""
        module = self._require_module()
        was_training = module.training
        module.train(bool(training))
        try:
            return channels_last(module.probabilities(tensor))
        finally:
            module.train(was_training)

    @property
    def optimizer(self):
        """Keras' ``model.optimizer``: its ``learning_rate`` can be read and set (``= 1e-4`` or
        ``.assign(1e-4)``), between fits or from a callback; see :mod:`cnnlab.api.optimizer_view`."""
        from cnnlab.api.optimizer_view import ModelOptimizer

        return ModelOptimizer(self)

    def get_layer(self, name: str | None = None, index: int | None = None):
        """The layer called ``name``, or ``model.layers[index]`` (Keras' two ways; an ``InputLayer`` is
        ``layers[0]`` of a functional model, as in Keras)."""
        if (name is None) == (index is None):
            raise SpecError("get_layer: give a layer name or an index (one of them)")
        if name is not None:
            return super().get_layer(name)
        layers = self.layers
        if not isinstance(index, int) or isinstance(index, bool) or not -len(layers) <= index < len(layers):
            raise SpecError(f"get_layer: was asked for the layer at index {index!r} but model '{self.name}' has "
                            f"{len(layers)} layers")
        return layers[index]

    def summary(self, line_length: int | None = None, positions=None, print_fn=None, expand_nested: bool = False,
                show_trainable: bool = False, layer_range=None) -> None:
        """Print the Keras-style summary, Keras' arguments: ``print_fn`` gets the whole text in one call (as
        Keras 3 calls it; tf.keras called it per line), ``line_length`` sets the table's width,
        ``show_trainable`` adds Keras' Trainable column (Y, N, or '-' for a layer without weights).
        ``expand_nested`` changes nothing (cnnlab's models do not nest)."""
        given = {"positions": positions, "layer_range": layer_range}
        for key, value in given.items():
            if value != _SUMMARY_DEFAULTS[key]:
                raise ConfigError(f"summary: argument '{key}' is not supported by cnnlab; summary takes "
                                  "line_length, print_fn, show_trainable, expand_nested")
        if line_length is not None and (not isinstance(line_length, int) or isinstance(line_length, bool)
                                        or line_length < 40):
            raise ConfigError(f"summary: line_length must be an integer of at least 40, got {line_length!r}")
        text = self.summary_text(line_length=line_length, show_trainable=bool(show_trainable))
        if print_fn is None:
            print(text, end="")
        else:
            print_fn(text)

    def get_config(self) -> dict:
        """Keras' ``get_config()``: cnnlab's spec is the config (the spec file's mapping: name, input, layers,
        every field written out); :meth:`from_config` and ``cnnlab.load_model``'s spec readers take it."""
        return self.spec.to_dict()

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """A new, untrained model of the network ``config`` describes (what :meth:`get_config` gave)."""
        from cnnlab.net.spec import parse_spec

        if custom_objects:
            raise ConfigError("from_config: custom_objects are not supported (cnnlab's layers are its own)")
        spec = parse_spec(config, source="config")
        return _model_of(cls, spec)

    def to_json(self, **kwargs) -> str:
        """The config as JSON text (``json.dumps`` keywords pass through); :func:`model_from_json` reads it."""
        return json.dumps(self.get_config(), **kwargs)

    @property
    def inputs(self) -> list:
        """Keras' ``model.inputs``: the symbolic input tensor, in a list (a feature model starts from it)."""
        return [self.input]

    @property
    def input(self):
        """The symbolic input tensor (``shape`` ``(None, H, W, C)``)."""
        layers = self._connected_layers()
        first = layers[0]
        return first.output if first.output.layer is None else first.output.inputs[0]

    @property
    def outputs(self) -> list:
        """Keras' ``model.outputs``: the last layer's symbolic output, in a list."""
        return [self.output]

    @property
    def output(self):
        return self.get_layer(self.spec.layers[-1].name).output

    @property
    def input_shape(self) -> tuple:
        """``(None, H, W, C)`` or ``(None, D)``, as Keras shows it."""
        return tuple(self.input.shape)

    @property
    def output_shape(self) -> tuple:
        return tuple(self.output.shape)

    def _connected_layers(self) -> list:
        layers = self.layers
        if not layers or layers[0].output is None:
            raise SpecError(f"model '{self.name}': its input shape is not known yet, so it has no inputs or "
                            "outputs; give Input(shape=...) first, or call build(input_shape) or fit()")
        return layers


def _model_of(cls, spec):
    """``cls`` (a Model or a Sequential) of ``spec``: a Sequential is made of layer objects, and only of a chain."""
    from cnnlab.net.functional import Input, Layer

    if not hasattr(cls, "add"):
        return cls(spec)
    if not spec.is_chain:
        raise SpecError(f"Sequential.from_config: '{spec.name}' is a graph, not a chain of layers; "
                        "use Model.from_config")
    items = [Layer.from_spec(layer) for layer in spec.layers]
    return cls(([Input(shape=spec.input_shape)] if spec.input_shape else []) + items, name=spec.name)


def channels_last(tensor):
    """A batch of feature maps ``(N, C, H, W)`` as Keras gives them, ``(N, H, W, C)``; other outputs as they are."""
    return tensor.permute(0, 2, 3, 1) if tensor.ndim == 4 else tensor


def torch_float32():
    import torch

    return torch.float32
