"""Where a trained network looks, and whether the picture can be trusted (``cnnlab.explain``).

Numpy in and out, batched, on the model's own device; ``model`` is a :class:`cnnlab.Model`, a run folder or a
``.cnnlab`` file. Maps are ``(N, H, W)`` in [0, 1], at the images' size.

>>> import cnnlab
>>> from cnnlab import explain
>>> model = cnnlab.load_model("runs/cnn-digits")                # doctest: +SKIP
>>> heat = explain.grad_cam(model, x_test[:8])                   # doctest: +SKIP
>>> explain.randomisation_test(model, x_test[:8]).verdict        # doctest: +SKIP
'the map changes when the weights are randomised: Spearman 0.12 (...)'
>>> explain.overlay(x_test[:8], heat)                            # doctest: +SKIP

See docs/explain.md for what each method shows and how to read the sanity checks.
"""

from __future__ import annotations

from cnnlab.explain.explanation import EXPLAIN_METHODS, Explanation, explain_images
from cnnlab.explain.features import feature_maps, filters
from cnnlab.explain.figures import feature_grid, overlay
from cnnlab.explain.gradcam import grad_cam
from cnnlab.explain.methods import MAP_METHODS
from cnnlab.explain.saliency import SALIENCY_METHODS, saliency
from cnnlab.explain.sanity import (
    DeletionResult,
    RandomisationResult,
    RandomisationStep,
    deletion_score,
    randomisation_test,
)

__all__ = ["DeletionResult", "EXPLAIN_METHODS", "Explanation", "MAP_METHODS", "RandomisationResult",
           "RandomisationStep", "SALIENCY_METHODS",
           "deletion_score", "explain_images", "feature_grid", "feature_maps", "filters", "grad_cam", "overlay",
           "randomisation_test", "saliency"]
