"""Between the engine's callback protocol and Keras-style callbacks (``fit(callbacks=[...])``).

The engine reports to one callback (it prints nothing itself); this bridge forwards to
the progress printer, if any, and turns each report into Keras' hooks and logs. It
holds the training state (from ``before_run``) so that ``model.stop_training`` and a
learning-rate change reach the loop without the loop knowing about callbacks.
"""

from __future__ import annotations

from cnnlab.engine.config import ConfigError


def keras_logs(record: dict) -> dict:
    """Keras' log keys from an epoch record: loss, accuracy, val_*, learning_rate."""
    logs = {key: record[key] for key in ("loss", "accuracy", "val_loss", "val_accuracy")
            if record.get(key) is not None}
    if record.get("lr") is not None:
        logs["learning_rate"] = record["lr"]
    return logs


class CallbackBridge:
    """The engine's callback for ``fit``: the printer plus the user's callbacks."""

    def __init__(self, model, callbacks, printer=None):
        from cnnlab.callbacks import Callback

        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise ConfigError(f"callbacks: {type(callback).__name__} is not a cnnlab.callbacks.Callback")
            callback.set_model(model)
        self.model, self.callbacks, self.printer, self.state = model, list(callbacks), printer, None

    @property
    def terminates_on_nan(self) -> bool:
        return any(getattr(callback, "terminates_on_nan", False) for callback in self.callbacks)

    def attach(self, session) -> None:
        """Called before the first epoch: the state the callbacks act on."""
        self.state = session.state
        self.model.stop_training = False
        for callback in self.callbacks:
            callback.on_train_begin({})

    def _each(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def note(self, text: str) -> None:
        if self.printer is not None:
            self.printer.note(text)

    def on_train_begin(self, facts: dict) -> None:
        if self.printer is not None:
            self.printer.on_train_begin(facts)

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        self._each("on_epoch_begin", epoch - 1, {})  # Keras counts epochs from 0
        if self.printer is not None:
            self.printer.on_epoch_begin(epoch, epochs, steps)

    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        self._each("on_train_batch_end", step - 1, {"loss": loss, "accuracy": accuracy})
        if self.printer is not None:
            self.printer.on_progress(step, steps, loss, accuracy)

    def on_epoch_end(self, record: dict) -> None:
        if self.printer is not None:
            self.printer.on_epoch_end(record)
        self._each("on_epoch_end", record["epoch"] - 1, keras_logs(record))
        if self.model.stop_training and self.state is not None:
            self.state.stopped_early = True  # the loop stops before the next epoch

    def on_train_end(self) -> None:
        logs = keras_logs(self.state.history[-1]) if self.state is not None and self.state.history else {}
        self._each("on_train_end", logs)
