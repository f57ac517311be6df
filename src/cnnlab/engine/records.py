"""What training reports, typed: an epoch's record, the facts known before the first epoch, a run's status.

Pure Python (no torch), so Keras' callbacks and the presenters import it freely. On disk
(checkpoint, ``history.json``, ``metrics.csv``) an epoch record is its :meth:`EpochRecord.to_dict`.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields, replace

# An epoch's scores, in Keras' names and order: training loss and accuracy, then validation's.
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
RISING = ("acc", "precision", "recall", "f1_score", "fbeta_score")  # in a log key: higher is better
# compile's metric names as Keras logs them by default (cnnlab.metrics.get takes these strings)
COMPILED_NAMES = ("acc", "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
                  "sparse_top_k_categorical_accuracy", "precision", "recall", "f1_score", "fbeta_score")


def rises(name: str) -> bool:
    """Whether a higher ``name`` (a log key: ``"val_precision"``) is better, as Keras' metrics say; else lower."""
    return any(word in name for word in RISING)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of training: its scores (validation's None without validation data) and its timing."""

    epoch: int                      # 1-based, counting from the run's (or fit's) first epoch
    loss: float                     # mean training loss over the epoch's images, as Keras averages
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    time: float                     # seconds: training and validation
    train_time: float               # seconds: training alone
    images_per_second: float        # training images per second of train_time
    lr: float                       # the learning rate at the epoch's end
    # compile's metrics beyond accuracy, by their Keras log keys ("precision", "val_precision"): a number,
    # or one per class (F1Score(average=None)); empty without them (and then absent from to_dict)
    scores: dict[str, float | list[float]] = field(default_factory=dict)

    def metric(self, name: str) -> float | list[float] | None:
        """A score by its Keras name (``"val_loss"``, ``"val_precision"``); None where the epoch has none."""
        return getattr(self, name) if name in METRICS else self.scores.get(name)

    def to_dict(self) -> dict:
        """The JSON record, its keys in this order (the checkpoint's, history.json's, metrics.csv's); ``scores``
        only where compile asked for metrics beyond accuracy."""
        record = asdict(self)
        if not self.scores:
            del record["scores"]
        return record

    @classmethod
    def from_dict(cls, record: dict) -> EpochRecord:
        """The record :meth:`to_dict` wrote (a checkpoint's, once checked: see ``engine.restore``)."""
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})

    def renumbered(self, offset: int) -> EpochRecord:
        """The same epoch numbered ``offset`` later (Keras numbers ``fit`` epochs on from ``initial_epoch``)."""
        return replace(self, epoch=self.epoch + offset)


RECORD_KEYS = frozenset(f.name for f in fields(EpochRecord)) - {"scores"}  # every record has these


@dataclass
class TrainingFacts:
    """What is known before the first epoch, for the presenters: filled by the engine and the run's recorder."""

    train_count: int                         # training images (this run's part of the data)
    batch_size: int
    epochs: int
    run_dir: str | None = None               # the run folder, for a run (``cnnlab train``)
    split_audit: dict | None = None          # the split's images per class (a new run's)
    resumed_at_epoch: int | None = None      # the epochs a resumed run had finished
    estimate_seconds: float | None = None    # an epoch's estimated time, where a presenter wants it


class RunStatus(enum.StrEnum):
    """What a comparison did with one run's folder (a ``str``: ``"trained"`` in JSON and tables)."""

    TRAINED = "trained"    # none was there: trained from the start
    RESUMED = "resumed"    # an interrupted run: continued from its checkpoint
    REUSED = "reused"      # a finished run on the same data: its results reused
