"""The side-by-side comparison table, and whether a difference beats the seed-to-seed noise, in words.

The statistics come computed (:mod:`cnnlab.experiment.findings`): this module only shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.experiment.results import Comparison, Contrast, Stat

COLUMNS = ("model", "params", "MACs", "s/epoch", "best val acc", "final val acc", "test acc", "test loss")


def _stat(stat: Stat, digits: int = 4) -> str:
    if stat.std is None:
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"


def columns(comparison: Comparison) -> tuple[str, ...]:
    """The table's headings: ``COLUMNS``, with test accuracy under ``--tta`` after test accuracy."""
    if comparison.tta is None:
        return COLUMNS
    at = COLUMNS.index("test acc") + 1
    return (*COLUMNS[:at], tta_heading(comparison.tta), *COLUMNS[at:])


def tta_heading(tta: str) -> str:
    """The heading of the test accuracy scored with test-time augmentation."""
    return f"test acc ({tta})"


def comparison_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    """One row of cells per model, in :func:`columns` order."""
    rows = []
    for model in comparison.models:
        first, tta = model.first, model.tta_accuracy
        augmented = [] if comparison.tta is None else ["—" if tta is None else _stat(tta)]
        rows.append((model.spec, f"{first.params:,}", f"{first.macs:,}",
                     _stat(model.seconds_per_epoch, 2), _stat(model.best_val_accuracy),
                     _stat(model.final_val_accuracy), _stat(model.test_accuracy), *augmented,
                     _stat(model.test_loss)))
    return rows


def tta_explanation(tta: str) -> str:
    """What the test-time augmentation column holds, in words (the table's line and the report's sentence)."""
    return (f"{tta_heading(tta)}: each test image scored by the mean of its views' class probabilities "
            f"(test-time augmentation, --tta {tta})")


def tta_line(comparison: Comparison) -> list[str]:
    """What the test-time augmentation column is, when there is one."""
    return [] if comparison.tta is None else [f"{tta_explanation(comparison.tta)}; the other columns are without it"]


def format_comparison(comparison: Comparison, contrast: Contrast) -> str:
    """The table as printed, then the seed count and whether the difference beats the noise.

    ``contrast``: the second model against the first (:func:`cnnlab.experiment.findings.contrast`).
    """
    rows, headings = comparison_rows(comparison), columns(comparison)
    widths = [max(len(row[i]) for row in [headings, *rows]) for i in range(len(headings))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    seeds = comparison.seeds
    lines = [line(headings), line(tuple("-" * w for w in widths)), *map(line, rows), "",
             f"{seeds} seed(s) per model" + (" (mean ± sample standard deviation)" if seeds > 1 else ""),
             significance(contrast).text, *tta_line(comparison), *recipe_lines(comparison)]
    return "\n".join(lines)


def recipe_lines(comparison: Comparison) -> list[str]:
    """Each model's training options in words, when they are not all the experiment's recipe."""
    from cnnlab.engine.recipes import describe_options

    texts = {model.spec: model.first.options_text for model in comparison.models}
    if all(text in ("", describe_options({})) for text in texts.values()):
        return []
    width = max(map(len, texts))
    return ["", "recipes:", *(f"  {spec.ljust(width)}  {text}" for spec, text in texts.items())]


@dataclass
class Significance:
    """The second model's test accuracy minus the first's, and whether it beats the seed-to-seed noise."""

    difference: float
    p_value: float | None       # None with one seed per model: the noise is not measured
    significant: bool | None
    text: str


def significance(found: Contrast) -> Significance:
    """Welch's t-test of ``found`` (one model's test accuracies against another's, over seeds), in words."""
    diff, first, second = found.difference, found.first, found.second
    if found.p_value is None:
        return Significance(diff, None, None,
                            f"test accuracy difference ({second} - {first}): {diff:+.4f}; one seed per model, "
                            "so the seed-to-seed noise is not measured (use --seeds 3 or more)")
    significant = found.p_value < 0.05
    verdict = "larger than" if significant else "not larger than"
    return Significance(diff, found.p_value, significant,
                        f"test accuracy difference ({second} - {first}): {diff:+.4f}, {verdict} the "
                        f"seed-to-seed noise (Welch's t-test over {found.seeds[0]} and {found.seeds[1]} seeds, "
                        f"p = {found.p_value:.3g}, threshold 0.05)")
