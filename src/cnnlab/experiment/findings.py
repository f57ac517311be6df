"""What a comparison concludes from its measurements: whether a difference beats the seed-to-seed
noise, results by class over every seed, whether a run learned anything at all, what its first
layer's filters look like in numbers, and the claims for convolutions judged over every seed.

The statistics are computed here, with the experiment; the console table
(:mod:`cnnlab.presenters.comparison`) and the report (:mod:`cnnlab.report`) only show them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.experiment.analysis import SHIFT_FRACTION, SHIFT_SAMPLE
from cnnlab.experiment.claim_results import FilterClaim, ShiftClaim, ShiftLoss
from cnnlab.experiment.results import ClassBreakdown, Contrast, FilterReading, RunHealth, Stat

if TYPE_CHECKING:
    from cnnlab.experiment.results import Comparison, ModelResult, RunOutcome

CHANCE_ERRORS = 3       # an accuracy within this many standard errors of guessing is at chance level
ONE_CLASS_SHARE = 0.9   # a run giving one class to this share of the test images "predicts one class"
ONE_SIGN_SHARE = 0.8    # a kernel whose summed weights are this share of its summed magnitudes is one-signed
SAME_SHARE = 0.05       # shares of the margin over guessing lost that are this close are "about the same"
SIGNIFICANCE = 0.05     # a difference whose Welch p is below this beats the seed-to-seed noise (as the headline's)
RANDOM_LIMIT = 3        # filters whose neighbour correlation is within this many spreads of 0 look random
# What a claim's test found: shown; contradicted (the opposite beats the noise); the same (too close to matter);
# noise (inside the seed-to-seed spread); unmeasured (one seed: the spread is not known); untested (nothing
# to compare it with); random (filters like random weights'); no extent (1x1 filters hold no pattern)
VERDICTS = ("shown", "contradicted", "same", "noise", "unmeasured", "untested", "random", "no extent")


def contrast(first: ModelResult, second: ModelResult) -> Contrast:
    """``second``'s mean test accuracy minus ``first``'s, with Welch's 95% interval and p-value over seeds."""
    return welch(first.spec, first.test_accuracy.values, second.spec, second.test_accuracy.values)


def welch(first: str, values_a, second: str, values_b) -> Contrast:
    """The mean of ``values_b`` minus that of ``values_a`` (one value per seed), with Welch's 95% interval
    and two-sided p-value; both None when a side has a single value (its spread is not measured)."""
    from scipy.stats import t

    values_a, values_b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    diff = float(values_b.mean() - values_a.mean())
    seeds = (len(values_a), len(values_b))
    if min(seeds) < 2:
        return Contrast(first, second, diff, seeds, None, None)
    var_a, var_b = values_a.var(ddof=1) / seeds[0], values_b.var(ddof=1) / seeds[1]
    if var_a + var_b == 0:  # every seed scored the same on both sides: no spread to test against
        return Contrast(first, second, diff, seeds, (diff, diff), 0.0 if diff else 1.0)
    # Welch-Satterthwaite degrees of freedom, as ttest_ind(equal_var=False) uses them
    dof = (var_a + var_b) ** 2 / (var_a**2 / (seeds[0] - 1) + var_b**2 / (seeds[1] - 1))
    half = float(t.ppf(0.975, dof) * np.sqrt(var_a + var_b))
    # Welch's two-sided p, as ttest_ind(equal_var=False) gives it, without its warning when one side is constant
    p_value = float(2 * t.sf(abs(diff) / np.sqrt(var_a + var_b), dof))
    return Contrast(first, second, diff, seeds, (diff - half, diff + half), p_value)


