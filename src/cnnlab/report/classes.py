"""The report's test results by class: confusion matrices, per-class accuracy, the most confused
classes, and the images one model gets wrong and the other right. Each says which seeds it covers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnlab.experiment.analysis import most_confused
from cnnlab.experiment.explanations import disagreements
from cnnlab.report import figures
from cnnlab.report.document import Document, percent_stat, seeds_text, signed_points

if TYPE_CHECKING:
    from cnnlab.experiment.findings import Findings
    from cnnlab.experiment.results import ClassBreakdown, Comparison, ModelResult


def by_class(document: Document, comparison: Comparison, findings: Findings) -> None:
    """Confusion matrices side by side on one colour scale, per-class accuracy, most confused, disagreements."""
    data = comparison.data
    known = [(model, findings.breakdowns[model.spec]) for model in comparison.models]
    known = [(model, found) for model, found in known if found is not None]
    document.heading("Test results by class", "classes")
    if not known:
        document.prose("Not measured: these results hold no per-class test results.")
        return
    _confusions(document, known, data.class_names)
    _per_class(document, known, data.class_names)
    for model, found in known:
        _most_confused(document, model, found, data.class_names)
    _disagreements(document, comparison)


def _over(found: ClassBreakdown, images: int) -> str:
    if len(found.seeds) == 1:
        return f"{seeds_text(found.seeds)}, {images:,} test images"
    return f"summed over {seeds_text(found.seeds)}: {len(found.seeds) * images:,} test predictions"


def _confusions(document: Document, known: list, class_names: list[str]) -> None:
    images = int(known[0][1].confusion_matrix.sum() // len(known[0][1].seeds))
    pictures = [document.picture(
        figures.confusion(found.confusion_matrix, class_names, f"{model.spec}, {seeds_text(found.seeds)}"),
        f"confusion-{model.spec}", f"Confusion matrix of {model.spec} on the test images, {_over(found, images)}",
        "Confusion matrix of **{spec}** ({over}).", spec=model.spec, over=_over(found, images))
        for model, found in known]
    document.prose("Rows are the true class, columns the predicted one; a cell's colour is its share of the "
                   "true class's images, on one scale for every matrix, so the diagonal reads as per-class "
                   "accuracy and the errors stand out off it.")
    document.figures(*pictures)


def _per_class(document: Document, known: list, class_names: list[str]) -> None:
    several = any(len(found.seeds) > 1 for _, found in known)
    title = "Per-class test accuracy" + (" (mean ± sd over seeds)" if several else "")
    fig = figures.per_class([model.spec for model, _ in known], [found.per_class_accuracy for _, found in known],
                            class_names, title)
    where = "; ".join(f"{model.spec}: {seeds_text(found.seeds)}" for model, found in known)
    document.figures(document.picture(fig, "per-class", "Grouped bars of per-class test accuracy of every model",
                                      "Per-class test accuracy ({where}).", where=where))
    header = ["class", *(model.spec for model, _ in known)]
    pair = len(known) == 2
    if pair:
        header.append(f"{known[1][0].spec} − {known[0][0].spec} (points)")
    rows = []
    for name in class_names:
        stats = [found.per_class_accuracy[name] for _, found in known]
        row = [name, *("–" if stat is None else percent_stat(stat) for stat in stats)]
        if pair:
            row.append("–" if None in stats else signed_points(stats[1].mean - stats[0].mean))
        rows.append(row)
    document.table(header, rows)


def _most_confused(document: Document, model: ModelResult, found: ClassBreakdown, class_names: list[str]) -> None:
    pairs = most_confused(found.confusion_matrix, class_names, top=3)
    over = "" if len(found.seeds) == 1 else f", summed over {seeds_text(found.seeds)}"
    if not pairs:
        document.prose("{spec} makes no error on the test images{over}.", spec=model.spec, over=over)
        return
    said = "; ".join(f"“{pair.true}” for “{pair.predicted}” ({pair.count:,} times)" for pair in pairs)
    document.prose("{spec} most often takes {said}{over}.", spec=model.spec, said=said, over=over)


def _disagreements(document: Document, comparison: Comparison) -> None:
    """The first seed of two models: test images one gets wrong and the other right (never an empty grid)."""
    first, second = comparison.models[:2]
    data = comparison.data
    found = disagreements(first, second, data.y_test)  # the images the maps after "Why convolutions" explain
    if found is None:
        return
    truth, pa, pb = data.y_test, first.first.predictions, second.first.predictions
    seed = seeds_text(sorted({first.first.seed, second.first.seed}))
    cases = [(second, first, pb, found.second_wrong), (first, second, pa, found.first_wrong)]
    counts = [f"{len(index):,}" for *_, index in cases]
    document.prose("Test images one model gets wrong and the other right ({seed} of each): {a} gets {count_a} of "
                   "the {total} wrong that {b} gets right, and {b} {count_b} that {a} gets right.", seed=seed,
                   a=second.spec, b=first.spec, count_a=counts[0], count_b=counts[1], total=f"{len(truth):,}")
    pictures = []
    for wrong, right, guess, every in cases:
        if not len(every):  # no grid: the sentence above already says none
            continue
        index = every[:10]
        shown = f"all {len(index)}" if len(index) == len(every) else f"the first {len(index)} of {len(every):,}"
        pictures.append(document.picture(
            figures.disagreement_grid(data.x_test[index], truth[index], guess[index], data.class_names),
            f"wrong-{wrong.spec}-right-{right.spec}",
            f"Test images that {wrong.spec} gets wrong and {right.spec} gets right, each titled with its "
            f"class and what {wrong.spec} said",
            "**{wrong}** wrong, **{right}** right ({shown}): each titled with its class and what {wrong} said.",
            wrong=wrong.spec, right=right.spec, shown=shown))
    document.figures(*pictures)
