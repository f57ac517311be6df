"""``fit``'s output in a script or notebook, as Keras prints it: ``Epoch 1/5``, then one line per epoch.

The epoch lines go to stdout, as Keras'. While an epoch runs, a progress bar shows:
in a notebook, an ipywidgets bar whose display is replaced by the finished epoch's
line when the epoch ends (so a saved notebook holds the results, never a frozen 0%
bar); without ipywidgets, or in a terminal, a plain text bar (tqdm's standard one, so
no warning about missing widgets), erased when the epoch ends.
"""

from __future__ import annotations

import sys

from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.records import EpochRecord, TrainingFacts


def epoch_line(record: EpochRecord, steps: int) -> str:
    """``36/36 - 0.4s - 11ms/step - accuracy: 0.7641 - loss: 0.7980 - val_accuracy: ... - val_loss: ...``"""
    parts = [f"{steps}/{steps}", f"{record.time:.1f}s", f"{1000 * record.train_time / steps:.0f}ms/step"]
    # Keras' order: each side's scores by name; compile's other metrics too, a per-class one as its mean
    scores = {name: sum(value) / len(value) if isinstance(value, list) else value
              for name, value in record.scores.items()}
    train = {"accuracy": record.accuracy, "loss": record.loss, **{k: v for k, v in scores.items()
                                                                  if not k.startswith("val_")}}
    parts += [f"{name}: {value:.4f}" for name, value in sorted(train.items())]
    if record.val_loss is not None:
        val = {"val_accuracy": record.val_accuracy, "val_loss": record.val_loss,
               **{k: v for k, v in scores.items() if k.startswith("val_")}}
        parts += [f"{name}: {value:.4f}" for name, value in sorted(val.items())]
    return " - ".join(parts)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class _WidgetBar:
    """An ipywidgets bar in a display slot that the finished line replaces."""

    def __init__(self, steps: int):
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(min=0, max=steps, layout={"width": "40%"})
        self.label = ipywidgets.Label(f"0/{steps}")
        self.handle = display(ipywidgets.HBox([self.bar, self.label]), display_id=True)

    def update(self, step: int, text: str) -> None:
        self.bar.value, self.label.value = step, text

    def finish(self, line: str) -> None:
        from IPython.display import Pretty

        self.handle.update(Pretty(line))  # the saved notebook keeps this line, not the widget


class _TextBar:
    def __init__(self, steps: int, stream):
        from tqdm.std import tqdm

        self.bar = tqdm(total=steps, file=stream, leave=False, dynamic_ncols=True, unit="step")
        self.stream = stream

    def update(self, step: int, text: str) -> None:
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix_str(text, refresh=False)

    def finish(self, line: str) -> None:
        self.bar.close()
        print(line, file=self.stream, flush=True)


class KerasStylePrinter(TrainingCallback):
    """The engine's callback for ``fit`` (verbose 1 with ``bars``, verbose 2 without)."""

    def __init__(self, bars: bool = True, stream=None):
        self.stream = stream or sys.stdout
        self.bars, self.bar, self.steps = bars, None, 0

    def note(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_train_begin(self, facts: TrainingFacts) -> None:
        """Keras prints nothing before the first epoch; neither does fit."""

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        self.steps = steps
        print(f"Epoch {epoch}/{epochs}", file=self.stream, flush=True)
        if self.bars and _in_notebook() and _widgets_available():
            self.bar = _WidgetBar(steps)
        elif self.bars and (_in_notebook() or getattr(self.stream, "isatty", lambda: False)()):
            self.bar = _TextBar(steps, self.stream)  # a file or pipe gets the epoch lines alone

    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        if self.bar is not None:
            self.bar.update(step, f"accuracy: {accuracy:.4f} - loss: {loss:.4f}")

    def on_epoch_end(self, record: EpochRecord, state=None) -> None:
        line = epoch_line(record, self.steps)
        if self.bar is not None:
            self.bar.finish(line)
            self.bar = None
        else:
            print(line, file=self.stream, flush=True)
