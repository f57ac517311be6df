"""What a layer computes: its output on images (``feature_maps``) and a convolution's kernels (``filters``)."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.engine.inputs import InputError
from cnnlab.explain.network import (
    LayerRef,
    ModelLike,
    evaluating,
    forward_capturing,
    layer_index,
    network_input,
    resolve_model,
)


def feature_maps(model: ModelLike, images: np.ndarray, layer: LayerRef, *, batch_size: int = 64) -> np.ndarray:
    """The output of ``layer`` (a name or an index) on ``images``, as Keras gives a feature model's output:
    ``(N, H', W', channels)`` for feature maps (channels last), ``(N, units)`` once flat. Eval mode: dropout
    off, batchnorm on its moving statistics.
    """
    model = resolve_model(model)
    module = model.module
    index = layer_index(module, layer, "feature_maps")
    x = network_input(model, images)
    with evaluating(module), torch.no_grad():
        parts = [forward_capturing(module, x[start:start + batch_size], index)[1].float()
                 for start in range(0, len(x), batch_size)]
    output = torch.cat(parts)
    if output.dim() == 4:
        output = output.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C), Keras' layout
    return output.cpu().numpy()


def filters(model: ModelLike, layer: LayerRef = None) -> np.ndarray:
    """A ``conv2d`` layer's kernels in Keras' layout, ``(kernel_h, kernel_w, in_channels, filters)``, as
    ``layer.get_weights()[0]`` gives them; default the first convolution (the one whose filters read the
    pixels themselves)."""
    model = resolve_model(model)
    module = model.module
    convolutions = [i for i, info in enumerate(module.info.layers) if info.layer.kind == "conv2d"]
    if layer is None and not convolutions:
        raise InputError(f"filters: the network '{module.spec.name}' has no conv2d layer")
    index = convolutions[0] if layer is None else layer_index(module, layer, "filters")
    info = module.info.layers[index]
    if info.layer.kind != "conv2d":
        raise InputError(f"filters: layer '{info.layer.name}' is a {info.layer.kind}, not a conv2d; "
                         f"the conv2d layers are {', '.join(module.layer_names[i] for i in convolutions) or 'none'}")
    weight = module.blocks[index].conv.weight.detach().float()  # torch's (filters, in, kh, kw)
    return weight.permute(2, 3, 1, 0).cpu().numpy()
