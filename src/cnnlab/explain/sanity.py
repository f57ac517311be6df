"""The checks that say whether a map can be read (Adebayo et al., *Sanity Checks for Saliency Maps*, 2018;
Petsiuk et al., *RISE*, 2018, for the deletion curve).

* :func:`randomisation_test`: the model-parameter randomisation test. The weighted layers are re-initialised
  one after another from the output down (cascading), as a fresh model's are, and the maps after each step are
  compared with the trained model's by Spearman's rank correlation. A map that explains the network changes;
  one that stays (edges, the image itself) does not depend on what the network learnt.
* :func:`deletion_score`: the explained class's probability (the predicted one by default) as the most salient
  pixels are removed first, against removing random pixels: a map that points at what the prediction uses makes
  it fall faster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from cnnlab.explain.methods import map_maker
from cnnlab.explain.network import (
    ClassIndex,
    LayerRef,
    ModelLike,
    chosen_classes,
    evaluating,
    map_shape,
    network_input,
    predicted,
    real_number,
    resolve_model,
    to_numpy,
    whole_number,
)

THRESHOLD = 0.5  # below it, the randomised network's maps rank the pixels unlike the trained one's
MARGIN = 0.05    # how much more (in probability) salient pixels must take away than random ones


@dataclass(frozen=True)
class RandomisationStep:
    """The maps after re-initialising ``layer`` and every weighted layer above it."""

    layer: str
    spearman: float | None  # mean over the images of the rank correlation with the trained maps; None: constant


@dataclass(frozen=True)
class RandomisationResult:
    """The model-parameter randomisation test of one map method on some images."""

    method: str
    images: int
    steps: list[RandomisationStep]  # the output layer first, down to the first weighted layer (cascade=False: one)
    weighted_layers: int            # how many layers hold weights: all of them are re-initialised by the last step
    threshold: float = THRESHOLD

    @property
    def spearman(self) -> float | None:
        """The rank correlation once every weighted layer is re-initialised (the last step)."""
        return self.steps[-1].spearman if self.steps else None

    @property
    def depends_on_weights(self) -> bool | None:
        """Whether the maps change when the weights are randomised (None where they cannot be ranked)."""
        return None if self.spearman is None else self.spearman < self.threshold

    @property
    def verdict(self) -> str:
        """The result in one sentence."""
        layers = f"after re-initialising all {self.weighted_layers} weighted layers"
        if self.depends_on_weights is None:
            return f"the maps are constant, so their ranks cannot be compared: no verdict ({layers})"
        if self.depends_on_weights:
            return f"the map changes when the weights are randomised: Spearman {self.spearman:.2f} ({layers})"
        return (f"this map barely depends on the weights: do not read it (Spearman {self.spearman:.2f} "
                f"{layers})")

    def to_dict(self) -> dict:
        return {**asdict(self), "spearman": self.spearman, "depends_on_weights": self.depends_on_weights,
                "verdict": self.verdict}


@dataclass(frozen=True)
class DeletionResult:
    """The deletion check of one map method: the explained class's mean probability as pixels are removed."""

    method: str
    images: int
    fractions: list[float]  # the share of pixels removed, 0 first
    salient: list[float]    # the most salient pixels removed first
    random: list[float]     # random pixels removed (the mean over ``repeats`` orders)

    @property
    def salient_drop(self) -> float:
        """The mean fall of the probability from the intact images, over the fractions, salient pixels first."""
        return float(self.salient[0] - np.mean(self.salient[1:]))

    @property
    def random_drop(self) -> float:
        """The same for random pixels."""
        return float(self.random[0] - np.mean(self.random[1:]))

    @property
    def points_at_evidence(self) -> bool:
        """Whether removing the salient pixels lowers the probability more than removing random ones, by more
        than :data:`MARGIN`."""
        return self.salient_drop > self.random_drop + MARGIN

    @property
    def verdict(self) -> str:
        """The result in one sentence."""
        upto = f"up to {self.fractions[-1]:.0%} of the pixels"
        drops = f"{self.salient_drop:.2f} on average ({upto}), against {self.random_drop:.2f} for random pixels"
        if self.points_at_evidence:
            return (f"removing the most salient pixels first lowers the explained class's probability by {drops}: "
                    "the map points at pixels the prediction uses")
        return (f"removing the most salient pixels lowers the explained class's probability by {drops}: "
                "hardly more, so the map does not single out what the prediction uses")

    def to_dict(self) -> dict:
        return {**asdict(self), "salient_drop": self.salient_drop, "random_drop": self.random_drop,
                "points_at_evidence": self.points_at_evidence, "verdict": self.verdict}


