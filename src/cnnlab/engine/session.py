"""Training a model, in one sequence: seed, build, prepare the tensors and state, run the epochs.

:func:`train_model` is that sequence, shared by the Python API (``Model.fit``) and
the run directories (``cnnlab.runs``); the rest of this module are its parts: the
tensors on the device, a fresh state, and the checks made before the first step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from cnnlab.engine.averaging import WeightAverage
from cnnlab.engine.batches import class_indices, image_batches, labels_to_tensor
from cnnlab.engine.callbacks import CallbackList, TrainingCallback
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.data_init import initialise_from_data
from cnnlab.engine.data_parallel import parallelize
from cnnlab.engine.device import resolve_device, set_deterministic
from cnnlab.engine.flips import alternating_flips
from cnnlab.engine.heap import retained_heap
from cnnlab.engine.lookahead import lookahead_for
from cnnlab.engine.loop import TensorData, TrainState, run_epochs
from cnnlab.engine.optim import make_optimizer, make_schedule, parameter_groups
from cnnlab.engine.precision import session_precision
from cnnlab.engine.records import TrainingFacts
from cnnlab.engine.seeds import run_generators
from cnnlab.engine.streams import BatchStream, StreamData

if TYPE_CHECKING:
    from cnnlab.data.split import Split


def new_state(model: torch.nn.Module, config: TrainConfig, steps_per_epoch: int,
              train_size: int | None = None) -> TrainState:
    """A fresh optimizer, schedule and shuffle generator (seeded) for ``model``, at epoch 0; with
    ``train_size``, the plan of its alternating flips over that many images."""
    optimizer = make_optimizer(parameter_groups(model, config), config)
    generator = torch.Generator().manual_seed(config.seed)
    average = None if config.ema_momentum is None else WeightAverage(model, config.ema_momentum)
    flips = alternating_flips(model, train_size, config.seed) if train_size else None
    return TrainState(model, optimizer, make_schedule(optimizer, config, steps_per_epoch), generator,
                      average=average, lookahead=lookahead_for(model, config, steps_per_epoch), flips=flips)


def prepare(model: torch.nn.Module, x: np.ndarray | BatchStream, y: np.ndarray | None, config: TrainConfig,
            validation: tuple[np.ndarray, np.ndarray] | None = None, class_names: list[str] | None = None,
            weights: np.ndarray | None = None):
    """Split, move to the device, and make a fresh state: ``(state, tensor data, split or None)``.

    ``validation`` given explicitly wins over ``config.val_split``. The pixels stay compact
    (uint8 stays uint8; a memory-mapped array stays mapped) and the split only indexes them:
    nothing is copied per part (see :mod:`cnnlab.engine.batches`). ``weights`` ``(N,)``: each
    image's weight in the training loss (split with it; validation is unweighted). ``x`` a
    :class:`~cnnlab.engine.streams.BatchStream`: its batches as they come (``y`` None, no split).
    """
    from cnnlab.data.split import split_labels

    device = resolve_device(config.device)
    if isinstance(x, BatchStream):
        return (*_placed(model, StreamData(x, device), config, validation, device, x.steps), None)
    labels = class_indices(y)
    images = image_batches(x, device)  # every row; the parts below index them
    split = None
    if validation is None and config.val_split > 0:
        names = class_names or [str(i) for i in range(int(labels.max()) + 1)]
        split = split_labels(labels, names, config.val_split, config.split_method, config.seed)
        validation = (images.rows(split.val_idx), labels[split.val_idx])
        images, labels = images.rows(split.train_idx), labels[split.train_idx]
        weights = None if weights is None else np.asarray(weights)[split.train_idx]
    data = TensorData(images, labels_to_tensor(labels, device), drop_remainder=config.drop_remainder)
    if weights is not None:
        data.w_train = torch.from_numpy(np.asarray(weights, dtype=np.float32)).to(device)
    return (*_placed(model, data, config, validation, device, data.steps(config.batch_size)), split)


def _placed(model, data, config: TrainConfig, validation, device, steps: int):
    """``(state, data)``: the validation arrays added to ``data``, the model moved to ``device`` and
    initialised from the data where it asks, and a fresh state for ``steps`` steps an epoch."""
    config.validate()  # a batch larger than the data trains one short batch, as in Keras (the CLI refuses it)
    if validation is not None:
        data.x_val = image_batches(validation[0], device)
        data.y_val = labels_to_tensor(validation[1], device)
    model.to(device)
    if data.x_train.ndim == 4:
        model.to(memory_format=torch.channels_last)
    initialise_from_data(model, data.x_train)  # a fresh model's data-aware layers (patch whitening)
    images = data.train_size if isinstance(data, TensorData) else None  # a stream has no image indices
    return new_state(model, config, steps, images), data


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


def open_session(build: Callable[[], torch.nn.Module], x: np.ndarray, y: np.ndarray, config: TrainConfig, *,
                 validation: tuple[np.ndarray, np.ndarray] | None = None,
                 class_names: list[str] | None = None, callback: TrainingCallback | None = None,
                 weights: np.ndarray | None = None) -> Session:
    """Build the model, split and move the data, make a fresh state, and choose the precision.

    Run inside :func:`~cnnlab.engine.seeds.run_generators` (as :func:`train_model` runs it),
    which seeds before ``build``: the initial weights depend on the seed alone, and the
    dropout draws then follow from it. ``build`` returns a new module, or one that
    is already trained (``Model.fit`` called again trains on from where it stopped). The
    caller has run the pre-flight (:mod:`cnnlab.engine.preflight`) before.
    """
    set_deterministic(config.deterministic)
    state, tensors, split = prepare(build(), x, y, config, validation, class_names, weights)
    spec = getattr(state.model, "spec", None)
    note = rescaled_twice(spec, x) or (validation is not None and rescaled_twice(spec, validation[0], "validation "))
    if note and callback is not None:
        callback.note(note)
    config = session_precision(state, tensors, config, callback)  # "auto" timed; bf16 only with bf16 units
    parallelize(state, config)  # under torchrun: DDP, each rank its part of every batch
    return Session(state, tensors, split, config)


def train_model(build: Callable[[], torch.nn.Module], x: np.ndarray, y: np.ndarray, config: TrainConfig, *,
                validation: tuple[np.ndarray, np.ndarray] | None = None, class_names: list[str] | None = None,
                callbacks: Sequence[TrainingCallback] = (), metrics: Sequence = (),
                weights: np.ndarray | None = None) -> Session:
    """Train from start to end: :func:`open_session`, then the epochs, with one list of callbacks;
    ``metrics`` (:mod:`cnnlab.engine.metric_counts`) are counted each epoch beside loss and accuracy.

    Each callback's :meth:`~cnnlab.engine.callbacks.TrainingCallback.on_session` runs first (a
    run's recorder restores its checkpoint there, ``Model.fit`` keeps its optimizer's moments);
    then, when epochs remain, :meth:`~cnnlab.engine.callbacks.TrainingCallback.on_train_begin`
    with the facts (an epoch's time estimate, where a callback wants it); then the epochs
    (:func:`cnnlab.engine.loop.run_epochs`) and ``on_train_end``. The run draws from the global
    generators seeded with ``config.seed`` and gives them back as they were (:func:`run_generators`).
    ``weights``: each image's weight in the training loss (see :func:`prepare`).
    """
    with run_generators(config.seed):
        return _train(build, x, y, config, validation, class_names, callbacks, metrics, weights)


def _train(build, x, y, config: TrainConfig, validation, class_names, callbacks, metrics=(), weights=None) -> Session:
    from cnnlab.engine import distributed
    from cnnlab.engine.estimate import estimate_epoch_seconds

    hooks = CallbackList(callbacks)
    session = open_session(build, x, y, config, validation=validation, class_names=class_names, callback=hooks,
                           weights=weights)
    state, tensors, config = session.state, session.tensors, session.config
    state.metrics = tuple(metrics)
    facts = TrainingFacts(tensors.train_size, config.batch_size, config.epochs)
    hooks.on_session(session, facts)
    if state.epoch < config.epochs:
        if hooks.wants_estimate:
            facts.estimate_seconds = estimate_epoch_seconds(state, tensors, config, processes=distributed.world_size())
        hooks.on_train_begin(facts)
    with retained_heap(tensors.y_train.device.type):  # large CPU tensors stop page-faulting
        run_epochs(state, tensors, config, hooks.callbacks)
    hooks.on_train_end(state)
    return session
