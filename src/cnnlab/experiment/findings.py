"""What a comparison concludes from its measurements: whether a difference beats the seed-to-seed
noise, results by class over every seed, whether a run learned anything at all, and what its first
layer's filters look like in numbers.

The statistics are computed here, with the experiment; the console table
(:mod:`cnnlab.presenters.comparison`) and the report (:mod:`cnnlab.report`) only show them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.experiment.results import ClassBreakdown, Contrast, FilterReading, RunHealth, Stat

if TYPE_CHECKING:
    from cnnlab.experiment.results import Comparison, ModelResult, RunOutcome

CHANCE_ERRORS = 3       # an accuracy within this many standard errors of guessing is at chance level
ONE_CLASS_SHARE = 0.9   # a run giving one class to this share of the test images "predicts one class"
ONE_SIGN_SHARE = 0.8    # a kernel whose summed weights are this share of its summed magnitudes is one-signed


def contrast(first: ModelResult, second: ModelResult) -> Contrast:
    """``second``'s mean test accuracy minus ``first``'s, with Welch's 95% interval and p-value over seeds."""
    from scipy.stats import t

    values_a, values_b = np.asarray(first.test_accuracy.values), np.asarray(second.test_accuracy.values)
    diff = float(values_b.mean() - values_a.mean())
    seeds = (len(values_a), len(values_b))
    if min(seeds) < 2:
        return Contrast(first.spec, second.spec, diff, seeds, None, None)
    var_a, var_b = values_a.var(ddof=1) / seeds[0], values_b.var(ddof=1) / seeds[1]
    if var_a + var_b == 0:  # every seed scored the same on both sides: no spread to test against
        return Contrast(first.spec, second.spec, diff, seeds, (diff, diff), 0.0 if diff else 1.0)
    # Welch-Satterthwaite degrees of freedom, as ttest_ind(equal_var=False) uses them
    dof = (var_a + var_b) ** 2 / (var_a**2 / (seeds[0] - 1) + var_b**2 / (seeds[1] - 1))
    half = float(t.ppf(0.975, dof) * np.sqrt(var_a + var_b))
    # Welch's two-sided p, as ttest_ind(equal_var=False) gives it, without its warning when one side is constant
    p_value = float(2 * t.sf(abs(diff) / np.sqrt(var_a + var_b), dof))
    return Contrast(first.spec, second.spec, diff, seeds, (diff - half, diff + half), p_value)


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


@dataclass
class Findings:
    """What the report concludes, worked out once: each contrast, each model's classes, each run's health."""

    contrasts: list[Contrast]                       # every model against the first
    breakdowns: dict[str, ClassBreakdown | None]    # by spec
    troubled: list[RunHealth]                       # runs at chance level or answering one class

    @classmethod
    def of(cls, comparison: Comparison) -> Findings:
        """The findings of ``comparison`` on its test part."""
        data, models = comparison.data, comparison.models
        healths = [run_health(model.spec, run, data.y_test, data.class_names) for model in models
                   for run in model.runs]
        return cls([contrast(models[0], model) for model in models[1:]],
                   {model.spec: class_breakdown(model, data.y_test, data.class_names) for model in models},
                   [health for health in healths if troubled(health, data.y_test, data.class_names)])

    def at_chance(self, spec: str) -> bool:
        """Whether any seed of ``spec`` is at chance level."""
        return any(health.at_chance for health in self.troubled if health.spec == spec)
