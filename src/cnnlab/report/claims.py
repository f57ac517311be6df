"""The report's two claims for convolutions, tested on the trained models over every seed and stated
in numbers: robustness to small shifts, and small local filters in the first layer. Each says its
spread over the seeds, and "not shown" when the difference is inside it. A claim that does not apply
(images too small to shift, a model at chance level, no convolution) is skipped, saying why.

The statistics come computed (:mod:`cnnlab.experiment.findings`): this module only says them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnlab.experiment.findings import RANDOM_LIMIT
from cnnlab.experiment.results import Stat
from cnnlab.report import figures
from cnnlab.report.answer import seeds_each
from cnnlab.report.document import Document, p_text, percent, percent_stat, points, seeds_text

if TYPE_CHECKING:
    from cnnlab.experiment.claim_results import FilterClaim, ShiftClaim, ShiftLoss
    from cnnlab.experiment.findings import Findings
    from cnnlab.experiment.results import Comparison, ModelResult

NOT_SHOWN = "**not shown**"
# The end of claim 1's verdict sentence, by what the test found (findings.VERDICTS)
SHIFT_VERDICTS = {
    "same": "about the same: the claim is " + NOT_SHOWN + " here.",
    "same, measured": ("about the same ({gap} points of the margin apart; 95% CI {low} to {high}, {seeds}, Welch "
                       "{p}): the claim is " + NOT_SHOWN + " here."),
    "unmeasured": ("the convolutional network loses {less_more} on these runs, but with one seed per model the "
                   "seed-to-seed spread is not measured: " + NOT_SHOWN + " (run with `--seeds 3` or more to "
                   "measure it)."),
    "noise": ("the convolutional network loses {gap} points of its margin {less_more} (95% CI {low} to {high}, "
              "{seeds}, Welch {p}), a difference inside the seed-to-seed spread: " + NOT_SHOWN + " here."),
    "shown": ("the convolutional network loses {gap} points of its margin less (95% CI {low} to {high}, "
              "{seeds}, Welch {p}), beyond the seed-to-seed spread: **the claim is shown here**."),
    "contradicted": ("the convolutional network loses {gap} points of its margin more (95% CI {low} to {high}, "
                     "{seeds}, Welch {p}), beyond the seed-to-seed spread: **the claim does not hold here**."),
}


def convolutions(document: Document, comparison: Comparison, findings: Findings) -> None:
    """Both claims, each with its numbers over the seeds in words, its figure, or the reason it is skipped."""
    document.heading("Why convolutions", "convolutions")
    document.prose("**Claim 1: a convolutional network is less thrown by small shifts of the image.**")
    _shift_claim(document, comparison, findings.shifts)
    document.prose("**Claim 2: its first layer learns small local filters (edges, blobs of brightness or "
                   "colour), each applied across the whole image.**")
    _filter_claim(document, comparison, findings)


def _shift_claim(document: Document, comparison: Comparison, found: ShiftClaim | None) -> None:
    side = min(comparison.data.image_shape[:2])
    if found is None:
        document.prose("Skipped: the images are {side} pixels wide, so even a 1-pixel shift is more than an "
                       "eighth of the image; that changes the picture rather than moving it.", side=side)
        return
    for spec, why in found.left_out.items():
        document.prose("{spec}: not measured." if why == "not measured" else
                       "{spec} is left out: it is at chance level, so it has no accuracy to lose.", spec=spec)
    if len(found.losses) < 2:
        document.prose("Skipped: fewer than two models to compare.")
        return
    largest = found.largest
    share = f"1/{side // largest}" if largest and side % largest == 0 else percent(largest / side)
    document.prose("Test images moved right or down by up to {largest}, {share} of the {side}-pixel side (the "
                   "border filled with black; {count} test images, both directions averaged; always answering "
                   "the commonest class would score {guessing}):", largest=_pixels(largest), side=side,
                   share=share, count=f"{found.images:,}", guessing=percent(found.guessing))
    for loss in found.losses:
        _shift_line(document, loss, largest)
    _shift_verdict(document, found)
    labels = [(f"{loss.spec} ({_seeds(loss.seeds)})", loss.curve) for loss in found.losses]
    document.figures(document.picture(figures.shift_robustness(labels), "shift-robustness",
                                      "Line plot of test accuracy against the shift in pixels for every model",
                                      "Test accuracy against the shift, one line per model"
                                      + (", the mean of its seeds." if len(found.losses[0].seeds) > 1 else ".")))


def _shift_line(document: Document, loss: ShiftLoss, largest: int) -> None:
    several = loss.drop.std is not None
    steps = ", ".join(f"{percent(loss.curve[s])} at {_pixels(s)}" for s in sorted(loss.curve) if s)
    drop = points(loss.drop.mean) if not several else f"{points(loss.drop.mean)} ± {points(loss.drop.std)}"
    document.prose("{spec} ({seeds}): {start} unshifted, {steps}. At {largest} it loses {drop} points, {share} of "
                   "its margin over guessing" + (" (mean ± sd over the seeds)." if several else "."),
                   spec=loss.spec, seeds=_seeds(loss.seeds) + (", mean" if several else ""),
                   start=percent(loss.curve[0]), steps=steps, drop=drop, largest=_pixels(largest),
                   share=percent_stat(loss.lost))


def _shift_verdict(document: Document, found: ShiftClaim) -> None:
    """Whether the convolutional models lose a smaller share of their margin over guessing than the others,
    beyond the seed-to-seed spread."""
    if found.contrast is None:
        least = min(found.losses, key=lambda loss: loss.lost.mean).spec
        document.prose("The least thrown is {least}; every model here is {kind}, so this does not test the "
                       "claim.", least=least,
                       kind="convolutional" if found.losses[0].convolutional else "without convolutions")
        return
    contrast = found.contrast
    conv = [loss for loss in found.losses if loss.convolutional]
    other = [loss for loss in found.losses if not loss.convolutional]
    values = {"conv": contrast.first, "other": contrast.second, "largest": _pixels(found.largest),
              "conv_share": percent_stat(_pooled(conv)), "other_share": percent_stat(_pooled(other)),
              "lose": "lose on average" if len(conv) > 1 else "loses", "gap": points(abs(contrast.difference)),
              "less_more": "less" if contrast.difference > 0 else "more"}
    key = found.verdict
    if contrast.interval is not None:
        key += ", measured" if key == "same" else ""
        values.update(low=points(contrast.interval[0]), high=points(contrast.interval[1]),
                      p=p_text(contrast.p_value), seeds=seeds_each(contrast.seeds))
    document.prose("Of the margin over guessing, {conv} (convolutional) {lose} {conv_share} at {largest} and "
                   "{other} {other_share}: " + SHIFT_VERDICTS[key], **values)


def _pooled(losses: list[ShiftLoss]) -> Stat:
    return Stat.of([value for loss in losses for value in loss.lost.values])


def _pixels(count: int) -> str:
    return f"{count} pixel{'s' if count != 1 else ''}"


def _seeds(seeds: list[int]) -> str:
    return seeds_text(seeds)


def _filter_claim(document: Document, comparison: Comparison, findings: Findings) -> None:
    shown = 0
    for model in comparison.models:
        found = findings.filters.get(model.spec)
        if found is not None:
            shown += _filters(document, model, found)
        elif any(run.deep is not None for run in model.runs):
            document.prose("{spec} has no convolutional layer, so it has no filters to show.", spec=model.spec)
        else:
            document.prose("{spec}: not measured.", spec=model.spec)
    if not shown:
        document.prose("Skipped: no model here has convolutional filters to read.")


def _filters(document: Document, model: ModelResult, found: FilterClaim) -> int:
    """The reading of one model's filters over its seeds and the first seed's picture; 0 when they have
    nothing to read (1x1)."""
    reading, run = found.readings[0], next(run for run in model.runs if run.seed == found.seeds[0])
    values = {"spec": model.spec, "seeds": _seeds(found.seeds), "count": reading.count,
              "size": "x".join(map(str, reading.size)),
              "channels": f"{reading.channels} channel{'s' if reading.channels > 1 else ''}",
              "epochs": f"{len(run.history)} epoch{'s' if len(run.history) != 1 else ''}"}
    document.prose("{spec} ({seeds}) has {count} first-layer filters of {size} pixels over {channels}.", **values)
    if found.verdict == "no extent":
        document.prose("1x1 filters have no extent to hold a pattern: nothing to read.")
        return 0
    document.prose(_reading(found), **values, **_numbers(found))
    document.figures(document.picture(
        figures.filters(model.spec, run.deep.filters), f"filters-{model.spec}",
        f"The first convolutional layer's filters of {model.spec}, drawn as small images",
        "The filters of {spec} (seed {seed}), each scaled to its own range: dark is its most negative "
        "weight, light its most positive.", spec=model.spec, seed=run.seed))
    return 1


def _numbers(found: FilterClaim) -> dict:
    """The reading's numbers over the seeds: one seed's value, or mean ± sd (and the 95% interval)."""
    readings = found.readings
    spread = readings[0].random_spread
    r = _signed(found.neighbour.mean)
    if found.interval is not None:
        r += (f" ± {found.neighbour.std:.2f} over the seeds, 95% CI {_signed(found.interval[0])} to "
              f"{_signed(found.interval[1])}")
    signs = sorted({reading.one_sign for reading in readings})
    colours = [reading.channel_correlation for reading in readings if reading.channel_correlation is not None]
    colour = "" if not colours else _signed(sum(colours) / len(colours)) + (
        f" ± {Stat.of(colours).std:.2f} over the seeds" if len(colours) > 1 else "")
    return {"r": r, "spread": f"{spread:.2f}", "limit": f"{RANDOM_LIMIT * spread:.2f}",
            "one_sign": str(signs[0]) if len(signs) == 1 else f"{signs[0]} to {signs[-1]} (by seed)",
            "colour": colour}


def _signed(value: float) -> str:
    return f"{value:.2f}".replace("-", "−")


def _reading(found: FilterClaim) -> str:
    """The words for what the numbers show, as a template over :func:`_numbers` and the model's values."""
    if found.verdict == "random":
        return ("Neighbouring weights within a filter are about as unrelated as random weights' (correlation "
                "{r}; random weights give 0 ± {spread}): after {epochs} these filters hold no clear "
                "edges or blobs yet, so they do not illustrate the claim: " + NOT_SHOWN + ".")
    if found.verdict == "noise":
        return ("Neighbouring weights within a filter agree on average (correlation {r}), but the interval over "
                "the seeds reaches down to what random weights give (0 ± {spread}; below {limit} is within "
                f"{RANDOM_LIMIT} spreads of it): the seeds differ too much to tell smooth patterns from noise: "
                + NOT_SHOWN + ".")
    text = ("Neighbouring weights within a filter agree (correlation {r}, where random weights give 0 ± "
            "{spread}): " + ("the filters of every seed hold smooth patterns rather than noise, beyond the "
                             "seed-to-seed spread: **the claim is shown here**." if found.interval is not None
                             else "the filters hold smooth patterns rather than noise (one seed: how much this "
                             "varies from seed to seed is not measured).")
            + " {one_sign} of the {count} have weights almost all of one sign (they respond to a blob of "
            "brightness); the others mix positive and negative weights, as edge detectors do.")
    colours = [reading.channel_correlation for reading in found.readings if reading.channel_correlation is not None]
    if not colours:
        return text
    if sum(colours) / len(colours) > 0.5:
        return text + (" A position's weights agree across the colour channels (correlation {colour}): most "
                       "filters respond to brightness more than to colour.")
    return text + (" A position's weights differ across the colour channels (correlation {colour}): many "
                   "filters respond to colour.")
