"""report.md (figures beside it) and report.html (one self-contained page, images embedded)."""

from __future__ import annotations

import base64
import html
import platform
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.files import make_folder, write_file
from cnnlab.presenters import figures
from cnnlab.presenters.comparison import markdown_table, significance
from cnnlab.presenters.plots import confusion_figure, figure_png, sample_grid

if TYPE_CHECKING:
    from cnnlab.experiment.results import Comparison, ModelResult

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5;margin:0 auto;
max-width:60rem;padding:1rem;color:#222}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
table{border-collapse:collapse;display:block;overflow-x:auto;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}
pre{overflow-x:auto;background:#f6f6f6;padding:.5rem;font-size:.75rem}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ddd}
"""


class Report:
    """Collects sections as markdown-ish blocks and renders both formats."""

    def __init__(self, folder: Path):
        self.folder = folder
        make_folder(folder / "figures", root=folder)  # refused if a link was planted there
        self.blocks: list[tuple[str, object]] = []
        self.names: set[str] = set()

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, markdown: str) -> None:
        self.blocks.append(("table", markdown))

    def code(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def figure(self, fig, name: str, alt: str) -> None:
        """Store the figure as figures/<name>.png; ``name`` (made from spec names) becomes one safe file name."""
        base = name = re.sub(r"[^A-Za-z0-9_.-]", "-", name).lstrip(".")[:100] or "figure"
        count = 1
        while name in self.names:  # two specs whose names differ only in characters made safe
            name, count = f"{base}-{count}", count + 1
        self.names.add(name)
        png = figure_png(fig)
        path = write_file(self.folder / "figures" / f"{name}.png", png, root=self.folder)
        self.blocks.append(("img", (path, alt, png)))

    def markdown(self, title: str) -> str:
        out = [f"# {title}", ""]
        for kind, value in self.blocks:
            if kind == "h2":
                out += [f"## {value}", ""]
            elif kind == "img":
                path, alt, _ = value
                out += [f"![{alt}](figures/{path.name})", ""]
            elif kind == "pre":
                out += ["```", value.rstrip(), "```", ""]
            else:
                out += [value, ""]
        return "\n".join(out)

    def html(self, title: str) -> str:
        body = [f"<h1>{html.escape(title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "img":
                _, alt, png = value
                data = base64.b64encode(png).decode()  # the bytes written, not the file re-read
                body.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">')
            elif kind == "table":
                body.append(_html_table(value))
            else:
                body.append(f"<{kind}>{html.escape(value)}</{kind}>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")


def _html_table(markdown: str) -> str:
    lines = [line.strip().strip("|").split("|") for line in markdown.strip().splitlines()]
    head, rows = lines[0], lines[2:]
    cells = lambda row, tag: "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in row)  # noqa: E731
    return ("<table><thead><tr>" + cells(head, "th") + "</tr></thead><tbody>"
            + "".join("<tr>" + cells(row, "td") + "</tr>" for row in rows) + "</tbody></table>")


def write_report(comparison: Comparison, command: list[str]) -> tuple[Path, Path]:
    """Write report.md and report.html into the comparison folder; returns their paths."""
    folder = Path(comparison.folder)
    report = Report(folder)
    models = comparison.models
    _dataset_section(report, comparison)
    _models_section(report, models)
    _results_section(report, comparison)
    _convolution_section(report, models)
    _reproducibility_section(report, comparison, command)
    title = f"{' vs '.join(m.spec for m in models)} on {comparison.data.name}"
    markdown = write_file(folder / "report.md", report.markdown(title).encode(), root=folder)
    page = write_file(folder / "report.html", report.html(title).encode(), root=folder)
    return markdown, page


def _dataset_section(report: Report, comparison: Comparison) -> None:
    facts, data = comparison.dataset, comparison.data
    report.heading("The dataset")
    report.text(f"{data.name}: {len(data.y_train):,} training and {len(data.y_test):,} test images of "
                f"{'x'.join(map(str, data.image_shape))}, {data.num_classes} classes. Source: "
                f"{facts.identity.get('source')} ({facts.identity.get('location')}).")
    for split in ("train", "test"):
        images, labels = data.split(split)
        report.figure(sample_grid(images, labels, data.class_names, 10, 0, f"{split}: 10 random images"),
                      f"samples-{split}", f"Ten random {split} images of {data.name}, titled with their class")
    if facts.split:
        report.text(f"Validation split: {facts.split['description']}.")
        report.figure(figures.class_counts(facts.split), "class-counts",
                      "Bar chart of images per class in the train, validation and test parts")


def _models_section(report: Report, models: list[ModelResult]) -> None:
    report.heading("The models")
    for model in models:
        first = model.first
        report.text(f"{model.spec}: {first.params:,} parameters, {first.macs:,} forward MACs per image.")
        report.code(first.summary)
        report.figure(figures.layer_params(model.spec, model.deep.layer_params), f"params-{model.spec}",
                      f"Horizontal bars of parameters per layer of {model.spec}")


def _results_section(report: Report, comparison: Comparison) -> None:
    models, data = comparison.models, comparison.data
    report.heading("Learning curves")
    report.figure(figures.learning_curves(models), "learning-curves",
                  "Training and validation loss and accuracy per epoch for every model")
    report.heading("Test results")
    report.table(markdown_table(comparison))
    report.text(significance(comparison).text + ".")
    for model in models:
        report.figure(confusion_figure(model.deep.confusion_matrix, data.class_names,
                                       f"{model.spec}: test confusion matrix"),
                      f"confusion-{model.spec}", f"Confusion matrix of {model.spec} on the test images")
    report.figure(figures.per_class(models, data.class_names), "per-class",
                  "Grouped bars of per-class test accuracy for every model")
    report.table(_per_class_table(models, data.class_names))
    for model in models:
        pairs = ", ".join(f"{p.true} taken for {p.predicted} ({p.count})" for p in model.deep.most_confused)
        report.text(f"{model.spec}, most confused: {pairs or 'none'}.")
    _disagreements(report, models[0], models[1], data)


def _per_class_table(models: list[ModelResult], class_names: list[str]) -> str:
    a, b = models[0].deep.per_class_accuracy, models[1].deep.per_class_accuracy
    head = f"| class | {models[0].spec} | {models[1].spec} | difference |\n|---|---|---|---|"
    rows = [f"| {c} | {a[c] or 0:.3f} | {b[c] or 0:.3f} | {(b[c] or 0) - (a[c] or 0):+.3f} |" for c in class_names]
    return "\n".join([head, *rows])


def _disagreements(report: Report, first: ModelResult, second: ModelResult, data) -> None:
    pa, pb, truth = first.deep.predictions, second.deep.predictions, data.y_test
    for wrong, right, guess in ((first, second, pa), (second, first, pb)):
        mask = ((pa != truth) & (pb == truth)) if wrong is first else ((pb != truth) & (pa == truth))
        index = np.flatnonzero(mask)[:10]
        title = f"{wrong.spec} wrong, {right.spec} right ({int(mask.sum()):,} test images)"
        report.figure(figures.disagreement_grid(data.x_test[index], truth[index], guess[index], data.class_names,
                                                title),
                      f"wrong-{wrong.spec}-right-{right.spec}",
                      f"Test images that {wrong.spec} gets wrong and {right.spec} gets right")


def _convolution_section(report: Report, models: list[ModelResult]) -> None:
    report.heading("Why convolutions")
    report.text("Claim 1: a convolutional network is less thrown by small shifts of the image. "
                "Test accuracy on copies shifted right and down by 0 to 4 pixels (empty border filled "
                "with black; at most 2,000 test images):")
    report.figure(figures.shift_robustness(models), "shift-robustness",
                  "Line plot of test accuracy against shift in pixels for every model")
    report.text("Claim 2: its first layer learns small local filters (edges, colour blobs), shared across "
                "the whole image:")
    for model in models:
        kernels = model.deep.filters
        if kernels is not None:
            report.figure(figures.filters(model.spec, kernels), f"filters-{model.spec}",
                          f"The first convolutional layer's filters of {model.spec}, drawn as small images")


def _reproducibility_section(report: Report, comparison: Comparison, command: list[str]) -> None:
    import torch

    from cnnlab import __version__

    identity = comparison.dataset.identity
    seeds = sorted({run.seed for model in comparison.models for run in model.runs})
    report.heading("Reproducibility")
    report.code("\n".join([
        f"command: {shlex.join(command)}", f"seeds: {', '.join(map(str, seeds))}",
        f"versions: cnnlab {__version__}, torch {torch.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}",
        f"device: {comparison.models[0].first.device}, {torch.get_num_threads()} threads",
        f"dataset: {identity.get('source')} at {identity.get('location')}",
        f"dataset sha256: {identity.get('sha256')} ({identity.get('verified')})"]))
