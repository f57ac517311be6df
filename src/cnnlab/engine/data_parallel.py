"""One model trained over several processes with DistributedDataParallel, as one process would train it.

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

import math

import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from cnnlab.engine import distributed
from cnnlab.engine.batches import ImageBatches, as_batches
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.loop import NonFiniteLossError, TensorData, TrainState, autocast, evaluation_sums


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


class Parallel:
    """The DDP wrapper of a model, and this rank's part of every batch and of the validation set."""

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

    def train_epoch(self, state: TrainState, data: TensorData, config: TrainConfig, callback=None,
                    progress_every: int = 25) -> dict:
        """One epoch over the global shuffle, this rank taking its part of each batch; the whole epoch's metrics."""
        n, bs, device = len(data.y_train), config.batch_size, data.x_train.device
        steps = math.ceil(n / bs)
        # (n,), the same on every rank; on the host for a memory-mapped cache, which gathers there
        order = torch.randperm(n, generator=state.shuffle_generator).to(data.x_train.index_device)
        sums = torch.zeros(steps, device=device)  # (steps,) this rank's summed loss per step, read rarely
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        checked, totals = 0, None
        self.module.train()
        with distributed.peers_guard():
            for step in range(steps):
                count = min(bs, n - step * bs)  # the global batch; the last one may be short
                lo, hi = shard(count, self.rank, self.world)
                idx = order[step * bs + lo:step * bs + hi]  # (hi - lo,) this rank's images of the batch
                loss, hits = self._step(state, data.x_train.take(idx), data.y_train[idx], count, config)
                sums[step] = loss
                loss_sum += loss
                correct += hits
                if (step + 1) % progress_every == 0 or step + 1 == steps:
                    totals = self._check(sums, loss_sum, correct, checked, step + 1, n, bs, state.epoch + 1)
                    checked = step + 1
                    if callback is not None:
                        seen = min(checked * bs, n)
                        callback.on_progress(checked, steps, totals[0] / seen, totals[1] / seen)
            self.sync_buffers()
        return {"loss": totals[0] / n, "accuracy": totals[1] / n}

    def _step(self, state: TrainState, xb: torch.Tensor, yb: torch.Tensor, count: int, config: TrainConfig):
        """One optimisation step on this rank's images; returns their summed loss and correct count."""
        with autocast(xb.device, config.precision):
            logits = self.module(xb).float()  # (images of this rank, classes)
            loss = F.cross_entropy(logits, yb, reduction="sum", label_smoothing=config.label_smoothing)
        state.optimizer.zero_grad(set_to_none=True)
        # DDP averages the N ranks' gradients: each rank's sum over count/N makes that average the
        # gradient of the mean loss over all ``count`` images of the batch, as one process computes it.
        (loss / (count / self.world)).backward()
        state.optimizer.step()
        if state.scheduler is not None:
            state.scheduler.step()
        if state.average is not None:
            state.average.update(state.model)
        return loss.detach(), (logits.detach().argmax(dim=1) == yb).sum()

    def _check(self, sums, loss_sum, correct, start: int, stop: int, n: int, bs: int, epoch: int):
        """All-reduce steps [start, stop) and the running totals (one collective); raise on a non-finite loss.

        Returns the whole job's ``(loss sum, correct count)`` so far, the same on every rank,
        so that every rank stops at the same step when a loss is not finite.
        """
        packed = torch.cat([sums[start:stop].double(), loss_sum.view(1), correct.double().view(1)])
        dist.all_reduce(packed)  # (stop - start + 2,) summed over the ranks
        counts = torch.tensor([min(bs, n - s * bs) for s in range(start, stop)], dtype=torch.float64)
        means = packed[:-2].cpu() / counts  # (stop - start,) each step's mean loss over its global batch
        bad = ~torch.isfinite(means)
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0])
            raise NonFiniteLossError(epoch, start + first + 1, float(means[first]))
        return float(packed[-2]), int(packed[-1])

    def sync_buffers(self) -> None:
        """Rank 0's buffers (batchnorm statistics) on every rank: the model validated and saved is one model."""
        for buffer in self.module.module.buffers():
            dist.broadcast(buffer, src=0)

    @torch.no_grad()
    def evaluate(self, model, x: ImageBatches | torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
                 precision: str = "fp32") -> dict:
        """Loss and accuracy over the whole of ``x``: each rank scores its part, the sums are all-reduced."""
        lo, hi = shard(len(y), self.rank, self.world)
        loss_sum, correct = evaluation_sums(model, as_batches(x).part(lo, hi), y[lo:hi], batch_size, precision)
        packed = torch.stack([loss_sum, correct.double()])  # (2,) this rank's sums
        with distributed.peers_guard():
            dist.all_reduce(packed)
        count = max(len(y), 1)
        return {"loss": float(packed[0]) / count, "accuracy": int(packed[1]) / count}


def parallelize(state: TrainState, config: TrainConfig) -> None:
    """Under torchrun, wrap ``state``'s model for data-parallel training; a single process is left as it is."""
    if not distributed.active():
        return
    distributed.check_batch(config.batch_size)
    device = next(iter(state.model.state_dict().values())).device
    state.parallel = Parallel(state.model, device, config.seed)
    state.parallel.reseed()
