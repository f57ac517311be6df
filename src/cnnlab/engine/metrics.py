"""Evaluation beyond loss and accuracy: per-class accuracy and the confusion matrix."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def predict_logits(model, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def score_logits(logits: torch.Tensor, labels: np.ndarray) -> dict:
    """Mean cross-entropy, accuracy and predicted classes of ``logits`` against integer labels."""
    from torch.nn import functional as F

    predictions = logits.argmax(dim=1)
    target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return {"loss": float(F.cross_entropy(logits, target)),
            "accuracy": float((predictions == target).double().mean()), "predictions": predictions.numpy()}


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict:
    """Confusion matrix (rows: true class, columns: predicted) and per-class accuracy."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(class_names))))
    totals = matrix.sum(axis=1)
    per_class = {name: (float(matrix[i, i] / totals[i]) if totals[i] else None)
                 for i, name in enumerate(class_names)}
    return {"confusion_matrix": matrix.tolist(), "per_class_accuracy": per_class}
