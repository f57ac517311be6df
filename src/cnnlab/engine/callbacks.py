"""The one way to hook into training: callbacks on one list, fastai-style.

Every hook is a :class:`TrainingCallback` on the list :func:`cnnlab.engine.session.train_model`
runs, in order: the built-in ones the options ask for (:class:`EarlyStopping`,
:class:`FinalAverage`), then the caller's — the run's recorder (checkpoint, then metrics),
a presenter, Keras' callbacks through ``cnnlab.api.callback_bridge``. The engine itself
prints nothing and keeps no files. Keras' ``cnnlab.callbacks`` judge improvement with the
same :class:`Monitor`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cnnlab.engine.records import EpochRecord, TrainingFacts, rises

if TYPE_CHECKING:
    from cnnlab.engine.loop import TrainState
    from cnnlab.engine.session import Session


class TrainingCallback:
    """A hook into training; override what you need (every hook does nothing here).

    Order of calls: :meth:`on_session` once the model, data and state are ready (restore or
    record what you keep); :meth:`on_train_begin` when epochs remain; per epoch
    :meth:`on_epoch_begin`, :meth:`on_progress` at the progress points, :meth:`on_epoch_end`
    (the record already in ``state.history``); :meth:`on_train_end`. :meth:`note` any time.
    """

    wants_estimate = False  # True: the engine times an epoch before the first (TrainingFacts.estimate_seconds)

    def note(self, text: str) -> None: ...
    def on_session(self, session: Session, facts: TrainingFacts) -> None: ...
    def on_train_begin(self, facts: TrainingFacts) -> None: ...
    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...
    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None: ...
    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


class CallbackList(TrainingCallback):
    """The list training runs: each hook called on every callback, in order."""

    def __init__(self, callbacks=()):
        self.callbacks = [c for c in callbacks if c is not None]

    @property
    def wants_estimate(self) -> bool:
        return any(c.wants_estimate for c in self.callbacks)

    def _each(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def note(self, text: str) -> None:
        self._each("note", text)

    def on_session(self, session: Session, facts: TrainingFacts) -> None:
        self._each("on_session", session, facts)

    def on_train_begin(self, facts: TrainingFacts) -> None:
        self._each("on_train_begin", facts)

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        self._each("on_epoch_begin", epoch, epochs, steps)

    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        self._each("on_progress", step, steps, loss, accuracy)

    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        self._each("on_epoch_end", record, state)

    def on_train_end(self, state: TrainState) -> None:
        self._each("on_train_end", state)


class Monitor:
    """A monitored score and what counts as better: lower for a loss, higher for an accuracy (``mode``
    "auto"), by more than ``min_delta``; ``best`` starts at the worst value (or a ``baseline``)."""

    def __init__(self, name: str, mode: str = "auto", min_delta: float = 0.0, best: float | None = None):
        self.name, self.min_delta = name, abs(min_delta)
        self.mode = mode if mode != "auto" else ("max" if rises(name) else "min")
        self.best = best if best is not None else (math.inf if self.mode == "min" else -math.inf)

    def improves(self, value: float) -> bool:
        """Whether ``value`` beats the best so far; if it does, it becomes the best."""
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best = value
        return better


class EarlyStopping(TrainingCallback):
    """``early_stopping``/``patience`` (TrainConfig): stop once ``monitor`` has not improved for more than
    ``patience`` epochs. Its progress lives in the state (``best``, ``wait``), so a resumed run goes on."""

    def __init__(self, monitor: str, patience: int):
        self.monitor, self.patience = monitor, patience

    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        value = record.metric(self.monitor)
        if value is None:
            return
        watch = Monitor(self.monitor, best=state.best)
        if state.best is None or watch.improves(value):
            state.best, state.wait = value, 0
        else:
            state.wait += 1
            state.stopped_early = state.wait > self.patience


class FinalAverage(TrainingCallback):
    """After the last epoch (or an early stop), the model takes the weights the run averages: their moving
    average (``ema_momentum``, Keras' ``use_ema``) or Lookahead's slow weights (``lookahead_sync_period``,
    airbench's end of training); before the run's recorder saves them."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, record: EpochRecord, state: TrainState) -> None:
        if state.epoch >= self.epochs or state.stopped_early:
            for kept in (state.average, state.lookahead):
                if kept is not None:
                    kept.copy_to(state.model)


def built_in(config) -> list[TrainingCallback]:
    """The callbacks ``config`` (a TrainConfig) asks for, in the order they must run: before the caller's."""
    callbacks: list[TrainingCallback] = []
    if config.early_stopping:
        callbacks.append(EarlyStopping(config.early_stopping, config.patience))
    if config.ema_momentum is not None or config.lookahead_sync_period:
        callbacks.append(FinalAverage(config.epochs))
    return callbacks