def randomisation_test(model: ModelLike, images: np.ndarray, method: str | Callable = "gradcam",
                       class_index: ClassIndex = None, layer: LayerRef = None, *, cascade: bool = True,
                       seed: int = 0, threshold: float = THRESHOLD) -> RandomisationResult:
    """The model-parameter randomisation test of ``method`` on ``images``.

    Args:
        model: a :class:`cnnlab.Model`, a run folder or a ``.cnnlab`` file (never changed: a copy is randomised).
        images: ``(N, H, W, C)``, checked as ``predict`` checks them.
        method: ``"gradcam"``, ``"gradient"``, ``"integrated_gradients"``, ``"smoothgrad"``, or a function
            ``(model, images, class_index) -> maps``.
        class_index: as in :func:`grad_cam`; ``None``: each image's class as the trained model predicts it,
            kept for the randomised networks.
        layer: Grad-CAM's layer (default the last convolution).
        cascade: re-initialise the weighted layers one by one from the output down and report each step;
            ``False``: all of them at once, one step.
        seed: the re-initialised weights' generator (the global generators are never touched).
        threshold: a Spearman correlation below it means the maps depend on the weights.
    """
    model = resolve_model(model)
    threshold = real_number(threshold, "threshold", -1, 1)
    seed = whole_number(seed, "seed", 0, 2**63 - 1)
    name, make = map_maker(model, method, layer)
    x = network_input(model, images)
    module = model.module
    with evaluating(module):
        classes = chosen_classes(class_index, len(x), model)
        classes = predicted(module, x) if classes is None else classes
        trained = to_numpy(make(module, x, classes))
    twin, fresh = copy.deepcopy(module), _fresh_network(module, seed)
    weighted = [i for i in reversed(range(len(module.blocks))) if any(True for _ in module.blocks[i].parameters())]
    steps = []
    for position, index in enumerate(weighted):
        _copy_parameters(fresh.blocks[index], twin.blocks[index])
        if cascade or position == len(weighted) - 1:
            with evaluating(twin):
                maps = to_numpy(make(twin, x, classes))
            steps.append(RandomisationStep(module.layer_names[index], rank_correlation(trained, maps)))
    return RandomisationResult(name, len(x), steps, len(weighted), threshold)


def _fresh_network(module, seed: int):
    """A copy of ``module`` initialised as a fresh model is (torch's defaults, then Keras' glorot kernels and zero
    biases, as ``build_model`` does), from ``seed``."""
    from cnnlab.net.builder import keras_init
    from cnnlab.net.torch_ops import partial_identity_init

    device = next(module.parameters()).device
    fresh = copy.deepcopy(module).to("cpu")  # drawn on the CPU: the same weights on any device
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # the CPU generator is given back as it was
        # The CPU's generator alone (torch.manual_seed would seed CUDA's too), from a seed mixed from ``seed``:
        # Model(seed=s) draws its first weights from torch.manual_seed(s), and these must be others.
        torch.default_generator.manual_seed(int(np.random.SeedSequence([seed, 33]).generate_state(1)[0]))
        for part in fresh.modules():
            if hasattr(part, "reset_parameters"):
                part.reset_parameters()
        keras_init(fresh)
        partial_identity_init(fresh)
    return fresh.to(device)


