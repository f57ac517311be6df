"""TensorBoard event files: per-epoch metrics, the learning rate, and the network's summary as text.

Uses torch's SummaryWriter, which needs the ``tensorboard`` package (an optional extra).
"""

from __future__ import annotations

from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.records import EpochRecord, TrainingFacts
from cnnlab.errors import CnnlabError

SCALARS = {"loss": "loss/train", "val_loss": "loss/validation", "accuracy": "accuracy/train",
           "val_accuracy": "accuracy/validation", "learning_rate": "learning_rate", "lr": "learning_rate"}


def check_available() -> None:
    """A clear error, before anything is trained, when the tensorboard package is missing."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise CnnlabError("TensorBoard logs need the tensorboard package: pip install 'cnnlab[tensorboard]'")


class TensorBoardWriter:
    """Writes one run's event files under ``log_dir``."""

    def __init__(self, log_dir: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise CnnlabError("TensorBoard logs need the tensorboard package: "
                              "pip install 'cnnlab[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def summary(self, text: str) -> None:
        # Markdown code block, so TensorBoard's text tab keeps the table's columns.
        self.writer.add_text("summary", "```\n" + text + "\n```", 0)

    def epoch(self, epoch: int, logs: dict) -> None:
        for key, tag in SCALARS.items():
            if logs.get(key) is not None:
                self.writer.add_scalar(tag, logs[key], epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_writer(log_dir: str) -> TensorBoardWriter:
    return TensorBoardWriter(log_dir)


class RunEventLog(TrainingCallback):
    """The CLI's ``--tensorboard``: an engine callback that writes each run's events to ``RUN_DIR/tensorboard/``.

    It passes every call on to ``inner`` (the progress printer, or None when quiet). The
    folder is made by :func:`cnnlab.files.make_folder` (never through a link); the writer
    only ever adds new, uniquely named event files to it.
    """

    def __init__(self, inner=None):
        self.inner, self.writer = inner, None

    @property
    def wants_estimate(self) -> bool:
        return self.inner is not None and self.inner.wants_estimate

    def note(self, text: str) -> None:
        if self.inner is not None:
            self.inner.note(text)

    def on_train_begin(self, facts: TrainingFacts) -> None:
        from pathlib import Path

        from cnnlab.files import make_folder, read_regular

        self.close()
        run_dir = Path(facts.run_dir)
        self.writer = open_writer(str(make_folder(run_dir / "tensorboard", root=run_dir)))
        self.writer.summary(read_regular(run_dir / "summary.txt", 1 << 20).decode("utf-8", "replace"))
        if self.inner is not None:
            self.inner.on_train_begin(facts)

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        if self.inner is not None:
            self.inner.on_epoch_begin(epoch, epochs, steps)

    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        if self.inner is not None:
            self.inner.on_progress(step, steps, loss, accuracy)

    def on_epoch_end(self, record: EpochRecord, state=None) -> None:
        if self.writer is not None:
            self.writer.epoch(record.epoch, record.to_dict())
        if self.inner is not None:
            self.inner.on_epoch_end(record, state)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
