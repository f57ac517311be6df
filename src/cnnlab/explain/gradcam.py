"""Grad-CAM (Selvaraju et al., 2017): where a convolution layer's feature maps raise the explained class's score.

The class's logit is differentiated with respect to the layer's output ``A`` ``(N, K, h, w)``; each channel's
gradients, averaged over the positions, weigh its feature map: ``ReLU(sum_k mean(dy/dA_k) * A_k)``, as the
keras.io example and Captum's ``LayerGradCam`` compute it. The map is then resized to the image (bilinear)
and divided by its maximum.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from cnnlab.engine.inputs import InputError
from cnnlab.explain.network import (
    CONVOLUTIONS,
    ClassIndex,
    LayerRef,
    ModelLike,
    chosen_classes,
    evaluating,
    forward_capturing,
    in_batches,
    layer_index,
    network_input,
    resolve_model,
    scaled_to_max,
    to_numpy,
)


def grad_cam(model: ModelLike, images: np.ndarray, class_index: ClassIndex = None, layer: LayerRef = None, *,
             batch_size: int = 64) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1], at the images' size.

    Args:
        model: a :class:`cnnlab.Model`, a run folder or a ``.cnnlab`` file.
        images: ``(N, H, W, C)`` (or one image ``(H, W, C)``), checked as ``predict`` checks them.
        class_index: the class explained: ``None`` (each image's predicted class), an index or a class
            name for all images, or one per image.
        layer: the layer whose feature maps are weighed, by name or index; default the last convolution
            (its activation included where it has one, as Keras' ``Conv2D(activation=...)``).
        batch_size: images per forward and backward pass.
    """
    model = resolve_model(model)
    x = network_input(model, images)
    index = gradcam_layer(model.module, layer)
    return to_numpy(gradcam_maps(model.module, x, chosen_classes(class_index, len(x), model), index, batch_size))


def gradcam_layer(module, layer) -> int:
    """The spec position of the layer Grad-CAM reads: ``layer``, else the last convolution; its output must be
    feature maps ``(h, w, channels)``."""
    if layer is None:
        convolutions = [i for i, info in enumerate(module.info.layers) if info.layer.kind in CONVOLUTIONS]
        if not convolutions:
            raise InputError(f"grad_cam: the network '{module.spec.name}' has no convolution layer, and Grad-CAM "
                             "weighs a convolution's feature maps; use saliency (gradient, integrated_gradients or "
                             "smoothgrad; cnnlab explain --method saliency), which works on any network")
        return convolutions[-1]
    index = layer_index(module, layer, "grad_cam")
    shape = module.info.layers[index].output_shape
    if len(shape) != 3:
        raise InputError(f"grad_cam: layer '{module.layer_names[index]}' outputs {shape}, not feature maps "
                         "(height, width, channels); name a convolution or a layer after one")
    return index


def gradcam_maps(module, x: torch.Tensor, classes: torch.Tensor | None, index: int,
                 batch_size: int = 64) -> torch.Tensor:
    """Grad-CAM of spec layer ``index`` for inputs ``x`` ``(N, C, H, W)``: ``(N, H, W)`` in [0, 1]."""
    with evaluating(module):
        raw = in_batches(x, classes, lambda batch, chosen: raw_gradcam(module, batch, chosen, index), batch_size)
    resized = F.interpolate(raw[:, None], size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)
    return scaled_to_max(resized[:, 0])


def raw_gradcam(module, x: torch.Tensor, classes: torch.Tensor | None, index: int) -> torch.Tensor:
    """``ReLU(sum_k mean_ij(dy_c/dA_kij) * A_k)`` at the layer's own size ``(N, h, w)``, not scaled."""
    x = x.detach().requires_grad_(True)  # a graph even where every weight is frozen
    logits, activation = forward_capturing(module, x, index)  # activation (N, K, h, w)
    chosen = logits.detach().argmax(dim=1) if classes is None else classes
    (gradients,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), activation)
    weights = gradients.float().mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1): the pooled gradients
    return torch.relu((weights * activation.detach().float()).sum(dim=1)).detach()