def confusion(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs, rows the true class."""
    pairs = np.asarray(labels, dtype=np.int64) * classes + np.asarray(predictions, dtype=np.int64)
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def class_breakdown(model: ModelResult, labels: np.ndarray, class_names: list[str]) -> ClassBreakdown | None:
    """Confusion summed over every seed whose predictions are known, per-class accuracy over them.

    A result without per-seed predictions (an older record) falls back to the first seed's
    deep analysis; None when neither is there.
    """
    runs = [run for run in model.runs if run.predictions is not None]
    if runs:
        matrices = [confusion(labels, run.predictions, len(class_names)) for run in runs]
        seeds = [run.seed for run in runs]
    elif model.deep is not None:
        matrices, seeds = [np.asarray(model.deep.confusion_matrix)], [model.first.seed]
    else:
        return None
    per_class = {}
    for index, name in enumerate(class_names):
        totals = [matrix[index].sum() for matrix in matrices]
        per_class[name] = (Stat.of([m[index, index] / t for m, t in zip(matrices, totals)])
                           if all(totals) else None)
    return ClassBreakdown(seeds, np.sum(matrices, axis=0), per_class)


def run_health(spec: str, run: RunOutcome, labels: np.ndarray, class_names: list[str]) -> RunHealth:
    """Whether ``run`` beats always answering the most common test class, and its most predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    count = max(len(labels), 1)
    guessing = float(np.bincount(labels, minlength=len(class_names)).max() / count)
    margin = CHANCE_ERRORS * np.sqrt(guessing * (1 - guessing) / count)
    dominant, share = None, 0.0
    if run.predictions is not None and len(run.predictions):
        counts = np.bincount(run.predictions, minlength=len(class_names))
        dominant, share = class_names[int(counts.argmax())], float(counts.max() / len(run.predictions))
    return RunHealth(spec, run.seed, run.test_accuracy, guessing, run.test_accuracy <= guessing + margin,
                     dominant, share)


def troubled(health: RunHealth, labels: np.ndarray, class_names: list[str]) -> bool:
    """At chance level, or giving one class to most images when that class is not most of the test part."""
    if health.at_chance:
        return True
    if health.dominant_class is None or health.dominant_share < ONE_CLASS_SHARE:
        return False
    truth = float(np.mean(np.asarray(labels) == class_names.index(health.dominant_class)))
    return truth < ONE_CLASS_SHARE


def read_filters(kernels: np.ndarray) -> FilterReading:
    """The correlation of neighbouring weights (random weights give about 0), one-signed kernels, colour."""
    kernels = np.asarray(kernels, dtype=np.float64)
    count, height, width, channels = kernels.shape
    pairs = []
    if width > 1:
        pairs.append((kernels[:, :, :-1, :], kernels[:, :, 1:, :]))
    if height > 1:
        pairs.append((kernels[:, :-1, :, :], kernels[:, 1:, :, :]))
    neighbour = spread = None
    if pairs:
        left = np.concatenate([a.ravel() for a, _ in pairs])
        right = np.concatenate([b.ravel() for _, b in pairs])
        neighbour = _cosine(left, right)
        spread = float(1 / np.sqrt(len(left)))  # of the correlation of independent zero-mean weights
    flat = kernels.reshape(count, -1)
    one_sign = int(np.sum(np.abs(flat.sum(1)) >= ONE_SIGN_SHARE * np.abs(flat).sum(1).clip(1e-12)))
    colour = None
    if channels > 1:
        # every pair of channels at one position: does a filter see brightness (all alike) or colour?
        firsts = [kernels[..., i].ravel() for i in range(channels) for _ in range(i + 1, channels)]
        seconds = [kernels[..., j].ravel() for i in range(channels) for j in range(i + 1, channels)]
        colour = _cosine(np.concatenate(firsts), np.concatenate(seconds))
    return FilterReading(count, (height, width), channels, neighbour, spread, one_sign, colour)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The correlation of two sets of weights about zero (their initial mean), not about their own means."""
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / scale) if scale else 0.0


def shift_claim(comparison: Comparison, at_chance) -> ShiftClaim | None:
    """Claim 1 over every seed of every model with shift results (``at_chance(spec)``: left out);
    None when the images are too small to shift (under :data:`SHIFT_FRACTION` pixels)."""
    if min(comparison.data.image_shape[:2]) < SHIFT_FRACTION:
        return None
    labels = np.asarray(comparison.data.y_test[:SHIFT_SAMPLE], dtype=np.int64)
    guessing = float(np.bincount(labels).max() / len(labels)) if len(labels) else 0.0
    usable, left_out = [], {}
    for model in comparison.models:
        runs = [run for run in model.runs if run.deep is not None and len(run.deep.shift_accuracy) > 1]
        if not runs:
            left_out[model.spec] = "not measured"
        elif at_chance(model.spec):
            left_out[model.spec] = "at chance"
        else:
            usable.append((model.spec, runs))
    common = set.intersection(*(set(run.deep.shift_accuracy) for _, runs in usable for run in runs)) if usable else {0}
    largest = max(common)
    losses = [shift_loss(spec, runs, guessing, largest) for spec, runs in usable]
    convolutional = [loss for loss in losses if loss.convolutional]
    others = [loss for loss in losses if not loss.convolutional]
    if not convolutional or not others:
        return ShiftClaim(largest, guessing, len(labels), losses, left_out, None, "untested")
    # the others' share minus the convolutional models' (positive: these lose less); each side's seeds pooled
    found = welch(_names(convolutional), [v for loss in convolutional for v in loss.lost.values],
                  _names(others), [v for loss in others for v in loss.lost.values])
    return ShiftClaim(largest, guessing, len(labels), losses, left_out, found, verdict(found))


def shift_loss(spec: str, runs: list[RunOutcome], guessing: float, largest: int) -> ShiftLoss:
    """One model's mean accuracy per shift over ``runs``, and per seed what it loses at ``largest`` pixels."""
    curves = [run.deep.shift_accuracy for run in runs]
    shifts = sorted(set.intersection(*(set(curve) for curve in curves)))
    # what a model loses is judged against what it has above guessing: a weak model has less to lose
    drops = [curve[0] - curve[largest] for curve in curves]
    lost = [drop / max(curve[0] - guessing, 1e-9) for drop, curve in zip(drops, curves)]
    return ShiftLoss(spec, [run.seed for run in runs], runs[0].deep.filters is not None,
                     {s: float(np.mean([curve[s] for curve in curves])) for s in shifts}, Stat.of(drops), Stat.of(lost))


def verdict(found: Contrast) -> str:
    """What a contrast in favour of a claim (positive: for it) shows: see :data:`VERDICTS`."""
    if abs(found.difference) < SAME_SHARE:
        return "same"
    if found.p_value is None:
        return "unmeasured"
    if found.p_value >= SIGNIFICANCE:
        return "noise"
    return "shown" if found.difference > 0 else "contradicted"


def filter_claim(model: ModelResult) -> FilterClaim | None:
    """Claim 2 for ``model`` over every seed whose first-layer filters are known; None without any."""
    from scipy.stats import t

    runs = [run for run in model.runs if run.deep is not None and run.deep.filters is not None]
    if not runs:
        return None
    readings = [read_filters(run.deep.filters) for run in runs]
    seeds = [run.seed for run in runs]
    if readings[0].neighbour_correlation is None:
        return FilterClaim(model.spec, seeds, readings, None, None, "no extent")
    neighbour = Stat.of([reading.neighbour_correlation for reading in readings])
    limit = RANDOM_LIMIT * readings[0].random_spread
    if neighbour.std is None:
        return FilterClaim(model.spec, seeds, readings, neighbour, None,
                           "shown" if neighbour.mean > limit else "random")
    half = float(t.ppf(0.975, len(runs) - 1) * neighbour.std / np.sqrt(len(runs)))
    interval = (neighbour.mean - half, neighbour.mean + half)
    found = "random" if neighbour.mean <= limit else "shown" if interval[0] > limit else "noise"
    return FilterClaim(model.spec, seeds, readings, neighbour, interval, found)


def _names(losses: list[ShiftLoss]) -> str:
    specs = sorted(loss.spec for loss in losses)
    return specs[0] if len(specs) == 1 else f"{', '.join(specs[:-1])} and {specs[-1]}"


@dataclass
class Findings:
    """What the report concludes, worked out once: each contrast, each model's classes, each run's health."""

    contrasts: list[Contrast]                       # every model against the first
    breakdowns: dict[str, ClassBreakdown | None]    # by spec
    troubled: list[RunHealth]                       # runs at chance level or answering one class
    shifts: ShiftClaim | None = None                # claim 1; None when the images are too small to shift
    filters: dict[str, FilterClaim | None] = field(default_factory=dict)  # claim 2, by spec

    @classmethod
    def of(cls, comparison: Comparison) -> Findings:
        """The findings of ``comparison`` on its test part."""
        data, models = comparison.data, comparison.models
        healths = [run_health(model.spec, run, data.y_test, data.class_names) for model in models
                   for run in model.runs]
        found = cls([contrast(models[0], model) for model in models[1:]],
                    {model.spec: class_breakdown(model, data.y_test, data.class_names) for model in models},
                    [health for health in healths if troubled(health, data.y_test, data.class_names)])
        found.shifts = shift_claim(comparison, found.at_chance)
        found.filters = {model.spec: filter_claim(model) for model in models}
        return found

    def at_chance(self, spec: str) -> bool:
        """Whether any seed of ``spec`` is at chance level."""
        return any(health.at_chance for health in self.troubled if health.spec == spec)
