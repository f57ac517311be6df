"""The one evaluation path: a model's logits over a batch source, and what is scored from them.

``Model.evaluate``/``predict``-style scoring, ``cnnlab evaluate``, validation during training
(and each process's part of it under DDP, through the strategy), and the comparison's
analyses all run :func:`batch_logits`: eval mode, no gradients, the batches converted one
at a time from the compact pixels, forward passes of a bounded share of a batch on the CPU
(so the activations stay small in RAM), in the precision asked for (bf16 autocast or fp32),
on whatever device the images are on.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.nn import functional as F

from cnnlab.engine.batches import ImageBatches, as_batches
from cnnlab.engine.class_metrics import classification_report  # noqa: F401  (the per-class scores, from here too)
from cnnlab.engine.memory import evaluation_chunk
from cnnlab.engine.steps import Objective, autocast

EVAL_BATCH = 1024


@torch.no_grad()
def batch_logits(model, x: ImageBatches | torch.Tensor, batch_size: int = EVAL_BATCH,
                 precision: str = "fp32") -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(start, stop, logits)`` for each batch of ``x`` in order: float32 ``(stop - start, classes)``.

    ``x``: a batch source (each batch converted as it is used), or a tensor of network input.
    """
    model.eval()
    x = as_batches(x)
    # On the CPU, forward passes of a bounded share of the batch: the activations stay small in RAM.
    chunk = evaluation_chunk(getattr(model, "info", None), batch_size) if x.device.type == "cpu" else batch_size
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        with autocast(x.device, precision):
            parts = [model(x.slice(at, min(at + chunk, stop))).float() for at in range(start, stop, chunk)]
        yield start, stop, torch.cat(parts)


def predict_logits(model, x: ImageBatches | torch.Tensor, batch_size: int = EVAL_BATCH,
                   precision: str = "fp32") -> torch.Tensor:
    """The logits of every image of ``x``: float32 ``(N, classes)``, on ``x``'s device."""
    return torch.cat([logits for _, _, logits in batch_logits(model, x, batch_size, precision)])


def evaluation_sums(model, x: ImageBatches | torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH,
                    precision: str = "fp32", objective: Objective | None = None,
                    tally=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss (float64: cross-entropy, or ``objective``'s, the one training computes) and correct
    count (int64) over ``x``, on its device, in eval mode; ``tally`` (a
    :class:`~cnnlab.engine.metric_counts.MetricTally`) counts the compiled metrics on the way."""
    device = as_batches(x).device
    objective = objective or Objective()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for start, stop, logits in batch_logits(model, x, batch_size, precision):
        target = y[start:stop]
        loss_sum += objective.sample_losses(logits, target, training=False).sum().double()
        correct += objective.hits(logits, target)
        if tally is not None:
            tally.add(logits, target)
    return loss_sum, correct


def score_logits(logits: torch.Tensor, labels: np.ndarray) -> dict:
    """Mean cross-entropy, accuracy and predicted classes of ``logits`` (on the CPU) against integer labels."""
    predictions = logits.argmax(dim=1)
    target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return {"loss": float(F.cross_entropy(logits, target)),
            "accuracy": float((predictions == target).double().mean()), "predictions": predictions.numpy()}
