"""What a comparison finds, as typed records: per run, per model, and for the whole comparison.

Each record's ``to_dict`` is what comparison.json holds. Which fields go there is decided
field by field: the per-image and per-weight arrays (predictions, first-layer filters)
and the loaded dataset feed the report's figures and stay out of the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.engine.records import RunStatus

if TYPE_CHECKING:
    from cnnlab.data.dataset import Dataset
    from cnnlab.experiment.explanations import Explanations


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
    """The analyses the report draws, made on every seed (its figures of one seed show the first)."""

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
    status: RunStatus           # trained, resumed or reused (a str in JSON)
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
    deep: DeepAnalysis | None = None   # None where it was not asked for (evaluate_run's deep)
    predictions: np.ndarray | None = None  # predicted class per test image: the per-seed breakdowns (not written)
    versions: dict = field(default_factory=dict)  # the run's manifest.json: what trained it, not what reads it
    threads: int | None = None                    # CPU threads it trained with (manifest.json)
    split_description: str | None = None          # its validation split, as its manifest.json describes it
    recipe: str = "homework"                      # the recipe its options started from (config.json)
    options_text: str = ""                        # its training options in words (recipes.describe_options)
    tta: str | None = None                        # the test-time augmentation of tta_accuracy (compare --tta)
    tta_accuracy: float | None = None             # test accuracy with it; None without --tta

    def to_dict(self) -> dict:
        """The JSON record: every field but the predictions array, the deep analysis's results merged in."""
        record = {item.name: getattr(self, item.name) for item in fields(self)
                  if item.name not in ("deep", "predictions")}
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
        """The first seed's run, the one the report's figures of a single seed show."""
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

    @property
    def tta_accuracy(self) -> Stat | None:
        """Test accuracy with the comparison's test-time augmentation over the seeds; None without it."""
        if any(run.tta_accuracy is None for run in self.runs):
            return None
        return self.stat("tta_accuracy")

    def to_dict(self) -> dict:
        """The JSON record: the spec and its content's hash, every run, and each metric's statistics."""
        tta = self.tta_accuracy
        return {"spec": self.spec, "spec_sha256": self.spec_sha256, "runs": [run.to_dict() for run in self.runs],
                **{metric: self.stat(metric).to_dict() for metric in METRICS},
                **({"tta_accuracy": tta.to_dict()} if tta is not None else {})}


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
    explanations: Explanations | None = None  # where the first two models look on images they disagree on

    @property
    def seeds(self) -> int:
        """Seeds per model."""
        return len(self.models[0].runs)

    @property
    def tta(self) -> str | None:
        """The test-time augmentation every run was also scored with (``compare --tta``), or None."""
        return self.models[0].first.tta

    def to_dict(self) -> dict:
        """What comparison.json holds: the folder, each model's record, the dataset's facts, the maps' numbers."""
        return {"folder": str(self.folder), "models": [model.to_dict() for model in self.models],
                "dataset": self.dataset.to_dict(),
                **({"explanations": self.explanations.to_dict()} if self.explanations is not None else {})}


@dataclass
class RunMeasurements:
    """What one run's weights score on the test part: what the analysis cache keeps, keyed by the weights' hash."""

    test_accuracy: float
    test_loss: float
    predictions: np.ndarray                    # predicted class per test image
    deep: bool                                 # whether the two analyses below were made
    shift_accuracy: dict[int, float] | None    # pixels shifted -> test accuracy
    filters: np.ndarray | None                 # first conv layer's kernels; None for a network without one
    tta_accuracy: float | None = None          # test accuracy with test-time augmentation, where asked

    def to_dict(self) -> dict:
        """The cache's JSON record: every field, arrays as lists."""
        return {"test_accuracy": self.test_accuracy, "test_loss": self.test_loss, "tta_accuracy": self.tta_accuracy,
                "predictions": self.predictions.tolist(), "deep": self.deep,
                "shift_accuracy": None if self.shift_accuracy is None else
                {str(k): v for k, v in self.shift_accuracy.items()},
                "filters": None if self.filters is None else self.filters.tolist()}

    @classmethod
    def from_dict(cls, record: dict, count: int, classes: int) -> RunMeasurements:
        """A record read back, checked against ``count`` test images of ``classes`` classes (ValueError if off)."""
        predictions = np.asarray(record["predictions"], dtype=np.int64)
        if predictions.shape != (count,) or (count and not 0 <= predictions.min() <= predictions.max() < classes):
            raise ValueError("predictions do not fit the test part")
        shifts = record["shift_accuracy"]
        filters = None if record["filters"] is None else np.asarray(record["filters"], dtype=np.float32)
        if filters is not None and filters.ndim != 4:
            raise ValueError("filters are not (N, kh, kw, C)")
        tta, loss = record.get("tta_accuracy"), _number(record["test_loss"])
        if not 0 <= loss < float("inf"):
            raise ValueError("the test loss is not a finite non-negative number")
        return cls(_fraction(record["test_accuracy"]), loss, predictions, record["deep"] is True,
                   None if shifts is None else {int(k): _fraction(v) for k, v in shifts.items()}, filters,
                   None if tta is None else _fraction(tta))


def _number(value) -> float:
    """A JSON number as float; a string, bool or null is a damaged record (ValueError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {value!r}"[:80])
    return float(value)


def _fraction(value) -> float:
    """An accuracy read back: a number in [0, 1] (NaN is not), else ValueError."""
    number = _number(value)
    if not 0 <= number <= 1:
        raise ValueError(f"not an accuracy in [0, 1]: {value!r}"[:80])
    return number


@dataclass
class Contrast:
    """The second's mean minus the first's over their seeds, with its uncertainty: two models' test
    accuracy (the headline), or a claim's measure on two groups of models (:func:`findings.welch`)."""

    first: str
    second: str
    difference: float                       # a fraction: 0.448 is 44.8 points
    seeds: tuple[int, int]                  # seeds of the first and of the second model
    interval: tuple[float, float] | None    # 95% Welch interval of the difference; None with one seed
    p_value: float | None                   # Welch's t-test; None with one seed

    @property
    def measured(self) -> bool:
        """Whether the seed-to-seed noise is measured (two seeds or more on both sides)."""
        return self.p_value is not None


@dataclass
class ClassBreakdown:
    """A model's test results by class, over the seeds whose predictions are known."""

    seeds: list[int]
    confusion_matrix: np.ndarray                  # summed over ``seeds``; rows: true class, columns: predicted
    per_class_accuracy: dict[str, Stat | None]    # over ``seeds``; None for a class without test images


@dataclass
class RunHealth:
    """Whether a run learned anything: its accuracy against guessing, and its most predicted class."""

    spec: str
    seed: int
    accuracy: float
    guessing: float              # always answering the test part's most common class
    at_chance: bool              # within three standard errors of guessing, or below it
    dominant_class: str | None   # the class predicted most often (None when predictions are unknown)
    dominant_share: float        # of the test images predicted as that class


@dataclass
class FilterReading:
    """What a first convolutional layer's kernels look like, in numbers."""

    count: int
    size: tuple[int, int]                    # kernel height and width
    channels: int
    neighbour_correlation: float | None      # of adjacent weights within a kernel; None for 1x1 kernels
    random_spread: float | None              # that correlation's standard deviation for random weights (mean 0)
    one_sign: int                            # kernels whose weights are almost all of one sign (blobs)
    channel_correlation: float | None        # of one position's weights across colour channels; None for gray

