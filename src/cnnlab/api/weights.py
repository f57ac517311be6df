"""Keras' ``get_weights()`` / ``set_weights()`` on a model and on its layers: numpy arrays in Keras' order and
layouts (a convolution's kernel ``(kh, kw, in, out)``, a dense kernel ``(in, out)``, then the bias;
batchnorm's gamma, beta, moving mean, moving variance; a depthwise kernel ``(kh, kw, in, multiplier)``).

The layouts are each layer kind's own (``keras_layout`` and ``keras_array``, which the Keras export
writes with, :mod:`cnnlab.export.keras_weights`); reading an array back inverts that same conversion.
A model's list is its layers' lists in the order ``keras.Model`` lists the layers, so weights move
between cnnlab and Keras models of the same layers with ``set_weights(other.get_weights())``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab.engine.inputs import InputError


@dataclass(frozen=True)
class WeightSlot:
    """One Keras weight of one layer: its Keras name and shape, and where it lives in the torch module."""

    layer: str       # the layer's name
    name: str        # Keras' weight name: kernel, bias, gamma, moving_mean...
    key: str         # the state-dict key of the torch tensor holding it
    shape: tuple[int, ...]  # Keras' shape
    positions: np.ndarray   # Keras' shape; at each place the flat index into the torch tensor

    def read(self, state: dict) -> np.ndarray:
        """The weight as Keras holds it (float32, Keras' layout)."""
        flat = state[self.key].detach().float().cpu().numpy().reshape(-1)
        return np.ascontiguousarray(flat[self.positions])

    def write(self, state: dict, array: np.ndarray) -> None:
        """Copy ``array`` (Keras' layout, checked already) into the torch tensor, in place: the parameter
        stays the same object, so an optimizer and a model sharing it see the new values."""
        import torch

        target = state[self.key]
        flat = np.empty(target.numel(), dtype=np.float32)
        flat[self.positions.reshape(-1)] = array.reshape(-1)
        with torch.no_grad():
            target.copy_(torch.from_numpy(flat).reshape(target.shape))


def weight_slots(module, layer_names: list[str]) -> list[WeightSlot]:
    """The Keras weights of these layers of a built module, in order."""
    from cnnlab.export.keras_weights import keras_positions, layer_layout

    state = module.state_dict(keep_vars=True)
    index_of = {name: index for index, name in enumerate(module.layer_names)}
    slots = []
    for layer_name in layer_names:
        index = index_of[layer_name]
        info = module.info.layers[index]
        for name, key in layer_layout(state, index, info):
            positions = keras_positions(info.layer.definition, name, tuple(state[key].shape), info)
            slots.append(WeightSlot(layer_name, name, key, positions.shape, positions))
    return slots


def read_weights(module, slots: list[WeightSlot]) -> list[np.ndarray]:
    state = module.state_dict(keep_vars=True)
    return [slot.read(state) for slot in slots]


def write_weights(module, slots: list[WeightSlot], weights, owner: str) -> None:
    """``set_weights``: every array checked (count, shape, finite numbers) before any is written, so a
    refused list changes nothing; ``owner`` names the model or layer in the error, as Keras does."""
    arrays = _arrays(weights, owner)
    if len(arrays) != len(slots):
        raise InputError(f"set_weights on {owner}: expected {len(slots)} weights "
                         f"({_listed(slots)}), got {len(arrays)}")
    for slot, array in zip(slots, arrays):
        if array.shape != slot.shape:
            raise InputError(f"set_weights on {owner}: layer '{slot.layer}' weight '{slot.name}' has shape "
                             f"{slot.shape} (Keras' layout), got {array.shape}")
        if not np.isfinite(array).all():
            raise InputError(f"set_weights on {owner}: layer '{slot.layer}' weight '{slot.name}' holds "
                             "NaN or infinite values")
    state = module.state_dict(keep_vars=True)
    for slot, array in zip(slots, arrays):
        slot.write(state, array)
    module.fresh = False  # weights set by the user: data-aware initialisers never overwrite them


def _arrays(weights, owner: str) -> list[np.ndarray]:
    if not isinstance(weights, (list, tuple)):
        raise InputError(f"set_weights on {owner}: expected a list of numpy arrays (as get_weights() returns), "
                         f"got {type(weights).__name__}")
    arrays = []
    for index, weight in enumerate(weights):
        if hasattr(weight, "detach"):  # a torch tensor (or a Keras variable on the torch backend)
            weight = weight.detach().cpu().numpy()
        elif hasattr(weight, "numpy") and not isinstance(weight, np.ndarray):
            weight = weight.numpy()
        try:
            arrays.append(np.asarray(weight, dtype=np.float32))
        except (TypeError, ValueError):
            raise InputError(f"set_weights on {owner}: weight {index} is not an array of numbers, "
                             f"got {type(weight).__name__}") from None
    return arrays


def _listed(slots: list[WeightSlot]) -> str:
    shown = ", ".join(f"{slot.layer}/{slot.name} {slot.shape}" for slot in slots[:6])
    return shown + (f" and {len(slots) - 6} more" if len(slots) > 6 else "") if slots else "none"


class WeightsMixin:
    """``model.get_weights()`` / ``model.set_weights(weights)`` and the layers' own (through
    :meth:`layer_weights` / :meth:`set_layer_weights`), as in Keras."""

    def get_weights(self) -> list[np.ndarray]:
        """All weights as numpy arrays, in Keras' order and layouts (``[]`` while the input shape is unknown,
        as Keras' unbuilt Sequential gives)."""
        module = self._weights_module()
        return [] if module is None else read_weights(module, self._model_slots(module))

    def set_weights(self, weights) -> None:
        """Set all weights from arrays in Keras' order and layouts (what ``get_weights`` returns, or a Keras
        model's ``get_weights()`` for the same layers); wrong counts or shapes are refused, naming the layer."""
        module = self._built_for_weights()
        write_weights(module, self._model_slots(module), weights, f"model '{self.name}'")

    def layer_weights(self, name: str) -> list[np.ndarray]:
        """Layer ``name``'s weights (what ``model.get_layer(name).get_weights()`` returns)."""
        module = self._weights_module()
        return [] if module is None else read_weights(module, weight_slots(module, [self._layer_named(name)]))

    def set_layer_weights(self, name: str, weights) -> None:
        """Set layer ``name``'s weights (``model.get_layer(name).set_weights(...)``)."""
        module = self._built_for_weights()
        write_weights(module, weight_slots(module, [self._layer_named(name)]), weights, f"layer '{name}'")

    def _model_slots(self, module) -> list[WeightSlot]:
        from cnnlab.export.keras_weights import keras_order

        return weight_slots(module, keras_order(module.spec))

    def _layer_named(self, name: str) -> str:
        self.get_layer(name)  # an unknown name is refused there, listing the layers
        return name

    def _weights_module(self):
        """The torch module, built where the input shape is known (as Keras builds a functional model)."""
        from cnnlab.net.presets import preset_name

        if self.module is None and (self._spec is None or self._spec.input_shape is None
                                    or preset_name(self._spec)):
            return None
        return self._require_module()

    def _built_for_weights(self):
        module = self._weights_module()
        if module is None:
            raise InputError(f"set_weights on model '{self.name if self._spec is not None else '-'}': the model "
                             "has no weights yet (its input shape is unknown); give Input(shape=...) or call "
                             "build(input_shape) or fit() first")
        return module
