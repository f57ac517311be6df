"""What a comparison finds, as typed records: per run, per model, and for the whole comparison.

Each record's ``to_dict`` is what comparison.json holds. Which fields go there is decided
field by field: the per-image and per-weight arrays (predictions, first-layer filters)
and the loaded dataset feed the report's figures and stay out of the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cnnlab.data.dataset import Dataset


@dataclass
class Stat:
    """A metric over a model's seeds: the mean, the sample standard deviation (None for one seed), the values."""

    mean: float
    std: float | None
    values: list[float]

    @classmethod
    def of(cls, values) -> Stat:
        """The statistics of ``values`` (one per seed)."""
        array = np.asarray(values, dtype=float)
        return cls(float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else None, array.tolist())

    def to_dict(self) -> dict:
        """The JSON record: every field."""
        return asdict(self)


@dataclass
class ConfusedPair:
    """A true class taken for another, and on how many test images."""

    true: str
    predicted: str
    count: int


@dataclass
class DeepAnalysis:
    """The analyses the report draws, made on a model's first seed."""

    confusion_matrix: list[list[int]]          # test part; rows: true class, columns: predicted
    per_class_accuracy: dict[str, float | None]
    most_confused: list[ConfusedPair]
    shift_accuracy: dict[int, float]           # pixels shifted -> test accuracy
    predictions: np.ndarray                    # predicted class per test image (the disagreement figures)
    filters: np.ndarray | None                 # first conv layer's kernels (N, kh, kw, C); None for an MLP
    layer_params: list[tuple[str, int]]        # (layer name, parameters), for the bar chart

    def to_dict(self) -> dict:
        """The JSON record: the results, not the figures' inputs.

        predictions and filters are arrays as large as the test part and the first
        layer; layer_params repeats the summary that the run's record already holds.
        """
        return {"confusion_matrix": self.confusion_matrix, "per_class_accuracy": self.per_class_accuracy,
                "most_confused": [asdict(pair) for pair in self.most_confused],
                "shift_accuracy": dict(self.shift_accuracy)}


@dataclass
class RunOutcome:
    """One trained run (a model and a seed): its test results, training figures and summary."""

    run_dir: Path
    status: str                 # trained, resumed or reused
    seed: int
    test_accuracy: float
    test_loss: float
    best_val_accuracy: float
    final_val_accuracy: float
    seconds_per_epoch: float
    history: list[dict]         # metrics.csv, one dict per epoch
    params: int
    macs: int
    summary: str                # the run's summary.txt
    device: str
    deep: DeepAnalysis | None = None   # only on each model's first seed

    def to_dict(self) -> dict:
        """The JSON record: every field, the deep analysis's results merged in."""
        record = {field.name: getattr(self, field.name) for field in fields(self) if field.name != "deep"}
        record["run_dir"] = str(self.run_dir)
        return {**record, **(self.deep.to_dict() if self.deep is not None else {})}


METRICS = ("test_accuracy", "test_loss", "best_val_accuracy", "final_val_accuracy", "seconds_per_epoch")


@dataclass
class ModelResult:
    """A spec's runs, one per seed, and their statistics over the seeds."""

    spec: str
    runs: list[RunOutcome]
    spec_sha256: str | None = None  # the resolved spec's content: what identifies the model, not its file

    @property
    def first(self) -> RunOutcome:
        """The first seed's run, the one the deep analyses are made on."""
        return self.runs[0]

    @property
    def deep(self) -> DeepAnalysis:
        """The first seed's deep analysis."""
        return self.runs[0].deep

    def stat(self, metric: str) -> Stat:
        """One of :data:`METRICS` over the seeds."""
        return Stat.of([getattr(run, metric) for run in self.runs])

    @property
    def test_accuracy(self) -> Stat:
        return self.stat("test_accuracy")

    @property
    def test_loss(self) -> Stat:
        return self.stat("test_loss")

    @property
    def best_val_accuracy(self) -> Stat:
        return self.stat("best_val_accuracy")

    @property
    def final_val_accuracy(self) -> Stat:
        return self.stat("final_val_accuracy")

    @property
    def seconds_per_epoch(self) -> Stat:
        return self.stat("seconds_per_epoch")

    def to_dict(self) -> dict:
        """The JSON record: the spec and its content's hash, every run, and each metric's statistics."""
        return {"spec": self.spec, "spec_sha256": self.spec_sha256, "runs": [run.to_dict() for run in self.runs],
                **{metric: self.stat(metric).to_dict() for metric in METRICS}}


@dataclass
class DatasetFacts:
    """What the report says about the data: name, classes, shape, where it came from, the split."""

    name: str
    classes: list[str]
    image_shape: list[int]
    identity: dict              # source, location, sha256, whether it was verified
    split: dict | None          # the first run's split audit (images per class in each part)
    notes: list[str]

    @classmethod
    def of(cls, data: Dataset, split: dict | None) -> DatasetFacts:
        """The facts of a loaded dataset and the validation split its runs made."""
        return cls(data.name, list(data.class_names), list(data.image_shape), dict(data.identity), split,
                   list(data.notes))

    def to_dict(self) -> dict:
        """The JSON record: every field."""
        return asdict(self)


@dataclass
class Comparison:
    """Every model's results on one dataset, and the dataset itself for the report's images."""

    folder: Path
    models: list[ModelResult]
    dataset: DatasetFacts
    data: Dataset               # loaded once by compare(); the report draws its images (not written)

    @property
    def seeds(self) -> int:
        """Seeds per model."""
        return len(self.models[0].runs)

    def to_dict(self) -> dict:
        """What comparison.json holds: the folder, each model's record, the dataset's facts."""
        return {"folder": str(self.folder), "models": [model.to_dict() for model in self.models],
                "dataset": self.dataset.to_dict()}
