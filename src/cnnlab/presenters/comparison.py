"""The side-by-side comparison table, and whether a difference beats the seed-to-seed noise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.experiment.results import Comparison, Stat

COLUMNS = ("model", "params", "MACs", "s/epoch", "best val acc", "final val acc", "test acc", "test loss")


def _stat(stat: Stat, digits: int = 4) -> str:
    if stat.std is None:
        return f"{stat.mean:.{digits}f}"
    return f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"


def comparison_rows(comparison: Comparison) -> list[tuple[str, ...]]:
    """One row of cells per model, in ``COLUMNS`` order."""
    rows = []
    for model in comparison.models:
        first = model.first
        rows.append((model.spec, f"{first.params:,}", f"{first.macs:,}",
                     _stat(model.seconds_per_epoch, 2), _stat(model.best_val_accuracy),
                     _stat(model.final_val_accuracy), _stat(model.test_accuracy), _stat(model.test_loss)))
    return rows


def format_comparison(comparison: Comparison) -> str:
    """The table as printed, then the seed count and whether the difference beats the noise."""
    rows = comparison_rows(comparison)
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    seeds = comparison.seeds
    lines = [line(COLUMNS), line(tuple("-" * w for w in widths)), *map(line, rows), "",
             f"{seeds} seed(s) per model" + (" (mean ± sample standard deviation)" if seeds > 1 else ""),
             significance(comparison).text]
    return "\n".join(lines)


def markdown_table(comparison: Comparison) -> str:
    """The same table in Markdown."""
    rows = comparison_rows(comparison)
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


@dataclass
class Significance:
    """The second model's test accuracy minus the first's, and whether it beats the seed-to-seed noise."""

    difference: float
    p_value: float | None       # None with one seed per model: the noise is not measured
    significant: bool | None
    text: str


def significance(comparison: Comparison) -> Significance:
    """Welch's t-test on the first two models' test accuracies over seeds."""
    a, b = comparison.models[0], comparison.models[1]
    values_a, values_b = a.test_accuracy.values, b.test_accuracy.values
    diff = b.test_accuracy.mean - a.test_accuracy.mean
    if len(values_a) < 2 or len(values_b) < 2:
        return Significance(diff, None, None,
                            f"test accuracy difference ({b.spec} - {a.spec}): {diff:+.4f}; one seed per model, "
                            "so the seed-to-seed noise is not measured (use --seeds 3 or more)")
    from scipy.stats import ttest_ind

    p_value = float(ttest_ind(values_b, values_a, equal_var=False).pvalue)
    if p_value != p_value:  # NaN: both sets constant
        p_value = 0.0 if diff else 1.0
    significant = p_value < 0.05
    verdict = "larger than" if significant else "not larger than"
    return Significance(diff, p_value, significant,
                        f"test accuracy difference ({b.spec} - {a.spec}): {diff:+.4f}, {verdict} the "
                        f"seed-to-seed noise (Welch's t-test over {len(values_a)} and {len(values_b)} seeds, "
                        f"p = {p_value:.3g}, threshold 0.05)")
