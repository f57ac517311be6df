"""Where each network looks on the test images two models disagree on: the convolutional models' Grad-CAM
and every model's gradient saliency (:mod:`cnnlab.explain`), each with its sanity checks (the randomisation
test, the deletion score) and how concentrated its maps are.

Made once in the comparison's analysis, from each model's first-seed network as the analysis loaded it,
on a few images: the first of the test images one model gets right and the other wrong, as the report's
disagreement grids choose them (:func:`disagreements`), so the maps and the grids show the same images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.errors import CnnlabError

if TYPE_CHECKING:
    from cnnlab.api.model import Model
    from cnnlab.data.dataset import Dataset
    from cnnlab.experiment.results import ModelResult
    from cnnlab.explain import Explanation

PER_SIDE = 3          # images of each kind explained: few, since each is explained and checked several times
MAP_METHODS = ("gradcam", "saliency")  # cnnlab.explain's names: Grad-CAM, and the gradient saliency
HALF = 0.5            # the share of a map's mass whose smallest set of pixels measures its concentration
NO_CONVOLUTION = "it has no convolution layer, and Grad-CAM weighs a convolution's feature maps"


@dataclass
class Disagreements:
    """The test images on which the first seeds of two models disagree about being right (indices)."""

    first: str
    second: str
    second_wrong: np.ndarray    # the second model wrong and the first right
    first_wrong: np.ndarray     # the first model wrong and the second right

    def shown(self, per_side: int = PER_SIDE) -> tuple[np.ndarray, list[str]]:
        """``(indices, the spec that gets each right)``: the first ``per_side`` of each kind."""
        index = np.concatenate([self.second_wrong[:per_side], self.first_wrong[:per_side]]).astype(np.int64)
        right = [self.first] * min(per_side, len(self.second_wrong)) + \
                [self.second] * min(per_side, len(self.first_wrong))
        return index, right


def disagreements(first: ModelResult, second: ModelResult, truth: np.ndarray) -> Disagreements | None:
    """Where ``first``'s and ``second``'s first seeds disagree about being right; None without predictions."""
    a, b = first.first.predictions, second.first.predictions
    if a is None or b is None:
        return None
    truth = np.asarray(truth)
    return Disagreements(first.spec, second.spec, np.flatnonzero((b != truth) & (a == truth)),
                         np.flatnonzero((a != truth) & (b == truth)))


@dataclass
class MapReading:
    """One model's maps of one method on the shown images, with cnnlab.explain's sanity checks."""

    spec: str
    seed: int
    explanation: Explanation    # maps (N, H, W) in [0, 1], predictions, randomisation test and deletion score
    half_mass: float | None     # mean over the images of the smallest share of pixels holding half a map's mass

    @property
    def method(self) -> str:
        return self.explanation.method

    def to_dict(self) -> dict:
        """The JSON record: the numbers, not the maps."""
        found = self.explanation
        return {"spec": self.spec, "seed": self.seed, "method": found.method, "layer": found.layer,
                "predicted": found.predicted, "half_mass": self.half_mass,
                "randomisation": None if found.randomisation is None else found.randomisation.to_dict(),
                "deletion": None if found.deletion is None else found.deletion.to_dict()}


@dataclass
class Explanations:
    """The report's maps: the images shown, and each model's maps of each method that applies to it."""

    images: np.ndarray                  # indices into the test part, in the order shown
    right: list[str]                    # the spec that gets each image right (the other gets it wrong)
    readings: list[MapReading]          # each model's Grad-CAM (convolutional models), then its saliency
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (spec, method, why it is not shown)
    reason: str | None = None           # why nothing is shown (then no images)

    def to_dict(self) -> dict:
        """What comparison.json holds: the images' indices, the numbers of each map, what was skipped and why."""
        return {"images": self.images.tolist(), "right": self.right,
                "readings": [reading.to_dict() for reading in self.readings],
                "skipped": [list(item) for item in self.skipped], "reason": self.reason}


def explain_disagreements(models: list[ModelResult], networks: dict[str, Model], data: Dataset) -> Explanations:
    """The maps of the first two models' first-seed ``networks`` (by spec) on the images they disagree on."""
    found = disagreements(models[0], models[1], data.y_test) if len(models) >= 2 else None
    if found is None:
        return Explanations(np.zeros(0, np.int64), [], [], reason="the test predictions of two models are needed")
    index, right = found.shown()
    if not len(index):
        return Explanations(index, right, [], reason="no test image is right for one model and wrong for the other")
    result = Explanations(index, right, [])
    for method in MAP_METHODS:  # the Grad-CAMs first, then the saliency maps side by side
        for model in models[:2]:
            _explain(result, model, networks[model.spec], method, data.x_test[index])
    return result


def _explain(result: Explanations, model: ModelResult, network: Model, method: str, images: np.ndarray) -> None:
    """One model's maps of ``method``, checked, added to ``result``; or why they do not apply, to its skipped."""
    from cnnlab.explain import explain_images

    if method == "gradcam" and model.first.deep is not None and model.first.deep.filters is None:
        result.skipped.append((model.spec, method, NO_CONVOLUTION))
        return
    try:
        explained = explain_images(network, images, method)
    except CnnlabError as exc:  # Grad-CAM of a network without a convolution: the reason, in cnnlab.explain's words
        result.skipped.append((model.spec, method, str(exc)))
        return
    if explained.maps.ndim != 3:
        result.skipped.append((model.spec, method, "the network takes flat vectors: its maps have no picture"))
        return
    result.readings.append(MapReading(model.spec, model.first.seed, explained, half_mass(explained.maps)))


def half_mass(maps: np.ndarray, share: float = HALF) -> float | None:
    """The mean over maps ``(N, ...)`` of the smallest share of a map's pixels that holds ``share`` of its mass:
    about ``share`` for a map spread evenly, small for one that picks out a few pixels; maps that are zero
    everywhere are left out (None when all are)."""
    flat = np.sort(np.asarray(maps, dtype=np.float64).reshape(len(maps), -1), axis=1)[:, ::-1]
    totals = flat.sum(axis=1)
    shares = [(np.searchsorted(np.cumsum(row), share * total) + 1) / row.size
              for row, total in zip(flat, totals) if total > 0]
    return float(np.mean(shares)) if shares else None
