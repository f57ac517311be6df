"""Keras' ``Callback`` base class, and the callbacks that steer a fit while it runs: ``ReduceLROnPlateau``,
``BackupAndRestore`` and ``LambdaCallback``, with Keras' names, arguments and behaviour.

Import them from :mod:`cnnlab.callbacks`, as from ``keras.callbacks``; they live here so that module
stays one page. ``BackupAndRestore`` is cnnlab's exact resume (the run folders' checkpoint: weights,
optimizer, schedule, every random stream), so a fit interrupted and run again with it ends where an
uninterrupted fit ends, to the bit.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path

from cnnlab.engine.config import ConfigError
from cnnlab.engine.records import rises

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end")
KERAS2_HOOKS = {"on_batch_begin": "on_train_batch_begin", "on_batch_end": "on_train_batch_end"}


class Callback:
    """Base class with Keras' hook names; override the ones you need."""

    def __init__(self):
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...


class LambdaCallback(Callback):
    """Keras' LambdaCallback: functions as hooks, ``on_epoch_end(epoch, logs)``, ``on_train_begin(logs)``...
    (Keras 2's ``on_batch_begin``/``on_batch_end`` are the training batch hooks)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end}
        for name, function in kwargs.items():
            if name not in KERAS2_HOOKS:  # on_test_*/on_predict_*: fit calls none of them here
                raise ConfigError(f"LambdaCallback: {name!r} is not a hook fit calls; it calls {', '.join(HOOKS)}")
            hooks[KERAS2_HOOKS[name]] = function
        for name, function in hooks.items():
            if function is not None and not callable(function):
                raise ConfigError(f"LambdaCallback: {name} must be a function, got {type(function).__name__}")
            if function is not None:
                setattr(self, name, function)


class ReduceLROnPlateau(Callback):
    """Keras' ReduceLROnPlateau: multiply the learning rate by ``factor`` once ``monitor`` has not improved
    (by more than ``min_delta``) for ``patience`` epochs, then wait ``cooldown`` epochs; never below
    ``min_lr``. Each epoch's logs hold the ``learning_rate`` it trained with, as in Keras."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise ConfigError(f"ReduceLROnPlateau: unknown argument '{sorted(kwargs)[0]}'")
        if not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ConfigError(f"ReduceLROnPlateau: factor must lie in (0, 1) (new_lr = lr * factor), got {factor!r}")
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"ReduceLROnPlateau: mode must be auto, min or max, got {mode!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"ReduceLROnPlateau: {name} must be a non-negative integer, got {value!r}")
        if not isinstance(min_lr, (int, float)) or not 0 <= min_lr < math.inf:
            raise ConfigError(f"ReduceLROnPlateau: min_lr must be a number of at least 0, got {min_lr!r}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), patience, verbose
        self.mode, self.min_delta, self.cooldown, self.min_lr = mode, abs(min_delta), cooldown, float(min_lr)
        self.best, self.wait, self.cooldown_counter, self.rising = None, 0, 0, None

    def on_train_begin(self, logs=None):
        state = getattr(self.model, "_state", None)
        if getattr(state, "scheduler", None) is not None:
            raise ConfigError("ReduceLROnPlateau: fit's schedule sets the learning rate at every step, so a "
                              "reduction would not last; use one of them (schedule='constant' for this callback)")
        self.best, self.wait, self.cooldown_counter = None, 0, 0
        self.rising = self.mode == "max" or self.mode == "auto" and monitored_rises(self.monitor, self.model)

    def _improves(self, value: float) -> bool:
        """Keras' test: the first value always; then beyond the best by more than min_delta."""
        if self.best is None:
            return True
        return value - self.min_delta > self.best if self.rising else value + self.min_delta < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = self.model.learning_rate  # the rate this epoch trained with, as Keras logs it
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}.", UserWarning, stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch: int) -> bool:
        old = self.model.learning_rate
        if not old > _float32(self.min_lr):  # Keras compares with min_lr as its float32 variable holds it
            return False
        new = max(old * self.factor, self.min_lr)
        self.model.learning_rate = new
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.", flush=True)
        return True


def _float32(value: float) -> float:
    import numpy as np

    return float(np.float32(value))


def monitored_rises(monitor: str, model) -> bool:
    """Keras' 'auto': a loss falls; a metric compiled on the model (any name: ``top3``) or named as one rises."""
    compiled = getattr(getattr(model, "_compiled", None), "metrics", ())
    return rises(monitor) or monitor.removeprefix("val_") in {metric.name for metric in compiled}


class BackupAndRestore(Callback):
    """Keras' BackupAndRestore: the training state in ``backup_dir`` after every epoch; a fit that was
    interrupted, run again with this callback, goes on from the last epoch saved, exactly as if it had not
    stopped (cnnlab's checkpoint: weights, optimizer, schedule, the shuffle and dropout streams). When
    the fit ends, the checkpoint is removed (``delete_checkpoint``), and the folder if nothing else is in it.

    The same model, data and fit arguments are expected, as in Keras; a checkpoint of another network or
    optimizer is refused, naming the part that does not fit. As in Keras, other callbacks' own counts
    (ReduceLROnPlateau's, EarlyStopping's patience) start afresh, and a rate a callback sets after this
    one saved (later in the list) is not in the backup: put BackupAndRestore last to keep it.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ConfigError("BackupAndRestore: backup_dir is empty")
        if save_freq != "epoch":
            raise ConfigError("BackupAndRestore: only save_freq='epoch' is supported (a checkpoint after each "
                              "epoch)")
        if double_checkpoint:
            raise ConfigError("BackupAndRestore: double_checkpoint is not needed: the checkpoint is replaced "
                              "atomically, never left half-written")
        self.backup_dir, self.delete_checkpoint = Path(backup_dir), delete_checkpoint

    def _state(self):
        return self.model._state_now()

    def on_train_begin(self, logs=None):
        from cnnlab.engine.checkpoint import CHECKPOINT, load_checkpoint

        path = self.backup_dir / CHECKPOINT
        if path.exists() or path.is_symlink():  # a link is refused by name when it is read
            load_checkpoint(self._state(), self.backup_dir)

    def on_epoch_end(self, epoch, logs=None):
        from cnnlab.engine.checkpoint import save_checkpoint
        from cnnlab.files import make_folder

        root = next((folder for folder in (self.backup_dir, *self.backup_dir.parents) if folder.is_dir()),
                    Path("."))
        save_checkpoint(self._state(), make_folder(self.backup_dir, root))

    def on_train_end(self, logs=None):
        from cnnlab.engine.checkpoint import CHECKPOINT
        from cnnlab.files import remove_files

        if not self.delete_checkpoint or not self.backup_dir.is_dir() or self.backup_dir.is_symlink():
            return
        remove_files(self.backup_dir, [CHECKPOINT])  # only cnnlab's own file: nothing else there is touched
        with contextlib.suppress(OSError):
            self.backup_dir.rmdir()  # only when empty
