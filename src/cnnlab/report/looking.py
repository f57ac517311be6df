"""The report's section after "Why convolutions": where each network looks on the test images one model
gets right and the other wrong: the convolutional models' Grad-CAM and every model's gradient saliency side
by side, the sanity checks that say whether each map can be read, and how concentrated it is.

The maps and their numbers come computed (:mod:`cnnlab.experiment.explanations`): this module only shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnlab.report import figures
from cnnlab.report.document import Document, percent

if TYPE_CHECKING:
    from cnnlab.experiment.explanations import Explanations, MapReading
    from cnnlab.experiment.results import Comparison

NAMES = {"gradcam": "Grad-CAM", "gradient": "saliency"}  # cnnlab.explain's method names, as the report says them


def where_they_look(document: Document, comparison: Comparison) -> None:
    """The maps side by side with their sanity numbers and a sentence each, or why the section is skipped."""
    document.heading("Where each network looks", "where-they-look")
    found = comparison.explanations
    if found is None:
        document.prose("Not measured: these results hold no maps.")
        return
    if found.reason is not None:
        document.prose("Skipped: {reason}.", reason=found.reason)
        return
    seeds = sorted({reading.seed for reading in found.readings})
    document.prose("The {count} test images below are the first that one model gets right and the other wrong "
                   "(from the grids above; {seeds} of each model). **Grad-CAM** (convolutional networks only) "
                   "shows which parts of the last convolution's feature maps raise the predicted class; "
                   "**saliency** shows how much each pixel moves the predicted class's score (the size of its "
                   "gradient). Each map explains the class its own model answered, and is scaled to its own "
                   "largest value.", count=len(found.images), seeds=_seeds(seeds))
    for spec, method, why in found.skipped:
        document.prose("{spec} has no {name}: {why}.", spec=spec, name=NAMES.get(method, method),
                       why=why.rstrip("."))
    if not found.readings:
        return
    _figure(document, comparison, found)
    _checks(document, found)
    _concentration(document, found)


def _seeds(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))


def _heading(reading: MapReading) -> str:
    return f"{reading.spec} {NAMES.get(reading.method, reading.method)}"


def _figure(document: Document, comparison: Comparison, found: Explanations) -> None:
    data = comparison.data
    truth = [data.class_names[label] for label in data.y_test[found.images]]
    columns = [(_heading(reading).replace(" ", "\n", 1), reading.explanation.maps,
                [said == true for said, true in zip(reading.explanation.predicted, truth)],
                reading.explanation.predicted) for reading in found.readings]
    rows = [f"{true}\n({right} right)" for true, right in zip(truth, found.right)]
    headings = ", ".join(_heading(reading) for reading in found.readings)
    document.figures(document.picture(
        figures.map_grid(data.x_test[found.images], columns, rows), "where-they-look",
        f"Test images with each model's maps drawn over them: {headings}",
        "Each row is a test image, labelled with its class and the model that gets it right; each map is drawn "
        "over the image (red: where the map is high) with the answer its model gave underneath, in red where it is "
        "wrong. Columns: {headings}.", headings=headings))


def _checks(document: Document, found: Explanations) -> None:
    """The sanity numbers as a table, then each map's in words."""
    rows = []
    for reading in found.readings:
        randomised, deleted = reading.explanation.randomisation, reading.explanation.deletion
        rows.append([_heading(reading), "—" if randomised.spearman is None else _number(randomised.spearman),
                     _number(deleted.salient_drop), _number(deleted.random_drop),
                     "—" if reading.half_mass is None else percent(reading.half_mass)])
    deleted = found.readings[0].explanation.deletion
    document.prose("The sanity checks, on these {count} images (Adebayo et al., *Sanity Checks for Saliency "
                   "Maps*, 2018): the rank correlation (Spearman) of each map with the same map once every "
                   "weighted layer is re-initialised (a map that explains what the network learnt changes: "
                   "below {threshold}), and the deletion score: the fall of the predicted class's probability as up to "
                   "{upto} of the pixels are blacked out, the most salient first, against as many random pixels; "
                   "then the share of the pixels holding half of each map's mass.",
                   count=len(found.images), threshold=f"{found.readings[0].explanation.randomisation.threshold:.1f}",
                   upto=f"{deleted.fractions[-1]:.0%}")
    document.table(["map", "randomised: Spearman", "deletion: salient", "deletion: random", "half the mass on"],
                   rows)
    for reading in found.readings:
        document.prose("**{map}**: " + _randomised(reading) + " " + _deleted(reading), **_values(reading))


def _values(reading: MapReading) -> dict:
    randomised, deleted = reading.explanation.randomisation, reading.explanation.deletion
    return {"map": _heading(reading), "spearman": "" if randomised.spearman is None else _number(randomised.spearman),
            "salient": _number(deleted.salient_drop), "random": _number(deleted.random_drop)}


def _number(value: float) -> str:
    """A correlation or a fall of probability to two decimals, a negative one with a minus sign."""
    return f"{value:.2f}".replace("-", "−")


def _randomised(reading: MapReading) -> str:
    depends = reading.explanation.randomisation.depends_on_weights
    if depends is None:
        return "its maps are constant, so the randomisation test has nothing to rank."
    if depends:
        return ("the map changes when the weights are randomised (Spearman {spearman}): it shows what the network "
                "learnt.")
    return ("this map barely depends on the weights (Spearman {spearman} once they are randomised): **do not read "
            "it**.")


def _deleted(reading: MapReading) -> str:
    if reading.explanation.deletion.points_at_evidence:
        return ("Blacking out its most salient pixels first lowers the predicted class's probability by {salient} on "
                "average, against {random} for random pixels: it points at pixels the prediction uses.")
    return ("Blacking out its most salient pixels first lowers the predicted class's probability by {salient} on "
            "average, against {random} for random pixels: it does not single out what the prediction uses.")


def _concentration(document: Document, found: Explanations) -> None:
    """What the maps show: how concentrated each is (no dataset here marks the object's region)."""
    known = [reading for reading in found.readings if reading.half_mass is not None]
    if not known:
        return
    values = {"said": ", ".join(f"{_heading(reading)} {percent(reading.half_mass)}" for reading in known),
              "count": len(found.images)}
    saliency = sorted((reading for reading in known if reading.method == "gradient"), key=lambda r: r.half_mass)
    compared = ""
    if len(saliency) > 1 and saliency[0].half_mass < saliency[-1].half_mass:
        compared = (" On these images {most}'s saliency is the more concentrated: half its mass on {share} of the "
                    "pixels, against {other} for {least}'s.")
        values.update(most=saliency[0].spec, share=percent(saliency[0].half_mass), least=saliency[-1].spec,
                      other=percent(saliency[-1].half_mass))
    document.prose("How concentrated each map is, as the dataset marks no object region to measure against: the "
                   "share of the pixels that holds half of a map's mass (a map spread evenly needs 50%; a smaller "
                   "share singles out fewer pixels): {said}." + compared + " These are {count} images, picked "
                   "because the models disagree on them: they illustrate, they do not test a claim.", **values)