def _copy_parameters(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """The weights (not the moving statistics) of ``source`` into ``target``."""
    with torch.no_grad():
        for (_, new), (_, old) in zip(source.named_parameters(), target.named_parameters()):
            old.copy_(new)


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float | None:
    """The mean over the images of Spearman's rank correlation of two sets of maps ``(N, ...)``; images whose
    maps are constant (no ranking) are left out; None where every image's are."""
    a = rankdata(first.reshape(len(first), -1), axis=1)
    b = rankdata(second.reshape(len(second), -1), axis=1)
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    norms = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    ranked = norms > 0
    if not ranked.any():
        return None
    return float(np.mean((a * b).sum(axis=1)[ranked] / norms[ranked]))


def deletion_score(model: ModelLike, images: np.ndarray, method: str | Callable = "gradcam",
                   class_index: ClassIndex = None, layer: LayerRef = None, *, maps: np.ndarray | None = None,
                   fractions: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5), repeats: int = 3, baseline: float = 0.0,
                   seed: int = 0) -> DeletionResult:
    """The explained class's probability (the predicted one by default) as the most salient pixels are removed
    (set to ``baseline`` in the network's input, 0: black), against as many random pixels removed.

    Args:
        model: a :class:`cnnlab.Model`, a run folder or a ``.cnnlab`` file.
        images: ``(N, H, W, C)``, checked as ``predict`` checks them.
        method: as in :func:`randomisation_test`; ignored where ``maps`` are given.
        class_index: the class the maps explain, as in :func:`grad_cam`; its probability is followed.
        layer: Grad-CAM's layer, as in :func:`grad_cam`.
        maps: maps ``(N, H, W)`` already computed for these images.
        fractions: the shares of the pixels removed, each from 0 to 1.
        repeats: random orders averaged for the random curve.
        seed: the random orders' generator (the global generators are never touched).
    """
    model = resolve_model(model)
    x = network_input(model, images)
    module = model.module
    fractions = _checked_fractions(fractions)
    repeats, seed = whole_number(repeats, "repeats", 1, 1000), whole_number(seed, "seed", 0, 2**63 - 1)
    baseline = real_number(baseline, "baseline", -1e6, 1e6)
    with evaluating(module):
        chosen = chosen_classes(class_index, len(x), model)
        label = predicted(module, x) if chosen is None else chosen  # the class the maps explain
        name, values = _maps_for(model, x, maps, method, label, layer)
        rng = np.random.default_rng(seed)
        salient = _deletion_curve(module, x, label, _order(values, rng), fractions, baseline)
        shuffled = [_deletion_curve(module, x, label, _order(rng.random(values.shape), rng), fractions, baseline)
                    for _ in range(repeats)]
    return DeletionResult(name, len(x), [0.0, *fractions], salient, list(np.mean(shuffled, axis=0).tolist()))


def _checked_fractions(fractions) -> list[float]:
    from cnnlab.engine.inputs import InputError

    try:
        values = [float(value) for value in fractions]
    except (TypeError, ValueError):
        raise InputError(f"fractions: expected numbers from 0 to 1, got {fractions!r}"[:200]) from None
    if not values or not all(0 < value <= 1 for value in values) or values != sorted(set(values)):
        raise InputError(f"fractions: expected increasing numbers above 0 and at most 1, got {fractions!r}"[:200])
    return values


def _maps_for(model, x: torch.Tensor, maps, method, classes: torch.Tensor, layer) -> tuple[str, np.ndarray]:
    """``(method's name, maps (N, P))``: the ones given, checked, or computed."""
    from cnnlab.engine.inputs import InputError

    expected = (len(x), *map_shape(x))
    if maps is not None:
        values = np.asarray(maps, dtype=np.float32)
        if values.shape != expected or not np.isfinite(values).all():
            raise InputError(f"maps: expected finite maps of shape {expected} (one per image), got {values.shape}")
        return "given maps", values.reshape(len(x), -1)
    name, make = map_maker(model, method, layer)
    return name, to_numpy(make(model.module, x, classes)).reshape(len(x), -1)


def _order(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row's positions ``(N, P)``, the largest value first; ties in a random order."""
    shuffle = np.argsort(rng.random(values.shape), axis=1)
    ranked = np.argsort(-np.take_along_axis(values, shuffle, axis=1), axis=1, kind="stable")
    return np.take_along_axis(shuffle, ranked, axis=1)


def _deletion_curve(module, x: torch.Tensor, label: torch.Tensor, order: np.ndarray, fractions: list[float],
                    baseline: float) -> list[float]:
    """The mean probability of ``label`` on ``x`` intact, then with each fraction of the pixels in ``order``
    removed (every channel of a removed pixel set to ``baseline``)."""
    count, positions = order.shape
    flat = x.reshape(count, -1, positions)  # (N, C, P); flat input is (N, 1, D)
    curve = [_probability(module, x, label)]
    for fraction in fractions:
        mask = np.zeros(order.shape, dtype=bool)
        np.put_along_axis(mask, order[:, :round(fraction * positions)], True, axis=1)
        removed = torch.where(torch.from_numpy(mask).to(x.device)[:, None], baseline, flat)
        curve.append(_probability(module, removed.reshape(x.shape), label))
    return curve


def _probability(module, x: torch.Tensor, label: torch.Tensor, batch_size: int = 256) -> float:
    """The mean softmax probability of each input's ``label``."""
    with torch.no_grad():
        parts = [torch.softmax(module(x[i:i + batch_size]).float(), dim=1) for i in range(0, len(x), batch_size)]
    return float(torch.cat(parts).gather(1, label[:, None]).mean())
