"""One training step on a batch, the autocast it runs in, and the errors the loop raises.

The epoch loop (:mod:`cnnlab.engine.loop`) and the time estimate
(:mod:`cnnlab.engine.estimate`) run these (evaluation: :mod:`cnnlab.engine.evaluation`);
how many processes share a batch is the strategy's business (:mod:`cnnlab.engine.strategy`),
which passes the loss's divisor down.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from cnnlab.engine.averaging import WeightAverage
from cnnlab.errors import CnnlabError


class NonFiniteLossError(CnnlabError):
    """Training produced a NaN or infinite loss; names the epoch and step."""

    def __init__(self, epoch: int, step: int, value: float, kept: str | None = None):
        # The engine keeps no files, so it claims none; the run layer says what it kept (``kept``).
        super().__init__(f"non-finite loss ({value}) at epoch {epoch}, step {step}: training stopped"
                         f"{'; ' + kept if kept else ''} (try a lower learning rate)")
        self.epoch, self.step, self.value = epoch, step, value


class DeterminismError(CnnlabError):
    """--deterministic asked for, and an operation has no deterministic implementation."""


def deterministic_guard(exc: RuntimeError) -> None:
    """Turn torch's refusal of a non-deterministic operation into one line; other errors pass."""
    text = str(exc)
    if "deterministic" in text:
        raise DeterminismError("--deterministic: torch refused an operation: "
                               + text.strip().splitlines()[0]) from None


def autocast(device: torch.device, precision: str):
    """bf16 autocast (matmuls and convolutions in bfloat16, weights kept in float32), or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(model, optimizer, scheduler, xb, yb, precision: str = "fp32", label_smoothing: float = 0.0,
               average: WeightAverage | None = None, divisor: float | None = None):
    """One optimisation step; returns the batch's loss and correct count (on the device).

    ``divisor`` None: the loss is the batch mean (one process). Else the summed loss divided
    by ``divisor`` is backpropagated and the sum returned (several processes, each holding
    part of the batch: see :class:`cnnlab.engine.data_parallel.DataParallel`).
    """
    reduction = "mean" if divisor is None else "sum"
    with autocast(xb.device, precision):
        logits = model(xb).float()  # (images, classes)
        loss = F.cross_entropy(logits, yb, reduction=reduction, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    (loss if divisor is None else loss / divisor).backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if average is not None:
        average.update(model)  # DDP's wrapper yields the model's own parameters, in order
    return loss.detach(), (logits.detach().argmax(dim=1) == yb).sum()
