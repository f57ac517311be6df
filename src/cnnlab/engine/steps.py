"""One step: a training step on a batch, the summed scores of an evaluation, and the errors they raise.

The epoch loop (:mod:`cnnlab.engine.loop`) and the time estimate
(:mod:`cnnlab.engine.estimate`) run these; how many processes share a batch is the
strategy's business (:mod:`cnnlab.engine.strategy`), which passes the loss's divisor down.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from cnnlab.engine.averaging import WeightAverage
from cnnlab.engine.batches import ImageBatches, as_batches
from cnnlab.engine.memory import evaluation_chunk
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


@torch.no_grad()
def evaluation_sums(model, x: ImageBatches | torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
                    precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy (float64) and correct count (int64) over ``x``, on its device, in eval mode.

    ``x``: a batch source (each batch converted as it is used), or a tensor of network input.
    """
    model.eval()
    x = as_batches(x)
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    # On the CPU, forward passes of a bounded share of the batch: the activations stay small in RAM.
    chunk = evaluation_chunk(getattr(model, "info", None), batch_size) if x.device.type == "cpu" else batch_size
    for start in range(0, len(y), batch_size):
        stop = min(start + batch_size, len(y))
        with autocast(x.device, precision):
            logits = torch.cat([model(x.slice(at, min(at + chunk, stop))).float()
                                for at in range(start, stop, chunk)])  # (stop - start, classes)
        target = y[start:stop]
        loss_sum += F.cross_entropy(logits, target, reduction="sum").double()
        correct += (logits.argmax(dim=1) == target).sum()
    return loss_sum, correct
