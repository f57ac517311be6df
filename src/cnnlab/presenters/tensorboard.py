"""TensorBoard event files: per-epoch metrics, the learning rate, and the network's summary as text.

Uses torch's SummaryWriter, which needs the ``tensorboard`` package (an optional extra).
"""

from __future__ import annotations

from cnnlab.errors import CnnlabError

SCALARS = {"loss": "loss/train", "val_loss": "loss/validation", "accuracy": "accuracy/train",
           "val_accuracy": "accuracy/validation", "learning_rate": "learning_rate", "lr": "learning_rate"}


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
