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
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from cnnlab.engine.averaging import WeightAverage
from cnnlab.engine.batches import ImageBatches, as_batches
from cnnlab.engine.callbacks import CallbackList, TrainingCallback, built_in
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.flips import AlternatingFlips
from cnnlab.engine.lookahead import Lookahead
from cnnlab.engine.metric_counts import tally_for
from cnnlab.engine.records import EpochRecord
from cnnlab.engine.steps import Objective, deterministic_guard, train_step
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
    w_train: torch.Tensor | None = None  # float32 (N,): each image's weight in the loss (None: all 1)
    drop_remainder: bool = False  # an epoch leaves out its short last batch (where there is a whole one)

    def __post_init__(self):
        self.x_train = as_batches(self.x_train)
        self.x_val = None if self.x_val is None else as_batches(self.x_val)

    @property
    def train_size(self) -> int:
        """Images in one epoch."""
        return len(self.y_train)

    def steps(self, batch_size: int) -> int:
        """Steps in one epoch; the last batch may be short (one short batch where the data is smaller),
        unless ``drop_remainder`` leaves it out."""
        if self.drop_remainder and len(self.y_train) >= batch_size:
            return len(self.y_train) // batch_size
        return math.ceil(len(self.y_train) / batch_size)

    def epoch_batches(self, state: TrainState, batch_size: int):
        """One epoch's batches over a seeded shuffle: ``(count, x, y, weights)``, ``count`` the whole batch's
        size, ``x``/``y``/``weights`` this process's part of it (the strategy's ``part``)."""
        n = len(self.y_train)
        # (n,), the same on every process; where the batch source gathers: the device, or the host for a mapped cache
        order = torch.randperm(n, generator=state.shuffle_generator).to(self.x_train.index_device)
        for start in range(0, self.steps(batch_size) * batch_size, batch_size):
            count = min(batch_size, n - start)  # the whole batch; the last one may be short
            lo, hi = state.strategy.part(count)
            idx = order[start + lo:start + hi]  # (hi - lo,) this process's images of the batch
            if state.flips is not None:
                state.flips.plan(idx, state.epoch)
            yield count, self.x_train.take(idx), self.y_train[idx], None if self.w_train is None else self.w_train[idx]


