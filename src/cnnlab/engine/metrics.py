"""Scoring a model's logits: loss, accuracy, predicted classes (results by class: ``class_metrics``)."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.engine.class_metrics import classification_report  # noqa: F401  (kept importable from here)


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
