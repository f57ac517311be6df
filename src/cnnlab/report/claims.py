"""The report's two claims for convolutions, tested on the trained models and stated in numbers:
robustness to small shifts, and small local filters in the first layer. A claim that does not
apply (images too small to shift, a model at chance level, no convolution) is skipped, saying why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cnnlab.experiment.analysis import SHIFT_FRACTION, SHIFT_SAMPLE
from cnnlab.experiment.findings import read_filters
from cnnlab.report import figures
from cnnlab.report.document import Document, percent, points, seeds_text

if TYPE_CHECKING:
    from cnnlab.experiment.findings import Findings
    from cnnlab.experiment.results import Comparison, FilterReading, ModelResult, RunOutcome

SAME_SHARE = 0.05  # shares of the margin over guessing lost that are this close are "about the same"


def convolutions(document: Document, comparison: Comparison, findings: Findings) -> None:
    """Both claims, each with its numbers in words, its figure, or the reason it is skipped."""
    document.heading("Why convolutions", "convolutions")
    document.prose("**Claim 1: a convolutional network is less thrown by small shifts of the image.**")
    _shift_claim(document, comparison, findings)
    document.prose("**Claim 2: its first layer learns small local filters (edges, blobs of brightness or "
                   "colour), each applied across the whole image.**")
    _filter_claim(document, comparison)


def _shifted(model: ModelResult) -> list[RunOutcome]:
    return [run for run in model.runs if run.deep is not None and len(run.deep.shift_accuracy) > 1]


def _mean_curve(runs: list[RunOutcome]) -> dict[int, float]:
    shifts = sorted(set.intersection(*(set(run.deep.shift_accuracy) for run in runs)))
    return {s: float(np.mean([run.deep.shift_accuracy[s] for run in runs])) for s in shifts}


def _shift_claim(document: Document, comparison: Comparison, findings: Findings) -> None:
    side = min(comparison.data.image_shape[:2])
    if side < SHIFT_FRACTION:
        document.prose("Skipped: the images are {side} pixels wide, so even a 1-pixel shift is more than an "
                       "eighth of the image; that changes the picture rather than moving it.", side=side)
        return
    usable = _usable(document, comparison, findings)
    if len(usable) < 2:
        document.prose("Skipped: fewer than two models to compare.")
        return
    curves = [(model, runs, _mean_curve(runs)) for model, runs in usable]
    largest = max(curves[0][2])
    labels = comparison.data.y_test[:SHIFT_SAMPLE]
    guessing = float(np.bincount(labels).max() / max(len(labels), 1))  # always answering the commonest class
    share = f"1/{side // largest}" if side % largest == 0 else percent(largest / side)
    document.prose("Test images moved right or down by up to {largest}, {share} of the {side}-pixel side (the "
                   "border filled with black; {count} test images, both directions averaged; always answering "
                   "the commonest class would score {guessing}):", largest=_pixels(largest), side=side,
                   share=share, count=f"{len(labels):,}", guessing=percent(guessing))
    lost = {}
    for model, runs, curve in curves:
        # what a model loses is judged against what it has above guessing: a weak model has less to lose
        lost[model.spec] = (curve[0] - curve[largest]) / max(curve[0] - guessing, 1e-9)
        steps = ", ".join(f"{percent(curve[s])} at {_pixels(s)}" for s in sorted(curve) if s)
        document.prose("{spec} ({seeds}): {start} unshifted, {steps}. At {largest} it loses {drop} points, "
                       "{share} of its margin over guessing.", spec=model.spec, seeds=_seeds(runs),
                       start=percent(curve[0]), steps=steps, drop=points(curve[0] - curve[largest]),
                       largest=_pixels(largest), share=percent(lost[model.spec]))
    _shift_verdict(document, curves, lost, largest)
    labels = [(f"{model.spec} ({_seeds(runs)})", curve) for model, runs, curve in curves]
    document.figures(document.picture(figures.shift_robustness(labels), "shift-robustness",
                                      "Line plot of test accuracy against the shift in pixels for every model",
                                      "Test accuracy against the shift, one line per model."))


def _usable(document: Document, comparison: Comparison, findings: Findings) -> list:
    """``(model, its runs with shift results)`` for each model the claim can be tested on; the others named."""
    usable = []
    for model in comparison.models:
        if not _shifted(model):
            document.prose("{spec}: not measured.", spec=model.spec)
        elif findings.at_chance(model.spec):
            document.prose("{spec} is left out: it is at chance level, so it has no accuracy to lose.",
                           spec=model.spec)
        else:
            usable.append((model, _shifted(model)))
    return usable


def _pixels(count: int) -> str:
    return f"{count} pixel{'s' if count != 1 else ''}"


def _seeds(runs: list[RunOutcome]) -> str:
    return seeds_text([run.seed for run in runs])


def _names(specs) -> str:
    specs = sorted(specs)
    return specs[0] if len(specs) == 1 else f"{', '.join(specs[:-1])} and {specs[-1]}"


def _shift_verdict(document: Document, curves: list, lost: dict[str, float], largest: int) -> None:
    """Whether the convolutional models lose a smaller share of their margin over guessing than the others."""
    convolutional = {model.spec for model, runs, _ in curves if runs[0].deep.filters is not None}
    others = set(lost) - convolutional
    if not convolutional or not others:
        document.prose("The least thrown is {least}; every model here is {kind}, so this does not test the "
                       "claim.", least=min(lost, key=lost.get),
                       kind="convolutional" if convolutional else "without convolutions")
        return
    conv, other = np.mean([lost[s] for s in convolutional]), np.mean([lost[s] for s in others])
    if abs(conv - other) < SAME_SHARE:
        verdict = "about the same, so the claim is not borne out here."
    elif conv < other:
        verdict = "the convolutional network loses less, so the claim holds here."
    else:
        verdict = "the convolutional network loses more, so the claim does not hold here."
    document.prose("Of the margin over guessing, {conv} (convolutional) {lose} {conv_share} at {largest} and "
                   "{other} {other_share}: " + verdict, conv=_names(convolutional), other=_names(others),
                   conv_share=percent(conv), other_share=percent(other), largest=_pixels(largest),
                   lose="lose on average" if len(convolutional) > 1 else "loses")


def _filter_claim(document: Document, comparison: Comparison) -> None:
    shown = 0
    for model in comparison.models:
        run = next((run for run in model.runs if run.deep is not None), None)
        if run is None:
            document.prose("{spec}: not measured.", spec=model.spec)
        elif run.deep.filters is None:
            document.prose("{spec} has no convolutional layer, so it has no filters to show.", spec=model.spec)
        else:
            shown += _filters(document, model, run)
    if not shown:
        document.prose("Skipped: no model here has convolutional filters to read.")


def _filters(document: Document, model: ModelResult, run: RunOutcome) -> int:
    """The reading of one model's filters and their picture; 0 when they have nothing to read (1x1)."""
    reading = read_filters(run.deep.filters)
    values = {"spec": model.spec, "seed": run.seed, "count": reading.count, "size": "x".join(map(str, reading.size)),
              "channels": f"{reading.channels} channel{'s' if reading.channels > 1 else ''}",
              "epochs": f"{len(run.history)} epoch{'s' if len(run.history) != 1 else ''}"}
    document.prose("{spec} (seed {seed}) has {count} first-layer filters of {size} pixels over {channels}.",
                   **values)
    if reading.neighbour_correlation is None:
        document.prose("1x1 filters have no extent to hold a pattern: nothing to read.")
        return 0
    document.prose(_reading(reading), **values, **_numbers(reading))
    document.figures(document.picture(
        figures.filters(model.spec, run.deep.filters), f"filters-{model.spec}",
        f"The first convolutional layer's filters of {model.spec}, drawn as small images",
        "The filters of {spec} (seed {seed}), each scaled to its own range: dark is its most negative "
        "weight, light its most positive.", spec=model.spec, seed=run.seed))
    return 1


