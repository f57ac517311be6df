"""What every explanation shares: the model (a ``Model``, a run folder or a ``.cnnlab`` file), images as the
network's input, the classes explained, and one layer's output caught on the way through the network."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from cnnlab.api.loading import load_model
from cnnlab.api.model import Model
from cnnlab.engine.batches import images_to_tensor
from cnnlab.engine.inputs import InputError

ModelLike = Model | str | os.PathLike  # a Model, a run folder or a .cnnlab file
ClassIndex = int | str | Sequence[int | str] | np.ndarray | None  # one class for all, or one per image
LayerRef = str | int | None  # a layer's name, or its index

CONVOLUTIONS = ("conv2d", "depthwise_conv2d", "separable_conv2d")
BATCH_SIZE = 64  # images per forward and backward pass: bounds the memory of a map, not its values


def resolve_model(model) -> Model:
    """``model`` as a built :class:`Model`: a Model, or a run folder / model file read by ``load_model``."""
    if isinstance(model, (str, Path)):
        return load_model(model)
    if not isinstance(model, Model):
        raise InputError(f"model: expected a cnnlab.Model, a run folder or a .cnnlab file, got "
                         f"{type(model).__name__}")
    model._require_module()  # a model not built yet is one clear SpecError ("call fit() or build")
    return model


def network_input(model: Model, images, name: str = "images") -> torch.Tensor:
    """``images`` checked as ``predict`` checks them (one image may come without its batch axis), as the
    network's float32 input on the model's device: ``(N, H, W, C)`` -> ``(N, C, H, W)``, or ``(N, D)``."""
    device = next(model.module.parameters()).device
    return images_to_tensor(model._images(images, name), device)


def whole_number(value, name: str, low: int = 0, high: int = 10_000) -> int:
    """``value`` checked as a whole number from ``low`` to ``high``, for the argument ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}"[:200])
    return int(value)


def real_number(value, name: str, low: float, high: float) -> float:
    """``value`` checked as a number from ``low`` to ``high``, for the argument ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not low <= value <= high:
        raise InputError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}"[:200])
    return float(value)


def map_shape(x: torch.Tensor) -> tuple[int, ...]:
    """The shape of one image's map: its pixels ``(H, W)`` (channels-first input), or ``(D,)`` for flat input."""
    return tuple(x.shape[2:]) if x.dim() == 4 else tuple(x.shape[1:])


@contextmanager
def evaluating(module: torch.nn.Module) -> Iterator[None]:
    """The module in eval mode (dropout off, batchnorm on its moving statistics) with gradients on, whatever
    the caller's mode; its mode is given back after. Nothing writes ``.grad`` on its weights: maps take
    gradients with ``torch.autograd.grad``."""
    was_training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        module.train(was_training)


def chosen_classes(class_index, count: int, model: Model) -> torch.Tensor | None:
    """The class explained for each of ``count`` images ``(N,)``: ``None`` for the predicted one (decided on
    each image as it is), else one index or class name for all, or one per image."""
    if class_index is None:
        return None
    outputs = model.module.info.output_shape[-1]
    values = np.atleast_1d(np.asarray(class_index, dtype=object))
    if values.ndim != 1 or len(values) not in (1, count):
        raise InputError(f"class_index: expected one class or one per image ({count}), got shape {values.shape}")
    indices = [_class_number(value, outputs, model.class_names) for value in values]
    device = next(model.module.parameters()).device
    return torch.tensor(indices * (count if len(indices) == 1 else 1), device=device)


def predicted(module, x: torch.Tensor) -> torch.Tensor:
    """The class each input ``(N, ...)`` is predicted as ``(N,)`` (the module in eval mode)."""
    with torch.no_grad():
        return module(x).float().argmax(dim=1)


def _class_number(value, outputs: int, names: list[str] | None) -> int:
    if isinstance(value, str):
        if names is None or value not in names:
            known = f"; the classes are {', '.join(names)}" if names else " (this model has no class names)"
            raise InputError(f"class_index: no class named {value!r}{known}")
        return names.index(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < outputs:
        raise InputError(f"class_index: expected a class index from 0 to {outputs - 1} or a class name, "
                         f"got {value!r}"[:200])
    return int(value)


def layer_index(module, layer, purpose: str) -> int:
    """The spec position of ``layer`` (a name, or an index as Keras' ``get_layer(index=)``)."""
    names = module.layer_names
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not -len(names) <= layer < len(names):
            raise InputError(f"{purpose}: layer index {layer} is out of range: the network has {len(names)} layers")
        return int(layer) % len(names)
    if isinstance(layer, str) and layer in names:
        return names.index(layer)
    raise InputError(f"{purpose}: no layer {layer!r}; the network's layers are {', '.join(names)}"[:600])


def forward_capturing(module, x: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, output of spec layer index)`` of one forward pass, caught by a forward hook on its block
    (graph networks too: every block runs once per pass)."""
    caught: list[torch.Tensor] = []
    handle = module.blocks[index].register_forward_hook(lambda _block, _inputs, output: caught.append(output))
    try:
        logits = module(x)
    finally:
        handle.remove()
    return logits.float(), caught[0]


def in_batches(x: torch.Tensor, classes: torch.Tensor | None,
               compute: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
               batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """``compute`` over slices of ``x`` (and their classes), concatenated."""
    parts = [compute(x[start:start + batch_size], None if classes is None else classes[start:start + batch_size])
             for start in range(0, len(x), batch_size)]
    return torch.cat(parts)


def scaled_to_max(maps: torch.Tensor) -> torch.Tensor:
    """Each map ``(N, ...)`` divided by its own maximum, into [0, 1] (a map that is zero everywhere stays
    zero), as the keras.io Grad-CAM example scales its heatmap."""
    flat = maps.reshape(len(maps), -1)
    peak = flat.amax(dim=1, keepdim=True)
    return (flat / torch.where(peak > 0, peak, torch.ones_like(peak))).reshape(maps.shape)


def to_numpy(maps: torch.Tensor) -> np.ndarray:
    return maps.detach().float().cpu().numpy()
