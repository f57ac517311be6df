"""One model trained over several processes with DistributedDataParallel, as one process would train it:
the :class:`DataParallel` strategy of the one epoch loop (:mod:`cnnlab.engine.loop`).

Keras' meaning is kept: ``batch_size`` is the global batch. Every rank draws the same
seeded permutation of the training set and takes its contiguous part of each batch
(batch/N images; a short last batch is split as evenly as possible, so no image is seen
twice or left out, whatever N is). Each rank backpropagates its summed loss divided by
count/N: DDP's average over the N ranks is then the gradient of the mean over the whole
batch of ``count`` images, the gradient one process computes. Results equal the single
process's up to the order of float additions (and the dropout draws, which each rank
makes for its own images).

Losses and correct counts stay on the device and are all-reduced once per progress
interval (no per-step host synchronisation); validation is the sum over the ranks' parts
of the set, divided by its size, so metrics are exact over the whole set, never an
average of averages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from cnnlab.engine import distributed
from cnnlab.engine.batches import ImageBatches, as_batches
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.evaluation import evaluation_sums
from cnnlab.engine.steps import NonFiniteLossError
from cnnlab.engine.strategy import EpochSums, SingleProcess

if TYPE_CHECKING:
    from cnnlab.engine.loop import TrainState


def shard(count: int, rank: int, world: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank`` among ``count`` items split as evenly as possible.

    The first ``count % world`` ranks take one item more; a rank may take none (a last
    batch smaller than the number of processes).
    """
    base, extra = divmod(count, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """A seed for rank ``rank``'s dropout draws, independent of every other rank's and run's."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, np.uint64)[0] >> 1)


class DataParallel(SingleProcess):
    """The strategy under torchrun: the DDP wrapper of a model, this rank's part of every batch and of
    every evaluation, and the all-reduce of the sums."""

    def __init__(self, model: torch.nn.Module, device: torch.device, seed: int):
        self.rank, self.world, self.seed = distributed.rank(), distributed.world_size(), seed
        ids = [device.index] if device.type == "cuda" else None
        # Construction broadcasts rank 0's weights and buffers: every rank starts from the same model.
        with distributed.peers_guard():
            self.module = DistributedDataParallel(model, device_ids=ids)

    def reseed(self, epoch: int = 0) -> None:
        """Give ranks other than 0 dropout draws of their own (rank 0 keeps the run's seeded stream)."""
        if self.rank:
            torch.manual_seed(rank_seed(self.seed, self.rank, epoch))

    def forward_module(self, model: torch.nn.Module) -> torch.nn.Module:
        return self.module

    def part(self, count: int) -> tuple[int, int]:
        return shard(count, self.rank, self.world)

    def divisor(self, count: int) -> float:
        # DDP averages the N ranks' gradients: each rank's sum over count/N makes that average the
        # gradient of the mean loss over all ``count`` images of the batch, as one process computes it.
        return count / self.world

    def new_sums(self, steps: int, device: torch.device) -> EpochSums:
        return EpochSums(steps, device, torch.float64)

    def add(self, sums: EpochSums, step: int, loss: torch.Tensor, hits: torch.Tensor, images: int) -> None:
        """Record a step: this rank's summed loss over its images, and its hits."""
        sums.losses[step] = loss
        sums.loss_sum += loss
        sums.correct += hits

    def totals(self, sums: EpochSums, start: int, stop: int, counts: list[int], epoch: int) -> tuple[float, int]:
        """All-reduce steps [start, stop) and the running totals (one collective); raise on a non-finite loss.

        Returns the whole job's ``(loss sum, correct count)`` so far, the same on every rank,
        so that every rank stops at the same step when a loss is not finite.
        """
        packed = torch.cat([sums.losses[start:stop].double(), sums.loss_sum.view(1), sums.correct.double().view(1)])
        dist.all_reduce(packed)  # (stop - start + 2,) summed over the ranks
        means = packed[:-2].cpu() / torch.tensor(counts, dtype=torch.float64)  # each step's mean over its batch
        bad = ~torch.isfinite(means)
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0])
            raise NonFiniteLossError(epoch, start + first + 1, float(means[first]))
        return float(packed[-2]), int(packed[-1])

    def guard(self):
        return distributed.peers_guard()

    def end_epoch(self) -> None:
        """Rank 0's buffers (batchnorm statistics) on every rank: the model validated and saved is one model."""
        for buffer in self.module.module.buffers():
            dist.broadcast(buffer, src=0)

    @torch.no_grad()
    def evaluation_totals(self, model, x: ImageBatches, y: torch.Tensor, batch_size: int,
                          precision: str, objective=None, tally=None) -> tuple[float, int]:
        """Each rank scores its part of ``x``; the sums are all-reduced, so every rank has the whole set's
        (``tally``'s counts are this rank's: :meth:`reduce_counts` adds them up when they are read)."""
        lo, hi = shard(len(y), self.rank, self.world)
        loss_sum, correct = evaluation_sums(model, as_batches(x).part(lo, hi), y[lo:hi], batch_size, precision,
                                            objective, tally)
        packed = torch.stack([loss_sum, correct.double()])  # (2,) this rank's sums
        with distributed.peers_guard():
            dist.all_reduce(packed)
        return float(packed[0]), int(packed[1])

    def reduce_counts(self, counts: torch.Tensor) -> torch.Tensor:
        """The compiled metrics' counts summed over the ranks (one collective, at an epoch's end)."""
        counts = counts.clone()
        with distributed.peers_guard():
            dist.all_reduce(counts)
        return counts


def parallelize(state: TrainState, config: TrainConfig) -> None:
    """Under torchrun, wrap ``state``'s model for data-parallel training; a single process is left as it is."""
    if not distributed.active():
        return
    distributed.check_batch(config.batch_size)
    device = next(iter(state.model.state_dict().values())).device
    state.strategy = DataParallel(state.model, device, config.seed)
    state.strategy.reseed()
