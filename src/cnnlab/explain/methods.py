"""One name per map method, for the sanity checks and the command line: each becomes a function
``(module, x, classes) -> maps`` on the network's input ``x`` ``(N, C, H, W)``, so that a check can run it on
a copy of the network whose weights it re-initialised."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from cnnlab.api.model import Model
from cnnlab.engine.inputs import InputError
from cnnlab.explain.gradcam import gradcam_layer, gradcam_maps
from cnnlab.explain.network import to_numpy
from cnnlab.explain.saliency import SaliencyOptions, saliency_maps

MAP_METHODS = ("gradcam", "gradient", "integrated_gradients", "smoothgrad")
MapMaker = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def map_maker(model: Model, method, layer=None) -> tuple[str, MapMaker]:
    """``(name, maker)`` for a method named in :data:`MAP_METHODS` (``"saliency"`` is ``"gradient"``), or for
    a function ``method(model, images, class_index) -> maps`` of the user's (called with a copy of ``model``
    holding the network whose maps are wanted, images ``(N, H, W, C)`` float as the network sees them)."""
    if callable(method):
        return getattr(method, "__name__", "custom"), _users(model, method)
    method = "gradient" if method == "saliency" else method
    if method == "gradcam":
        index = gradcam_layer(model.module, layer)  # checked once, before anything is computed
        return method, lambda module, x, classes: gradcam_maps(module, x, classes, index)
    if method in MAP_METHODS:
        options = SaliencyOptions.checked(method)
        return method, lambda module, x, classes: saliency_maps(module, x, classes, options)
    raise InputError(f"method must be one of {', '.join(MAP_METHODS)} or a function (model, images, "
                     f"class_index) -> maps, got {method!r}"[:200])


def _users(model: Model, method) -> MapMaker:
    def make(module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        twin = copy.copy(model)  # the same model, with the network asked about
        twin.module = module
        images = x.permute(0, 2, 3, 1) if x.dim() == 4 else x  # back to (N, H, W, C)
        maps = np.asarray(method(twin, to_numpy(images), to_numpy(classes)), dtype=np.float32)
        expected = (len(x), *(x.shape[2:] if x.dim() == 4 else x.shape[1:]))
        if maps.shape != expected:
            raise InputError(f"method: the function returned maps of shape {maps.shape}; expected {expected}")
        return torch.from_numpy(maps)
    return make
