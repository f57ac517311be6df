"""One explanation of some images, as ``cnnlab explain`` and the report show it: the maps, what each image is
predicted as, and both sanity checks beside them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.engine.inputs import InputError
from cnnlab.explain.features import feature_maps
from cnnlab.explain.gradcam import gradcam_layer
from cnnlab.explain.methods import map_maker
from cnnlab.explain.network import (
    ClassIndex,
    LayerRef,
    ModelLike,
    chosen_classes,
    evaluating,
    network_input,
    resolve_model,
    to_numpy,
)
from cnnlab.explain.sanity import DeletionResult, RandomisationResult, deletion_score, randomisation_test

EXPLAIN_METHODS = ("gradcam", "saliency", "integrated_gradients", "smoothgrad", "features")
NO_SANITY = "feature maps are the layer's output itself, not an attribution: the sanity checks do not apply"


@dataclass
class Explanation:
    """Maps of ``method`` for some images, with the predictions and the sanity checks' results."""

    method: str
    layer: str | None                    # Grad-CAM's or the feature maps' layer; None for saliency
    predicted: list[str]                 # each image's predicted class (its name, else its index)
    probabilities: list[float]           # ... and its probability
    explained: list[str]                 # the class each map explains
    maps: np.ndarray                     # (N, H, W) in [0, 1]; features: (N, h, w, channels)
    randomisation: RandomisationResult | None
    deletion: DeletionResult | None

    @property
    def sanity(self) -> list[str]:
        """The sanity checks in words, or why none applies."""
        if self.randomisation is None or self.deletion is None:
            return [NO_SANITY]
        return [self.randomisation.verdict, self.deletion.verdict]

    def to_dict(self) -> dict:
        return {"method": self.method, "layer": self.layer, "predicted": self.predicted,
                "probabilities": self.probabilities, "explained": self.explained,
                "maps": np.round(self.maps.astype(float), 4).tolist(), "sanity": self.sanity,
                "randomisation": None if self.randomisation is None else self.randomisation.to_dict(),
                "deletion": None if self.deletion is None else self.deletion.to_dict()}


def explain_images(model: ModelLike, images: np.ndarray, method: str = "gradcam", class_index: ClassIndex = None,
                   layer: LayerRef = None, sanity: bool = True) -> Explanation:
    """Explain ``images`` with ``method`` (one of :data:`EXPLAIN_METHODS`; ``"saliency"`` is the gradient),
    both sanity checks run on the same images and classes (``sanity=False``: none)."""
    model = resolve_model(model)
    if method not in EXPLAIN_METHODS:
        raise InputError(f"method must be one of {', '.join(EXPLAIN_METHODS)}, got {method!r}"[:200])
    x = network_input(model, images)
    with evaluating(model.module), torch.no_grad():
        probabilities = torch.softmax(model.module(x).float(), dim=1)
    best = probabilities.argmax(dim=1)
    classes = chosen_classes(class_index, len(x), model)
    classes = best if classes is None else classes
    names = [_name(model, int(i)) for i in best]
    chances = [float(probabilities[i, c]) for i, c in enumerate(best)]
    explained = [_name(model, int(c)) for c in classes]
    if method == "features":
        index = gradcam_layer(model.module, layer)  # the last convolution by default, as Grad-CAM's
        maps = feature_maps(model, images, index)
        return Explanation(method, model.module.layer_names[index], names, chances, explained, maps, None, None)
    name, make = map_maker(model, method, layer)
    with evaluating(model.module):
        maps = to_numpy(make(model.module, x, classes))
    shown = model.module.layer_names[gradcam_layer(model.module, layer)] if name == "gradcam" else None
    checks = _checks(model, images, method, classes, layer, maps) if sanity else (None, None)
    return Explanation(name, shown, names, chances, explained, maps, *checks)


def _checks(model, images, method, classes, layer, maps) -> tuple[RandomisationResult, DeletionResult]:
    chosen = classes.cpu().numpy()  # class indices, kept for the randomised networks
    randomised = randomisation_test(model, images, method, chosen, layer, cascade=False)
    return randomised, deletion_score(model, images, method, chosen, layer, maps=maps)


def _name(model, index: int) -> str:
    names = model.class_names
    return str(names[index]) if names is not None and index < len(names) else str(index)
