"""The training loop: shuffle, train, validate, record, once per epoch.

Batches are gathered from the compact pixels and converted one batch at a time
(``cnnlab.engine.batches``; no DataLoader, no per-sample collation); loss and accuracy
accumulate on the device and are read once per epoch, and at the progress interval the
caller asks for.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch

from cnnlab.engine.averaging import WeightAverage
from cnnlab.engine.batches import ImageBatches, as_batches
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.steps import deterministic_guard, train_step
from cnnlab.engine.strategy import SingleProcess


@dataclass
class TensorData:
    """Training and validation data for the training device.

    ``x_*``: batch sources (:mod:`cnnlab.engine.batches`: the pixels kept compact, each batch
    gathered and converted to float32 ``(B, C, H, W)`` or ``(B, D)`` as it is used; a tensor given
    here is taken as network input already); ``y_*``: int64 class indices on the device.
    """

    x_train: ImageBatches
    y_train: torch.Tensor
    x_val: ImageBatches | None = None
    y_val: torch.Tensor | None = None

    def __post_init__(self):
        self.x_train = as_batches(self.x_train)
        self.x_val = None if self.x_val is None else as_batches(self.x_val)


@dataclass
class TrainState:
    """Everything a checkpoint holds: enough to continue exactly where training stopped."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    shuffle_generator: torch.Generator
    epoch: int = 0                      # epochs completed
    history: list[dict] = field(default_factory=list)
    best: float | None = None           # early stopping: best monitored value so far
    wait: int = 0                       # epochs since it improved
    stopped_early: bool = False
    average: WeightAverage | None = None  # ema_momentum: the weights' moving average
    # Not checkpointed: how many processes train this model (cnnlab.engine.data_parallel.DataParallel under torchrun).
    strategy: SingleProcess = field(default_factory=SingleProcess)


class Callback(Protocol):
    """What the engine reports to a presenter; it prints nothing itself."""

    def note(self, text: str) -> None: ...
    def on_train_begin(self, facts: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...
    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None: ...
    def on_epoch_end(self, record: dict) -> None: ...


def train_epoch(state: TrainState, data: TensorData, config: TrainConfig,
                callback: Callback | None = None, progress_every: int = 25) -> dict:
    """Train one epoch over a seeded shuffle; returns loss and accuracy averaged over the images, as Keras does.

    The strategy (``state.strategy``) says which part of each batch this process trains on and
    how the sums are reduced; losses stay on the device and are read every ``progress_every``
    steps (a sync on a GPU), where a non-finite one is found by its exact step.
    """
    strategy, n, bs = state.strategy, len(data.y_train), config.batch_size
    steps = math.ceil(n / bs)
    # (n,), the same on every process; where the batch source gathers: the device, or the host for a mapped cache
    order = torch.randperm(n, generator=state.shuffle_generator).to(data.x_train.index_device)
    sums = strategy.new_sums(steps, data.x_train.device)
    forward, checked, totals = strategy.forward_module(state.model), 0, (0.0, 0)
    forward.train()
    with strategy.guard():
        for step in range(steps):
            count = min(bs, n - step * bs)  # the whole batch; the last one may be short
            lo, hi = strategy.part(count)
            idx = order[step * bs + lo:step * bs + hi]  # (hi - lo,) this process's images of the batch
            loss, hits = train_step(forward, state.optimizer, state.scheduler, data.x_train.take(idx),
                                    data.y_train[idx], config.precision, config.label_smoothing, state.average,
                                    strategy.divisor(count))
            strategy.add(sums, step, loss, hits, len(idx))
            if (step + 1) % progress_every == 0 or step + 1 == steps:
                counts = [min(bs, n - s * bs) for s in range(checked, step + 1)]
                totals = strategy.totals(sums, checked, step + 1, counts, state.epoch + 1)
                checked = step + 1
                if callback is not None:
                    seen = min(checked * bs, n)
                    callback.on_progress(checked, steps, totals[0] / seen, totals[1] / seen)
        strategy.end_epoch()
    return {"loss": totals[0] / n, "accuracy": totals[1] / n}


def evaluate_tensors(model, x: ImageBatches | torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
                     precision: str = "fp32", strategy: SingleProcess | None = None) -> dict:
    """Mean cross-entropy and accuracy over ``x``, in eval mode (dropout off), over every process's part."""
    loss_sum, correct = (strategy or SingleProcess()).evaluation_totals(model, as_batches(x), y, batch_size,
                                                                          precision)
    count = max(len(y), 1)
    return {"loss": loss_sum / count, "accuracy": correct / count}


def _improved(state: TrainState, value: float, monitor: str) -> bool:
    if state.best is None:
        return True
    return value < state.best if monitor.endswith("loss") else value > state.best


def _early_stop(state: TrainState, record: dict, config: TrainConfig) -> None:
    monitor = config.early_stopping
    if not monitor or record.get(monitor) is None:
        return
    if _improved(state, record[monitor], monitor):
        state.best, state.wait = record[monitor], 0
    else:
        state.wait += 1
        state.stopped_early = state.wait > config.patience


def _validate(state: TrainState, data: TensorData, config: TrainConfig) -> dict:
    """val_loss and val_accuracy (None without validation data), of the averaged weights if any."""
    if data.x_val is None or not len(data.y_val):
        return {"val_loss": None, "val_accuracy": None}
    weights = state.average.applied(state.model) if state.average is not None else contextlib.nullcontext()
    with weights:  # several processes: each scores its part of the validation set, and the sums are added
        val = evaluate_tensors(state.model, data.x_val, data.y_val, config.eval_batch_size, config.precision,
                               state.strategy)
    return {"val_loss": val["loss"], "val_accuracy": val["accuracy"]}


def run_epochs(state: TrainState, data: TensorData, config: TrainConfig,
               callback: Callback | None = None, on_epoch_saved=None) -> list[dict]:
    """Train from ``state.epoch`` to ``config.epochs``; returns the history (one dict per epoch).

    ``on_epoch_saved(state, record)`` runs after each epoch (the run layer saves a
    checkpoint there); training stops early when the monitored metric stalls.
    """
    steps = math.ceil(len(data.y_train) / config.batch_size)
    while state.epoch < config.epochs and not state.stopped_early:
        if callback is not None:
            callback.on_epoch_begin(state.epoch + 1, config.epochs, steps)
        start = time.perf_counter()
        try:
            record = {"epoch": state.epoch + 1, **train_epoch(state, data, config, callback)}
        except RuntimeError as exc:
            deterministic_guard(exc)
            raise
        train_seconds = time.perf_counter() - start
        record.update(_validate(state, data, config))
        seconds = time.perf_counter() - start
        record.update(time=seconds, train_time=train_seconds,
                      images_per_second=len(data.y_train) / train_seconds,
                      lr=state.optimizer.param_groups[0]["lr"])
        state.epoch += 1
        state.history.append(record)
        _early_stop(state, record, config)
        if state.average is not None and (state.epoch >= config.epochs or state.stopped_early):
            state.average.copy_to(state.model)  # the final weights are the average (Keras' use_ema)
        if on_epoch_saved is not None:
            on_epoch_saved(state, record)
        if callback is not None:
            callback.on_epoch_end(record)
    return state.history
