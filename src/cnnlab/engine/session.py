"""Training a model, in one sequence: seed, build, prepare the tensors and state, run the epochs.

:func:`train_model` is that sequence, shared by the Python API (``Model.fit``) and
the run directories (``cnnlab.runs``); the rest of this module are its parts: the
device, seeds, tensors, a fresh state, and a time estimate.
"""

from __future__ import annotations

import copy
import math
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from cnnlab.engine.averaging import WeightAverage
from cnnlab.engine.batches import compact_pixels, image_batches, to_network_input
from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.engine.data_parallel import parallelize
from cnnlab.engine.distributed import local_device
from cnnlab.engine.heap import retained_heap
from cnnlab.engine.loop import Callback, TensorData, TrainState, run_epochs, train_step
from cnnlab.engine.optim import make_optimizer, make_schedule, parameter_groups
from cnnlab.engine.precision import session_precision
from cnnlab.net.data_init import initialise_from_data

if TYPE_CHECKING:
    from cnnlab.data.split import Split


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when present, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA GPU "
                          f"(torch {torch.__version__}; see the README for a GPU build)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device '{name}'; expected auto, cpu or cuda")
    return local_device(torch.device(name))  # under torchrun, CUDA is the GPU of LOCAL_RANK


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's random."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic algorithms; an op without one then raises naming itself."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)