@dataclass
class TrainState:
    """Everything a checkpoint holds: enough to continue exactly where training stopped."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    shuffle_generator: torch.Generator
    epoch: int = 0                      # epochs completed
    history: list[EpochRecord] = field(default_factory=list)
    best: float | None = None           # early stopping: best monitored value so far
    wait: int = 0                       # epochs since it improved
    stopped_early: bool = False
    average: WeightAverage | None = None  # ema_momentum: the weights' moving average
    lookahead: Lookahead | None = None    # lookahead_sync_period: the slow weights
    # Not checkpointed (the seed, the image and the epoch decide it): alternating flips' plan.
    flips: AlternatingFlips | None = None
    # Not checkpointed: how many processes train this model (cnnlab.engine.data_parallel.DataParallel under torchrun).
    strategy: SingleProcess = field(default_factory=SingleProcess)
    # Not checkpointed: compile's metrics beyond accuracy (cnnlab.engine.metric_counts), counted every epoch.
    metrics: tuple = ()


def train_epoch(state: TrainState, data: TensorData, config: TrainConfig,
                callback: TrainingCallback | None = None, progress_every: int = 25) -> dict:
    """Train one epoch; returns loss and accuracy averaged over the images, as Keras does, and how many.

    ``data`` hands out the epoch's batches: :class:`TensorData` over a seeded shuffle, a stream
    (:class:`cnnlab.engine.streams.StreamData`) in the order its source gives them. The strategy
    (``state.strategy``) says which part of each batch this process trains on and how the sums
    are reduced; losses stay on the device and are read every ``progress_every`` steps (a sync
    on a GPU), where a non-finite one is found by its exact step.
    """
    strategy, steps = state.strategy, data.steps(config.batch_size)
    objective = Objective.of(config, state.model)
    summed = config.loss_reduction == "sum"  # Keras' "sum": the batch's losses added, not averaged
    sums = strategy.new_sums(steps, data.x_train.device)
    forward, checked, totals, counts = strategy.forward_module(state.model), 0, (0.0, 0), []
    tally = tally_for(state.model, state.metrics, data.x_train.device)  # counted on the device, read at the end
    forward.train()
    with strategy.guard():
        for step, (count, xb, yb, wb) in enumerate(data.epoch_batches(state, config.batch_size)):
            loss, hits = train_step(forward, state.optimizer, state.scheduler, xb, yb, config.precision, objective,
                                    state.average, strategy.divisor(count), wb, tally,
                                    loss_scale=count if summed else 1.0, lookahead=state.lookahead)
            strategy.add(sums, step, loss, hits, len(yb))
            counts.append(count)  # known on the host: no sync
            if (step + 1) % progress_every == 0 or step + 1 == steps:
                totals = strategy.totals(sums, checked, step + 1, counts[checked:], state.epoch + 1)
                checked = step + 1
                if callback is not None:
                    seen = sum(counts)
                    callback.on_progress(checked, steps, totals[0] / seen, totals[1] / seen)
        if checked < len(counts):  # a stream's epoch cut short where its source's pass ended, as Keras cuts it
            totals = strategy.totals(sums, checked, len(counts), counts[checked:], state.epoch + 1)
        strategy.end_epoch()
    n = sum(counts)
    scores = tally.values(strategy.reduce_counts) if tally is not None else {}
    return {"loss": totals[0] / n, "accuracy": totals[1] / n, "images": n, "scores": scores}


def evaluate_tensors(model, x: ImageBatches | torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
                     precision: str = "fp32", strategy: SingleProcess | None = None,
                     objective: Objective | None = None, metrics=()) -> dict:
    """Mean loss (cross-entropy, or ``objective``'s) and accuracy over ``x``, in eval mode (dropout off),
    over every process's part; ``scores``: the values of ``metrics`` (compile's, by name)."""
    strategy = strategy or SingleProcess()
    tally = tally_for(model, metrics, as_batches(x).device)
    loss_sum, correct = strategy.evaluation_totals(model, as_batches(x), y, batch_size, precision, objective, tally)
    count = max(len(y), 1)
    scores = tally.values(strategy.reduce_counts) if tally is not None else {}
    return {"loss": loss_sum / count, "accuracy": correct / count, "scores": scores}


def _validate(state: TrainState, data: TensorData, config: TrainConfig) -> tuple[float | None, float | None, dict]:
    """val_loss and val_accuracy (None without validation data) and the compiled metrics' scores, of the
    averaged weights if any."""
    if data.x_val is None or not len(data.y_val):
        return None, None, {}
    weights = state.average.applied(state.model) if state.average is not None else contextlib.nullcontext()
    with weights:  # several processes: each scores its part of the validation set, and the sums are added
        val = evaluate_tensors(state.model, data.x_val, data.y_val, config.eval_batch_size, config.precision,
                               state.strategy, Objective.of(config, state.model), state.metrics)
    return val["loss"], val["accuracy"], val["scores"]


def limit_training(model: torch.nn.Module, epoch: int) -> None:
    """Layers with ``trainable_epochs: N`` (the builder marks their modules) train in epochs 1 to N only: from
    epoch N + 1 their weights take no gradient, so the optimizer skips them (no update, no decay)."""
    for module in model.modules():
        for param in getattr(module, "limited_weights", ()):
            param.requires_grad_(epoch <= module.trainable_epochs)


def run_epochs(state: TrainState, data: TensorData, config: TrainConfig,
               callbacks: Sequence[TrainingCallback] = ()) -> list[EpochRecord]:
    """Train from ``state.epoch`` to ``config.epochs``, or until a callback stops it (``state.stopped_early``);
    returns the history (one :class:`EpochRecord` per epoch).

    One list of callbacks sees every epoch: the built-in ones ``config`` asks for (early
    stopping, the weights' average) first, then ``callbacks`` in order (a run's recorder
    saves its checkpoint there; see :mod:`cnnlab.engine.callbacks`).
    """
    hooks = CallbackList([*built_in(config), *callbacks])
    steps = data.steps(config.batch_size)
    while state.epoch < config.epochs and not state.stopped_early:
        hooks.on_epoch_begin(state.epoch + 1, config.epochs, steps)
        limit_training(state.model, state.epoch + 1)
        start = time.perf_counter()
        try:
            scores = train_epoch(state, data, config, hooks)
        except RuntimeError as exc:
            deterministic_guard(exc)
            raise
        train_seconds = time.perf_counter() - start
        val_loss, val_accuracy, val_scores = _validate(state, data, config)
        seconds = time.perf_counter() - start
        record = EpochRecord(state.epoch + 1, scores["loss"], scores["accuracy"], val_loss, val_accuracy,
                             seconds, train_seconds, scores["images"] / train_seconds,
                             state.optimizer.param_groups[0]["lr"],
                             {**scores["scores"], **{f"val_{name}": value for name, value in val_scores.items()}})
        state.epoch += 1
        state.history.append(record)
        hooks.on_epoch_end(record, state)
    return state.history
