"""How long an epoch will take, timed on a few warm-up steps of a copy of the model."""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable

import torch

from cnnlab.engine.config import TrainConfig
from cnnlab.engine.loop import TensorData, TrainState
from cnnlab.engine.optim import make_optimizer, parameter_groups
from cnnlab.engine.steps import Objective, train_step


def estimate_epoch_seconds(state: TrainState, data: TensorData, config: TrainConfig,
                           windows: int = 4, window: int = 3, warmup: int = 2, processes: int = 1) -> float:
    """Seconds per epoch, from ``windows`` runs of ``window`` training steps timed after ``warmup`` steps.

    A step's time is the median over the windows of their mean step time: a window averages
    over a passing slow step (another process on the cores), and the median leaves out a
    window slowed by first calls (kernel selection, memory touched for the first time),
    which inflated the plain mean over a few steps this replaced. The steps run on a copy of
    the model, on a batch gathered as the loop gathers its batches; the run is untouched
    (its RNG state is restored). With ``processes`` training together, a step is one
    process's part of the batch (the time to all-reduce the gradients is not counted).
    """
    rng = torch.get_rng_state()
    model = copy.deepcopy(state.model)
    optimizer = make_optimizer(parameter_groups(model, config), config)
    n, bs = len(data.y_train), max(config.batch_size // processes, 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:bs].to(data.x_train.index_device)
    xb, yb = data.x_train.take(order), data.y_train[order]
    objective = Objective.of(config, model)
    model.train()
    try:
        for _ in range(warmup):
            train_step(model, optimizer, None, xb, yb, config.precision, objective)
        times = _step_seconds(lambda: train_step(model, optimizer, None, xb, yb, config.precision, objective),
                              xb.device, windows * window)
    finally:
        torch.set_rng_state(rng)
    per_step = statistics.median(sum(times[k:k + window]) / window for k in range(0, len(times), window))
    val = 0 if data.y_val is None else len(data.y_val)
    # Validation runs forward only: about a third of a training step's work per image.
    return per_step * math.ceil(data.train_size / (bs * processes)) + per_step / bs * val / processes / 3


def _step_seconds(step: Callable[[], object], device: torch.device, count: int) -> list[float]:
    """The time of each of ``count`` calls of ``step``.

    On a GPU, CUDA events recorded between the steps time them with one synchronisation
    at the end (none per step); on the CPU, where every operation is synchronous, the clock.
    """
    if device.type == "cuda":
        events = [torch.cuda.Event(enable_timing=True) for _ in range(count + 1)]
        events[0].record()
        for event in events[1:]:
            step()
            event.record()
        torch.cuda.synchronize(device)
        return [start.elapsed_time(end) / 1000 for start, end in zip(events, events[1:])]
    times = [time.perf_counter()]
    for _ in range(count):
        step()
        times.append(time.perf_counter())
    return [end - start for start, end in zip(times, times[1:])]
