"""How many processes train one model: the seam between the epoch loop and DDP.

As PyTorch Lightning's fit loop delegates to a Strategy, :func:`cnnlab.engine.loop.train_epoch`
is one loop, and a strategy says only what differs when several processes share the work:
which part of each batch this process takes, how its loss is scaled, how the running sums
are reduced, and how an evaluation's sums are added up. :class:`SingleProcess` is the
default; :class:`cnnlab.engine.data_parallel.DataParallel` is the one for torchrun.
"""

from __future__ import annotations

import contextlib

import torch

from cnnlab.engine.batches import ImageBatches
from cnnlab.engine.evaluation import evaluation_sums
from cnnlab.engine.steps import NonFiniteLossError


class EpochSums:
    """An epoch's running sums, kept on the device and read only at the progress points.

    ``losses``: ``(steps,)`` each step's loss as :func:`cnnlab.engine.steps.train_step`
    returned it; ``loss_sum``: the loss summed over the images seen (float32 on one process,
    as Keras sums; float64 over several); ``correct``: the images classified right.
    """

    def __init__(self, steps: int, device: torch.device, dtype: torch.dtype):
        self.losses = torch.zeros(steps, device=device)
        self.loss_sum = torch.zeros((), dtype=dtype, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)


class SingleProcess:
    """One process trains on whole batches: the loss is the batch mean, the sums are its own."""

    world = 1

    def forward_module(self, model: torch.nn.Module) -> torch.nn.Module:
        """What the training step calls: the model itself."""
        return model

    def part(self, count: int) -> tuple[int, int]:
        """``[start, stop)`` of a batch of ``count`` images that this process trains on: all of it."""
        return 0, count

    def divisor(self, count: int) -> float | None:
        """The loss's divisor (None: the batch mean, see :func:`cnnlab.engine.steps.train_step`)."""
        return None

    def new_sums(self, steps: int, device: torch.device) -> EpochSums:
        return EpochSums(steps, device, torch.float32)

    def add(self, sums: EpochSums, step: int, loss: torch.Tensor, hits: torch.Tensor, images: int) -> None:
        """Record a step: its mean loss, weighted by its batch size (as Keras averages), and its hits."""
        sums.losses[step] = loss
        sums.loss_sum += loss * images
        sums.correct += hits

    def totals(self, sums: EpochSums, start: int, stop: int, counts: list[int], epoch: int) -> tuple[float, int]:
        """Raise for the first non-finite loss among steps ``[start, stop)``; the summed loss and hits so far.

        ``counts``: each of those steps' whole batch size (unused here: the losses are means).
        """
        window = sums.losses[start:stop]
        if not bool(torch.isfinite(window).all()):
            step = start + int(torch.nonzero(~torch.isfinite(window))[0])
            raise NonFiniteLossError(epoch, step + 1, float(sums.losses[step]))
        return float(sums.loss_sum), int(sums.correct)

    def guard(self):
        """A context around the epoch: nothing to guard with one process."""
        return contextlib.nullcontext()

    def end_epoch(self) -> None:
        """After the last step: nothing to synchronise."""

    def evaluation_totals(self, model, x: ImageBatches, y: torch.Tensor, batch_size: int,
                          precision: str, objective=None, tally=None) -> tuple[float, int]:
        """Summed loss (``objective``'s: see :func:`evaluation_sums`) and correct count over the whole of ``x``
        (``tally``: the compiled metrics, counted on the way)."""
        loss_sum, correct = evaluation_sums(model, x, y, batch_size, precision, objective, tally)
        return float(loss_sum), int(correct)

    def reduce_counts(self, counts: torch.Tensor) -> torch.Tensor:
        """The compiled metrics' counts over every process: one process's own."""
        return counts

    def reseed(self, epoch: int = 0) -> None:
        """After a resume with another number of processes: one process keeps the run's own stream."""