def _numbers(reading: FilterReading) -> dict:
    colour = reading.channel_correlation
    return {"r": f"{reading.neighbour_correlation:.2f}".replace("-", "−"), "spread": f"{reading.random_spread:.2f}",
            "one_sign": reading.one_sign, "colour": "" if colour is None else f"{colour:.2f}".replace("-", "−")}


def _reading(reading: FilterReading) -> str:
    """The words for what the numbers show, as a template over :func:`_numbers` and the model's values."""
    if reading.neighbour_correlation <= 3 * reading.random_spread:
        return ("Neighbouring weights within a filter are about as unrelated as random weights' (correlation "
                "{r}; random weights give 0 ± {spread}): after {epochs} these filters hold no clear "
                "edges or blobs yet, so they do not illustrate the claim.")
    text = ("Neighbouring weights within a filter agree (correlation {r}, where random weights give 0 ± "
            "{spread}): the filters hold smooth patterns rather than noise. {one_sign} of the {count} have "
            "weights almost all of one sign (they respond to a blob of brightness); the others mix positive "
            "and negative weights, as edge detectors do.")
    if reading.channel_correlation is None:
        return text
    if reading.channel_correlation > 0.5:
        return text + (" A position's weights agree across the colour channels (correlation {colour}): most "
                       "filters respond to brightness more than to colour.")
    return text + (" A position's weights differ across the colour channels (correlation {colour}): many "
                   "filters respond to colour.")