def images_to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (scaled to [0, 1]) or float images ``(N, H, W, C)`` -> float32 ``(N, C, H, W)``.

    The result is channels-last in memory, the layout the CPU convolutions run fastest on;
    flat ``(N, D)`` input passes through. All of it at once, as float32: training converts
    batch by batch instead (:mod:`cnnlab.engine.batches`), with the same conversion.
    """
    return to_network_input(compact_pixels(images)).to(device)


def class_indices(labels) -> np.ndarray:
    """Integer labels ``(N,)`` or one-hot ``(N, K)`` -> int64 class indices ``(N,)``."""
    array = np.asarray(labels)
    return (array.argmax(axis=1) if array.ndim == 2 else array).astype(np.int64)


def labels_to_tensor(labels, device: torch.device) -> torch.Tensor:
    """Integer or one-hot labels -> int64 class indices on ``device``."""
    return torch.from_numpy(class_indices(labels)).to(device)


def new_state(model: torch.nn.Module, config: TrainConfig, steps_per_epoch: int) -> TrainState:
    """A fresh optimizer, schedule and shuffle generator (seeded) for ``model``, at epoch 0."""
    optimizer = make_optimizer(parameter_groups(model, config), config)
    generator = torch.Generator().manual_seed(config.seed)
    average = None if config.ema_momentum is None else WeightAverage(model, config.ema_momentum)
    return TrainState(model, optimizer, make_schedule(optimizer, config, steps_per_epoch), generator,
                      average=average)


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
    model.train()
    try:
        for _ in range(warmup):
            train_step(model, optimizer, None, xb, yb, config.precision)
        times = _step_seconds(lambda: train_step(model, optimizer, None, xb, yb, config.precision), xb.device,
                              windows * window)
    finally:
        torch.set_rng_state(rng)
    per_step = statistics.median(sum(times[k:k + window]) / window for k in range(0, len(times), window))
    val = 0 if data.y_val is None else len(data.y_val)
    # Validation runs forward only: about a third of a training step's work per image.
    return per_step * math.ceil(n / (bs * processes)) + per_step / bs * val / processes / 3


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


def prepare(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, config: TrainConfig,
            validation: tuple[np.ndarray, np.ndarray] | None = None, class_names: list[str] | None = None):
    """Split, move to the device, and make a fresh state: ``(state, tensor data, split or None)``.

    ``validation`` given explicitly wins over ``config.val_split``. The pixels stay compact
    (uint8 stays uint8; a memory-mapped array stays mapped) and the split only indexes them:
    nothing is copied per part (see :mod:`cnnlab.engine.batches`).
    """
    from cnnlab.data.split import split_labels

    device = resolve_device(config.device)
    labels = class_indices(y)
    images = image_batches(x, device)  # every row; the parts below index them
    split = None
    if validation is None and config.val_split > 0:
        names = class_names or [str(i) for i in range(int(labels.max()) + 1)]
        split = split_labels(labels, names, config.val_split, config.split_method, config.seed)
        validation = (images.rows(split.val_idx), labels[split.val_idx])
        images, labels = images.rows(split.train_idx), labels[split.train_idx]
    config.validate(train_size=len(labels))
    data = TensorData(images, labels_to_tensor(labels, device))
    if validation is not None:
        data.x_val = image_batches(validation[0], device)
        data.y_val = labels_to_tensor(validation[1], device)
    model.to(device)
    if data.x_train.ndim == 4:
        model.to(memory_format=torch.channels_last)
    initialise_from_data(model, data.x_train)  # a fresh model's data-aware layers (patch whitening)
    return new_state(model, config, math.ceil(len(labels) / config.batch_size)), data, split


def rescaled_twice(spec, x, which: str = "") -> str | None:
    """A note where pixels already in [0, 1] (uint8, which cnnlab divides by 255, or such floats) meet a
    ``rescaling`` that divides them again: Keras code often begins with ``Rescaling(1./255)``.
    ``which`` names the images (``"validation "``) in the note."""
    from cnnlab.net.kinds.core import expects_raw_pixels, input_rescaling

    if spec is None or not expects_raw_pixels(spec) or not _scaled_pixels(x):
        return None
    layer = input_rescaling(spec)
    return (f"layer '{layer.name}' (rescaling) multiplies the {which}pixels by {layer['scale']:.3g}, but they reach it "
            "in [0, 1] (cnnlab divides uint8 pixels by 255; Keras does not): scaled twice; remove that layer, "
            "or pass float pixels in 0..255")


def _scaled_pixels(x) -> bool:
    """Whether the network sees ``x`` in [0, 1]: uint8 (divided by 255 on the way) or floats at most 1.5."""
    dtype = getattr(x, "dtype", None)
    if dtype == np.uint8:
        return True
    return dtype is not None and np.dtype(dtype).kind == "f" and len(x) > 0 and float(np.max(x)) <= 1.5


@dataclass
class Session:
    """A model ready to train: its state, its tensors on the device, and the validation split made."""

    state: TrainState
    tensors: TensorData
    split: Split | None  # None when validation data was given, or val_split is 0
    config: TrainConfig | None = None  # the options it trains with: "auto" precision resolved


def check_validation_needs(config: TrainConfig, validation) -> None:
    """Early stopping on a validation metric without validation data would silently never stop."""
    if (config.early_stopping or "").startswith("val_") and validation is None and not config.val_split:
        raise ConfigError(f"early stopping on {config.early_stopping} needs validation data: give a validation "
                          "split (--val-split) or validation_data, or monitor loss")


def open_session(build: Callable[[], torch.nn.Module], x: np.ndarray, y: np.ndarray, config: TrainConfig, *,
                 validation: tuple[np.ndarray, np.ndarray] | None = None,
                 class_names: list[str] | None = None, callback: Callback | None = None) -> Session:
    """Seed, build the model, split and move the data, make a fresh state, and choose the precision.

    Seeding comes before ``build`` so the initial weights depend on the seed alone, and
    the dropout draws then follow from it. ``build`` returns a new module, or one that
    is already trained (``Model.fit`` called again trains on from where it stopped).
    """
    check_validation_needs(config, validation)
    seed_everything(config.seed)
    set_deterministic(config.deterministic)
    state, tensors, split = prepare(build(), x, y, config, validation, class_names)
    spec = getattr(state.model, "spec", None)
    note = rescaled_twice(spec, x) or (validation is not None and rescaled_twice(spec, validation[0], "validation "))
    if note and callback is not None:
        callback.note(note)
    config = session_precision(state, tensors, config, callback)  # "auto" timed; bf16 only with bf16 units
    parallelize(state, config)  # under torchrun: DDP, each rank its part of every batch
    return Session(state, tensors, split, config)


def train_model(build: Callable[[], torch.nn.Module], x: np.ndarray, y: np.ndarray, config: TrainConfig, *,
                validation: tuple[np.ndarray, np.ndarray] | None = None, class_names: list[str] | None = None,
                before_run: Callable[[Session], None] | None = None, callback: Callback | None = None,
                on_epoch_saved: Callable[[TrainState, dict], None] | None = None) -> Session:
    """Train from start to end: :func:`open_session`, then ``before_run``, then the epochs.

    ``before_run(session)`` is where a caller restores what it keeps (a checkpoint, an
    optimizer's moments) and records or announces the run; ``on_epoch_saved`` runs
    after each epoch (see :func:`cnnlab.engine.loop.run_epochs`).
    """
    session = open_session(build, x, y, config, validation=validation, class_names=class_names, callback=callback)
    if before_run is not None:
        before_run(session)
    with retained_heap(session.tensors.y_train.device.type):  # large CPU tensors stop page-faulting
        run_epochs(session.state, session.tensors, session.config, callback, on_epoch_saved)
    return session
