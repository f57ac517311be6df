"""Between the engine's callback protocol and Keras-style callbacks (``fit(callbacks=[...])``).

The engine reports to one list of callbacks (it prints nothing itself); this bridge, on
that list, forwards to the progress printer, if any, and turns each report into Keras'
hooks and logs. It holds the training state (from ``on_session``) so that ``model.stop_training`` and a
learning-rate change reach the loop without the loop knowing about callbacks.
"""

from __future__ import annotations

import numpy as np

from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.config import ConfigError
from cnnlab.engine.records import METRICS, EpochRecord, TrainingFacts


def keras_logs(record: EpochRecord, accuracy: str = "accuracy", scheduled: bool = False) -> dict:
    """Keras' log keys from an epoch record: loss, accuracy and compile's other metrics, then with validation
    their ``val_`` twins; the accuracy named as ``compile(metrics=[...])`` named it (``"acc"``: ``acc`` and
    ``val_acc``); a per-class score (``F1Score(average=None)``) a float32 array, as in Keras.

    As in Keras, ``learning_rate`` is added by the callbacks that change it (LearningRateScheduler,
    ReduceLROnPlateau), and here also where fit's ``schedule``/``warmup_epochs`` change it (``scheduled``):
    its value at the epoch's end.
    """
    logs = {}
    for prefix in ("", "val_"):
        for key in (f"{prefix}loss", f"{prefix}accuracy", *(k for k in record.scores if k.startswith("val_") ==
                                                              bool(prefix))):
            value = record.metric(key)
            if value is not None:
                logs[key.replace("accuracy", accuracy) if key in METRICS else key] = \
                    np.asarray(value, dtype=np.float32) if isinstance(value, list) else value
    if scheduled:
        logs["learning_rate"] = record.lr
    return logs


class CallbackBridge(TrainingCallback):
    """``fit``'s callback on the engine's list: the printer plus the user's Keras callbacks, with Keras'
    hook names; it also gives the model its live state (optimizer, learning rate) for the callbacks."""

    def __init__(self, model, callbacks, printer=None, initial_epoch: int = 0):
        from cnnlab.callbacks import Callback

        callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or [])  # Keras takes one too
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise ConfigError(f"callbacks: {type(callback).__name__} is not a cnnlab.callbacks.Callback")
            callback.set_model(model)
        self.model, self.callbacks, self.printer, self.state = model, callbacks, printer, None
        # Keras numbers epochs on from initial_epoch: fit(epochs=4, initial_epoch=2) prints "Epoch 3/4".
        self.offset = initial_epoch
        self.logs: list[dict] = []  # each epoch's logs, as the callbacks left them: what History holds
        self.scheduled, self.resumed = False, 0

    @property
    def terminates_on_nan(self) -> bool:
        return any(getattr(callback, "terminates_on_nan", False) for callback in self.callbacks)

    def on_session(self, session, facts: TrainingFacts) -> None:
        """Before the first epoch: the model keeps its optimizer's moments across fit calls (as Keras does)
        and reads the live state; the Keras callbacks begin."""
        self.model._attach(session)
        self.state = session.state
        self.scheduled = session.state.scheduler is not None  # fit's schedule: learning_rate in the logs
        self.model.stop_training = False
        for callback in self.callbacks:
            callback.on_train_begin({})
        self.resumed = len(session.state.history)  # epochs BackupAndRestore restored: not this fit's History

    def _each(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def note(self, text: str) -> None:
        if self.printer is not None:
            self.printer.note(text)

    def on_train_begin(self, facts: TrainingFacts) -> None:
        if self.printer is not None:
            self.printer.on_train_begin(facts)

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        self._each("on_epoch_begin", epoch - 1 + self.offset, {})  # Keras counts epochs from 0
        if self.printer is not None:
            self.printer.on_epoch_begin(epoch + self.offset, epochs + self.offset, steps)

    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        self._each("on_train_batch_end", step - 1, {"loss": loss, self.model._compiled.metric: accuracy})
        if self.printer is not None:
            self.printer.on_progress(step, steps, loss, accuracy)

    def on_epoch_end(self, record: EpochRecord, state) -> None:
        record = record.renumbered(self.offset)
        if self.printer is not None:
            self.printer.on_epoch_end(record, state)
        logs = keras_logs(record, self.model._compiled.metric, self.scheduled)
        self._each("on_epoch_end", record.epoch - 1, logs)
        self.logs.append(logs)
        if self.model.stop_training:
            state.stopped_early = True  # the loop stops before the next epoch

    def on_invalid_loss(self, error) -> None:
        """TerminateOnNaN's end, as Keras prints it; the epoch's logs say NaN."""
        print(f"Batch {error.step - 1}: Invalid loss, terminating training", flush=True)
        self.logs.append({"loss": float("nan"), self.model._compiled.metric: float("nan")})

    def records(self) -> list[EpochRecord]:
        """The engine's records of the epochs this fit trained (times, images per second, learning rate),
        numbered as Keras; after a BackupAndRestore resume, those after the restored ones, as Keras' History."""
        history = self.state.history[self.resumed:] if self.state is not None else []
        return [record.renumbered(self.offset) for record in history]

    def on_train_end(self, state=None) -> None:
        self._each("on_train_end", self.logs[-1] if self.logs else {})
