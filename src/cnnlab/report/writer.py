"""report.md (figures beside it) and report.html (one self-contained page, images embedded).

The report opens with the answer: a sentence per comparison (who wins, by how many
points, and whether that beats the seed-to-seed noise), any run that learned nothing,
the side-by-side table and the learning curves. Details follow: results by class, the
claims for convolutions, where each network looks, the data, the models, and how to reproduce it all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.experiment.findings import Findings
from cnnlab.files import write_file
from cnnlab.report import answer, background, claims, classes, looking
from cnnlab.report.document import Document, seeds_text

if TYPE_CHECKING:
    from cnnlab.experiment.results import Comparison


def write_report(comparison: Comparison, command: list[str]) -> tuple[Path, Path]:
    """Write report.md and report.html into the comparison folder; returns their paths."""
    folder = Path(comparison.folder)
    document = build_report(comparison, command)
    title = f"{' vs '.join(model.spec for model in comparison.models)} on {comparison.data.name}"
    markdown, page = document.render(title, lead(comparison))
    return (write_file(folder / "report.md", markdown.encode(), root=folder),
            write_file(folder / "report.html", page.encode(), root=folder))


def build_report(comparison: Comparison, command: list[str]) -> Document:
    """Every section in reading order, the figures written to the comparison folder's figures/."""
    findings = Findings.of(comparison)
    document = Document(Path(comparison.folder))
    answer.answer(document, comparison, findings)
    answer.table(document, comparison)
    answer.curves(document, comparison)
    classes.by_class(document, comparison, findings)
    claims.convolutions(document, comparison, findings)
    looking.where_they_look(document, comparison)
    background.dataset(document, comparison)
    background.models(document, comparison)
    background.reproducibility(document, comparison, command)
    return document


def lead(comparison: Comparison) -> str:
    """The line under the title: the data, the training length and the seeds."""
    data = comparison.data
    epochs = sorted({len(run.history) for model in comparison.models for run in model.runs})
    seeds = sorted({run.seed for model in comparison.models for run in model.runs})
    shown = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]} to {epochs[-1]}"
    return (f"{len(data.y_train):,} training and {len(data.y_test):,} test images of "
            f"{'x'.join(map(str, data.image_shape))}, {data.num_classes} classes; {shown} "
            f"epoch{'s' if epochs[-1] != 1 else ''} per run; "
            f"{comparison.seeds} run{'s' if comparison.seeds > 1 else ''} per model ({seeds_text(seeds)}).")
