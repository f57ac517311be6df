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
from torch.nn import functional as F

from cnnlab.engine.averaging import WeightAverage
from cnnlab.engine.batches import ImageBatches, as_batches
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.memory import evaluation_chunk
from cnnlab.errors import CnnlabError

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class NonFiniteLossError(CnnlabError):
    """Training produced a NaN or infinite loss; names the epoch and step."""

    def __init__(self, epoch: int, step: int, value: float, kept: str | None = None):
        # The engine keeps no files, so it claims none; the run layer says what it kept (``kept``).
        super().__init__(f"non-finite loss ({value}) at epoch {epoch}, step {step}: training stopped"
                         f"{'; ' + kept if kept else ''} (try a lower learning rate)")
        self.epoch, self.step, self.value = epoch, step, value


class DeterminismError(CnnlabError):
    """--deterministic asked for, and an operation has no deterministic implementation."""


def _deterministic_guard(exc: RuntimeError) -> None:
    text = str(exc)
    if "deterministic" in text:
        raise DeterminismError("--deterministic: torch refused an operation: "
                               + text.strip().splitlines()[0]) from None


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
    # Not checkpointed: set when several processes train this model (cnnlab.engine.data_parallel.Parallel).
    parallel: object | None = None


class Callback(Protocol):
    """What the engine reports to a presenter; it prints nothing itself."""

    def note(self, text: str) -> None: ...
    def on_train_begin(self, facts: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...
    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None: ...
    def on_epoch_end(self, record: dict) -> None: ...


def autocast(device: torch.device, precision: str):
    """bf16 autocast (matmuls and convolutions in bfloat16, weights kept in float32), or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(model, optimizer, scheduler, xb, yb, precision: str = "fp32", label_smoothing: float = 0.0,
               average: WeightAverage | None = None):
    """One optimisation step; returns the batch's mean loss and correct count (on device)."""
    with autocast(xb.device, precision):
        logits = model(xb).float()
        loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if average is not None:
        average.update(model)
    return loss.detach(), (logits.detach().argmax(dim=1) == yb).sum()


def _check_finite(losses: torch.Tensor, start: int, stop: int, epoch: int) -> None:
    """Raise for the first non-finite loss among steps [start, stop)."""
    window = losses[start:stop]
    if not bool(torch.isfinite(window).all()):
        step = start + int(torch.nonzero(~torch.isfinite(window))[0])
        raise NonFiniteLossError(epoch, step + 1, float(losses[step]))


def train_epoch(state: TrainState, data: TensorData, config: TrainConfig,
                callback: Callback | None = None, progress_every: int = 25) -> dict:
    """Train one epoch over a seeded shuffle; returns loss and accuracy averaged as Keras does."""
    if state.parallel is not None:  # several processes: each trains on its part of every batch
        return state.parallel.train_epoch(state, data, config, callback, progress_every)
    model, n, bs = state.model, len(data.y_train), config.batch_size
    steps = math.ceil(n / bs)
    device = data.x_train.device
    # Positions live where the batch source gathers: the device, or the host for a memory-mapped cache.
    order = torch.randperm(n, generator=state.shuffle_generator).to(data.x_train.index_device)
    losses = torch.zeros(steps, device=device)  # per-step batch-mean losses, read rarely
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    checked = 0
    model.train()
    for step in range(steps):
        idx = order[step * bs:(step + 1) * bs]
        loss, hits = train_step(model, state.optimizer, state.scheduler, data.x_train.take(idx), data.y_train[idx],
                                config.precision, config.label_smoothing, state.average)
        losses[step] = loss
        loss_sum += loss * len(idx)  # weighted by batch size, as Keras averages
        correct += hits
        # Read back only every few steps (a sync on a GPU); the buffer still names the exact step.
        if (step + 1) % progress_every == 0 or step + 1 == steps:
            _check_finite(losses, checked, step + 1, state.epoch + 1)
            checked = step + 1
            if callback is not None:
                seen = min((step + 1) * bs, n)
                callback.on_progress(step + 1, steps, float(loss_sum) / seen, int(correct) / seen)
    return {"loss": float(loss_sum) / n, "accuracy": int(correct) / n}


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


def evaluate_tensors(model, x: ImageBatches | torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
                     precision: str = "fp32") -> dict:
    """Mean cross-entropy and accuracy over ``x``, in eval mode (dropout off)."""
    loss_sum, correct = evaluation_sums(model, x, y, batch_size, precision)
    count = max(len(y), 1)
    return {"loss": float(loss_sum) / count, "accuracy": int(correct) / count}


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
    # Several processes: each scores its part of the validation set, and the sums are added.
    evaluate = evaluate_tensors if state.parallel is None else state.parallel.evaluate
    weights = state.average.applied(state.model) if state.average is not None else contextlib.nullcontext()
    with weights:
        val = evaluate(state.model, data.x_val, data.y_val, config.eval_batch_size, config.precision)
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
            _deterministic_guard(exc)
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
