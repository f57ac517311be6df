"""fit's, evaluate's and predict's plain arguments checked as Keras takes them, and the TrainConfig they make."""

from __future__ import annotations

import numpy as np

from cnnlab.engine.config import TrainConfig
from cnnlab.engine.inputs import InputError


def _batch_size(batch_size) -> int:
    """evaluate/predict's batch size: default 1024 (inference only), else a positive integer."""
    if batch_size is None:
        return 1024
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _epochs(epochs: int | None, initial_epoch: int) -> int:
    """Keras' ``epochs`` is the last epoch's number: ``fit(..., epochs=10, initial_epoch=7)`` trains 3."""
    total = TrainConfig.epochs if epochs is None else epochs
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        raise InputError(f"fit: epochs must be a positive integer, got {total!r}")
    if not isinstance(initial_epoch, int) or isinstance(initial_epoch, bool) or initial_epoch < 0:
        raise InputError(f"fit: initial_epoch must be a non-negative integer, got {initial_epoch!r}")
    if initial_epoch and (not isinstance(total, int) or total <= initial_epoch):
        raise InputError(f"fit: epochs ({total}) must be larger than initial_epoch ({initial_epoch})")
    return total - initial_epoch


def _check_verbose(verbose) -> None:
    if verbose not in (0, 1, 2, "auto") or isinstance(verbose, bool):
        raise InputError(f"verbose must be 0 (silent), 1 (progress bar), 2 (one line per epoch) or 'auto', "
                         f"got {verbose!r}")


def _say_evaluation(logs: dict, verbose, steps: int, seconds: float) -> None:
    """evaluate's one line on stdout, as Keras prints it (verbose "auto" or 1: with its bar; 2: without)."""
    from cnnlab.presenters.keras_progress import evaluation_line

    if verbose != 0:
        scalars = {name: float(value) for name, value in logs.items() if np.ndim(value) == 0}  # not per-class rows
        print(evaluation_line(scalars, steps, seconds, bar=verbose != 2), flush=True)


def _progress(verbose):
    """Keras' verbose: 0 silent, 1 (or 'auto') a progress bar, 2 one line per epoch."""
    from cnnlab.presenters.keras_progress import KerasStylePrinter

    _check_verbose(verbose)
    return None if verbose == 0 else KerasStylePrinter(bars=verbose != 2)


def _train_config(options: dict, merged: dict) -> TrainConfig:
    """A validated TrainConfig from ``merged``; an unknown keyword in ``options`` (fit's own
    ``**options``) names itself and the valid ones."""
    from dataclasses import fields

    valid = sorted({f.name for f in fields(TrainConfig)} - {"seed", "device", "init", "val_split", "epochs",
                                                           "batch_size", "loss", "from_logits"})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"fit: unknown argument '{unknown[0]}'; fit takes x, y, batch_size, epochs, verbose, "
                         f"callbacks, validation_split, validation_data, shuffle, initial_epoch and "
                         f"{', '.join(valid)}")
    return TrainConfig(**merged).validate()
