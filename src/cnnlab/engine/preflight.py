"""The one pre-flight: everything a training is refused for, checked once, before anything is made.

Whoever starts a training (``cnnlab train``/``runs.train``, ``cnnlab compare`` for each of
its networks, ``Model.fit``) runs :func:`preflight_run` or :func:`check_validation_needs`
once and hands the result down: the fitted spec and its summary travel in a
:class:`Preflight`, so nothing below resolves, fits, summarises or checks memory again.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.engine.device import resolve_device
from cnnlab.engine.memory import MemoryEstimate, check_memory, stored_bytes
from cnnlab.net.inference import ModelInfo
from cnnlab.net.resolve import fit_spec
from cnnlab.net.spec import ModelSpec


@dataclass(frozen=True)
class Preflight:
    """A network checked against its data, its options and this machine: ready to train."""

    spec: ModelSpec          # fitted to the data: its input shape and (a preset's) class count
    info: ModelInfo          # its summary: shapes and parameters per layer
    memory: MemoryEstimate   # what training it is estimated to need on its device


def check_validation_needs(config: TrainConfig, validation) -> None:
    """Early stopping on a validation metric without validation data would silently never stop."""
    if (config.early_stopping or "").startswith("val_") and validation is None and not config.val_split:
        raise ConfigError(f"early stopping on {config.early_stopping} needs validation data: give a validation "
                          "split (--val-split) or validation_data, or monitor loss")


def check_options(config: TrainConfig):
    """The options on their own (before any data is loaded): valid, validation where needed, the device there."""
    config.validate()
    check_validation_needs(config, None)  # a run's only validation is its split
    return resolve_device(config.device)


def check_network(model_spec: ModelSpec, config: TrainConfig, data, device) -> Preflight:
    """A resolved spec against ``data`` (a loaded dataset, its validation part split off by
    ``config.val_split``) and ``device``: the options against its size, the shapes, the memory."""
    from cnnlab.net.resolve import summarize

    images = len(data.y_train)
    config.validate(train_size=int(images * (1 - config.val_split)))
    fitted = fit_spec(model_spec, data.image_shape, data.num_classes)
    info = summarize(fitted)  # validates the spec against the data
    val_images = images - int(images * (1 - config.val_split))
    memory = check_memory(info, config, images, device, val_images, stored_bytes(data.x_train))
    return Preflight(fitted, info, memory)


def preflight_run(model_spec: ModelSpec, config: TrainConfig, data) -> Preflight:
    """:func:`check_options`, then :func:`check_network`: everything a run on ``data`` is refused for."""
    return check_network(model_spec, config, data, check_options(config))
