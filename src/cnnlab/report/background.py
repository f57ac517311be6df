"""The report's details, after the answer: the data, the models, and how to reproduce the runs
(with the versions each run recorded when it trained, not those of the process writing the report)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from cnnlab.report import figures
from cnnlab.report.document import Document, seeds_text

if TYPE_CHECKING:
    from cnnlab.experiment.results import Comparison, RunOutcome

VERSION_ORDER = ("cnnlab", "torch", "numpy", "python")  # then any other the manifests name, alphabetically


def dataset(document: Document, comparison: Comparison) -> None:
    """Sizes and source, sample images, each seed's validation split, and images per class."""
    facts, data = comparison.dataset, comparison.data
    document.heading("The dataset", "dataset")
    document.prose("{name}: {train} training and {test} test images of {shape}, {classes} classes. Source: "
                   "{source}, {location}.", name=data.name, train=f"{len(data.y_train):,}",
                   test=f"{len(data.y_test):,}", shape="x".join(map(str, data.image_shape)),
                   classes=data.num_classes, source=facts.identity.get("source", "not recorded"),
                   location=facts.identity.get("location", "not recorded"))
    document.figures(*(document.picture(
        figures.samples(*data.split(part), data.class_names, f"{part}: 10 random images"), f"samples-{part}",
        f"Ten random {part} images of {data.name}, titled with their class", role="samples")
        for part in ("train", "test") if len(data.split(part)[1])))
    _splits(document, comparison)
    for note in facts.notes:
        document.prose("Note: {note}", note=note)


def _splits(document: Document, comparison: Comparison) -> None:
    """Each seed's validation split, as its runs' manifests describe it."""
    by_seed: dict[int, set[str]] = {}
    for model in comparison.models:
        for run in model.runs:
            by_seed.setdefault(run.seed, set()).add(run.split_description or "not recorded")
    said = [f"seed {seed}: {'; '.join(sorted(texts))}" for seed, texts in sorted(by_seed.items())]
    document.prose("Validation split, {said}.", said="; ".join(said))
    split = comparison.dataset.split
    if split and all(part in split for part in ("train", "validation", "test")):
        seed = comparison.models[0].first.seed
        document.figures(document.picture(
            figures.class_counts(split), "class-counts",
            "Bar chart of images per class in the train, validation and test parts",
            "Images per class in each part ({seed}'s split).", seed=seeds_text([seed])))


def models(document: Document, comparison: Comparison) -> None:
    """Each model's size, its summary with parameter formulas, and where its parameters sit."""
    document.heading("The models", "models")
    for model in comparison.models:
        first = model.first
        document.prose("**{spec}**: {params} parameters, {macs} multiply-accumulates per image.", spec=model.spec,
                       params=f"{first.params:,}", macs=f"{first.macs:,}")
        document.code(first.summary)
        layers = [(name, count) for name, count in (model.deep.layer_params if model.deep else []) if count]
        if layers:
            document.figures(document.picture(
                figures.layer_params(model.spec, layers), f"params-{model.spec}",
                f"Horizontal bars of parameters per layer of {model.spec}"))


def reproducibility(document: Document, comparison: Comparison, command: list[str]) -> None:
    """The command, seeds, and what each run recorded: versions, device, threads; the dataset's identity."""
    identity = comparison.dataset.identity
    runs = [(model.spec, run) for model in comparison.models for run in model.runs]
    document.heading("Reproducibility", "reproducibility")
    lines = [f"Command: {shlex.join(command)}",
             f"Seeds: {', '.join(str(seed) for seed in sorted({run.seed for _, run in runs}))}",
             *_recorded(runs, "Training options", lambda run: run.options_text or "not recorded"),
             *_recorded(runs, "Versions", _versions), *_recorded(runs, "Device", _device),
             f"Dataset: {identity.get('source')} at {identity.get('location')}",
             f"Dataset sha256: {identity.get('sha256')} ({identity.get('verified')})"]
    for line in lines:  # paragraphs, not a code block: they wrap on a phone instead of running off it
        document.prose("{line}", style="fact", line=line)


def _recorded(runs: list[tuple[str, RunOutcome]], what: str, describe) -> list[str]:
    """One line when every run recorded the same, else a line per run naming it."""
    said = {(spec, run.seed): describe(run) for spec, run in runs}
    if len(set(said.values())) == 1:
        return [f"{what} (recorded by every run): {next(iter(said.values()))}"]
    return [f"{what}, {spec} seed {seed}: {text}" for (spec, seed), text in said.items()]


def _versions(run: RunOutcome) -> str:
    versions = run.versions
    if not versions:
        return "not recorded"
    names = [name for name in VERSION_ORDER if name in versions]
    names += sorted(name for name in versions if name not in VERSION_ORDER)
    return ", ".join(f"{name} {versions[name]}" for name in names)


def _device(run: RunOutcome) -> str:
    return run.device + (f", {run.threads} threads" if run.threads else "")
