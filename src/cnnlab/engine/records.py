"""What an epoch reports, by name: pure Python, so Keras' callbacks import it without torch."""

from __future__ import annotations

# An epoch's scores, in Keras' names and order: training loss and accuracy, then validation's.
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
