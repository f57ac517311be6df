"""Keras' callbacks for ``model.fit(..., callbacks=[...])``, with Keras' names, arguments and hooks.

A callback sees ``self.model`` (the :class:`cnnlab.Model`) and gets ``logs`` dicts with
Keras' keys: ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``learning_rate``.
Setting ``self.model.stop_training = True`` ends training after the current epoch.
Batch hooks run at the engine's progress points (every 25 steps and the last one),
not after every step: reading the loss back each step would stall the training loop.
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import re
import string
import warnings
from os import PathLike
from pathlib import Path

from cnnlab.engine.callbacks import Monitor
from cnnlab.engine.config import ConfigError
from cnnlab.engine.records import COMPILED_NAMES, METRICS, rises
from cnnlab.training_callbacks import BackupAndRestore, Callback, LambdaCallback, ReduceLROnPlateau, monitored_rises

__all__ = ["BackupAndRestore", "CSVLogger", "Callback", "EarlyStopping", "LambdaCallback", "LearningRateScheduler",
           "ModelCheckpoint", "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN"]

# what a ModelCheckpoint filepath may name, besides {epoch}: the logs' keys, compile's metrics' default names too
LOGGED = (*METRICS, "learning_rate", *(prefix + name for prefix in ("", "val_") for name in COMPILED_NAMES))
MAX_NAME_WIDTH = 255  # a file name's length on every common file system
MAX_CSV_LOG_BYTES = 64 * 2**20  # an existing log CSVLogger(append=True) continues: a row per epoch is ~100 bytes


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"mode must be auto, min or max, got {mode!r}")
    return mode if mode != "auto" else ("max" if rises(monitor) else "min")  # as Keras' metrics say


class _Monitor(Callback):
    """What EarlyStopping and ModelCheckpoint share: a monitored value and what counts as better, judged by
    the engine's :class:`cnnlab.engine.callbacks.Monitor` (the same judge as ``--early-stopping``)."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0, verbose: int = 0):
        super().__init__()
        self.watch = Monitor(monitor, _mode(monitor, mode), min_delta)
        self.monitor, self.mode, self.min_delta = monitor, self.watch.mode, self.watch.min_delta
        self.verbose, self._auto = verbose, mode == "auto"

    def set_model(self, model) -> None:
        """Keras' 'auto' reads the direction from the compiled metric of that name: ``val_top3`` rises too."""
        super().set_model(model)
        if self._auto and self.mode == "min" and monitored_rises(self.monitor, model):
            start = None if self.best == math.inf else self.best  # a baseline given stays
            self.watch = Monitor(self.monitor, "max", self.min_delta, start)
            self.mode = "max"

    @property
    def best(self) -> float:
        return self.watch.best

    @best.setter
    def best(self, value: float) -> None:
        self.watch.best = value

    def improved(self, logs: dict) -> bool | None:
        value = (logs or {}).get(self.monitor)
        if value is None:  # Keras warns and skips (a typo such as 'val_acc', or val_loss without validation)
            warnings.warn(f"{type(self).__name__} is conditioned on metric '{self.monitor}', which is not "
                          f"available; available metrics are: {', '.join(logs or {}) or 'none'}",
                          UserWarning, stacklevel=2)
            return None
        return self.watch.improves(value)


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras' semantics)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta, verbose)
        self.patience, self.restore_best_weights, self.start_from_epoch = patience, restore_best_weights, \
            start_from_epoch
        if baseline is not None:
            self.best = baseline
        self.wait, self.stopped_epoch, self.best_weights = 0, 0, None

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            return
        better = self.improved(logs)
        if better is None:
            return
        if better:
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in self.model.module.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch:
            if self.verbose:
                print("Restoring model weights from the end of the best epoch.", flush=True)
            self.model.module.load_state_dict(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model (``model.save``) or its weights after each epoch, or only when ``monitor`` improves.

    ``filepath`` may hold ``{epoch}`` and log keys, as in Keras: ``"ckpt-{epoch:02d}.cnnlab"``. A ``.keras``
    (or ``.h5``) name saves Keras 3's own file, ``.weights.h5`` with ``save_weights_only`` Keras' weights,
    as ``model.save``/``save_weights`` do.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch"):
        super().__init__(monitor, mode, verbose=verbose)
        if save_freq != "epoch":
            raise ConfigError("ModelCheckpoint: only save_freq='epoch' is supported")
        self.filepath, self.save_best_only, self.save_weights_only = _checked_template(filepath), \
            save_best_only, save_weights_only
        from cnnlab.runs.keras_file import check_keras_name

        check_keras_name(self.filepath, save_weights_only)  # a .keras name without Keras: found before training

    def on_epoch_end(self, epoch, logs=None):
        previous = self.best
        if self.save_best_only and not self.improved(logs):
            if self.verbose and (logs or {}).get(self.monitor) is not None:
                print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {previous:.5f}", flush=True)
            return
        try:
            path = self.filepath.format(epoch=epoch + 1, **(logs or {}))
        except KeyError as exc:  # a val_ key without validation data: the template itself was checked
            raise ConfigError(f"ModelCheckpoint: filepath {self.filepath!r} names {exc}, which this training "
                              f"does not log (it logs {', '.join(logs or {}) or 'nothing'})") from None
        if self.verbose:
            change = f"{self.monitor} improved from {previous:.5f} to {self.best:.5f}, " if self.save_best_only else ""
            print(f"Epoch {epoch + 1}: {change}saving model to {path}", flush=True)
        self.model.save_weights(path) if self.save_weights_only else self.model.save(path)


class CSVLogger(Callback):
    """One row per epoch of the logs, written as each epoch ends (``append`` continues a file).

    Written as cnnlab writes its own files (:func:`cnnlab.files.write_file`: whole and atomically,
    never through a link): a link, folder or FIFO at ``filename`` is refused before training.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1 or separator in '\r\n"':
            raise ConfigError(f"CSVLogger: separator must be one character (not a quote or line break), "
                              f"got {separator!r}"[:200])
        self.filename, self.separator, self.append = Path(filename), separator, append
        self.keys, self.text = None, ""

    def on_train_begin(self, logs=None):
        from cnnlab.files import WriteError, check_replaceable, read_regular

        if not self.filename.parent.is_dir():  # found now, not after the first epoch
            raise WriteError(f"{self.filename}: the folder {self.filename.parent} does not exist")
        exists = check_replaceable(self.filename)
        self.keys, self.text = None, ""
        if not exists:
            return
        text = read_regular(self.filename, MAX_CSV_LOG_BYTES, WriteError, "CSV log").decode("utf-8", "replace")
        if not text.startswith("epoch" + self.separator):  # a user's other file: never overwritten or appended to
            raise WriteError(f"{self.filename}: exists and is not a CSV log (its first line is not "
                             f"'epoch{self.separator}...'); choose another name")
        self.text = text if self.append else ""

    def on_epoch_end(self, epoch, logs=None):
        from cnnlab.files import write_file

        logs, rows = dict(logs or {}), io.StringIO()
        writer = csv.writer(rows, delimiter=self.separator)
        if self.keys is None:
            self.keys = sorted(logs)
            if not self.text:
                writer.writerow(["epoch", *self.keys])
        writer.writerow([epoch, *(_cell(logs.get(k, "")) for k in self.keys)])
        self.text += rows.getvalue()
        write_file(self.filename, self.text.encode("utf-8"), root=self.filename.parent)


class LearningRateScheduler(Callback):
    """``schedule(epoch, lr) -> new lr`` (or ``schedule(epoch)``) at the start of each epoch, as in Keras;
    the epoch's logs then hold ``learning_rate``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose
        self.takes_rate = _takes_two_arguments(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        value = self.schedule(epoch, self.model.learning_rate) if self.takes_rate else self.schedule(epoch)
        rate = float(value)
        if not math.isfinite(rate) or rate <= 0:
            raise ConfigError(f"LearningRateScheduler: the schedule gave {rate} for epoch {epoch}; "
                              "a learning rate is a positive number")
        self.model.learning_rate = rate
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.learning_rate


def _cell(value) -> str:
    """A log value as CSVLogger writes it: a per-class score (F1Score(average=None)) as Keras writes one."""
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0:
        return f"[{', '.join(str(float(v)) for v in value)}]"
    return value


def _takes_two_arguments(schedule) -> bool:
    """Whether ``schedule`` takes (epoch, lr) or only (epoch), as Keras accepts both."""
    try:
        parameters = inspect.signature(schedule).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: try Keras' two-argument form
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


class TerminateOnNaN(Callback):
    """Stop training quietly at a NaN or infinite loss instead of raising (Keras' behaviour)."""

    terminates_on_nan = True


class TensorBoard(Callback):
    """TensorBoard event files under ``log_dir``: per-epoch metrics, the learning rate, the summary as text.

    Needs the ``tensorboard`` package (``pip install 'cnnlab[tensorboard]'``).
    """

    def __init__(self, log_dir="logs", **_ignored):
        super().__init__()
        self.log_dir, self.writer = str(log_dir), None

    def on_train_begin(self, logs=None):
        from cnnlab.presenters.tensorboard import open_writer

        self.writer = open_writer(str(_log_folder(self.log_dir)))
        self.writer.summary(self.model.summary_text())

    def on_epoch_end(self, epoch, logs=None):
        self.writer.epoch(epoch + 1, {**(logs or {}), "learning_rate": self.model.learning_rate})

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()


def _checked_template(filepath) -> str:
    """``filepath`` once it fills in as Keras fills it after an epoch (``{epoch}`` and the log keys), so that
    a typo is found before training rather than after the first epoch; a width or precision that would
    make a name of gigabytes (``{epoch:>3000000000}``) is refused before anything is formatted."""
    if not isinstance(filepath, str | PathLike):
        raise ConfigError("ModelCheckpoint: filepath must be a path (str or pathlib.Path), "
                          f"got {type(filepath).__name__}")
    filepath = str(filepath)
    sizes = [int(number) for _, _, spec, _ in _fields(filepath) for number in re.findall(r"\d+", spec or "")]
    if any(size > MAX_NAME_WIDTH for size in sizes):
        raise ConfigError(f"ModelCheckpoint: filepath {filepath[:200]!r} asks for a width or precision over "
                          f"{MAX_NAME_WIDTH}; a file name is at most {MAX_NAME_WIDTH} characters")
    try:
        filepath.format(epoch=1, **dict.fromkeys(LOGGED, 0.5))
    except KeyError as exc:
        raise ConfigError(f"ModelCheckpoint: filepath {filepath!r} names {exc}, which is not logged; it may name "
                          f"{{epoch}} and {', '.join(f'{{{key}}}' for key in LOGGED)}") from None
    except (IndexError, ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"ModelCheckpoint: filepath {filepath!r} cannot be filled in ({exc})") from None
    return filepath


def _fields(filepath: str) -> list:
    """The replacement fields of a format string, or ConfigError where it is malformed."""
    try:
        return list(string.Formatter().parse(filepath))
    except ValueError as exc:
        raise ConfigError(f"ModelCheckpoint: filepath {filepath[:200]!r} cannot be filled in ({exc})") from None


def _log_folder(log_dir: str) -> Path:
    """``log_dir``, made as cnnlab makes its folders (:func:`cnnlab.files.make_folder`): below the nearest
    folder that exists, an existing file or a link (dangling or not) is refused and left as it is."""
    from cnnlab.files import make_folder

    path = Path(log_dir)
    root = next((folder for folder in (path, *path.parents) if folder.is_dir()), Path("."))
    return make_folder(path, root)
