"""``fit``'s and ``evaluate``'s output in a script or notebook, as Keras prints it: ``Epoch 1/5``, then
one line per epoch; ``evaluate``'s one line.

The epoch lines go to stdout, as Keras'. While an epoch runs, a progress bar shows:
in a notebook, a line of text in a display slot that each update replaces, and the
finished epoch's line at the end (no widget: an executed notebook keeps that line and
no widget state, never a frozen 0% bar); in a terminal, a plain text bar (tqdm's
standard one), erased when the epoch ends.
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


def keras_bar(step: int, steps: int, width: int = 20) -> str:
    """``━━━━━━━─────────────``: Keras' bar (done, then to do), without its colours."""
    done = width if steps <= 0 else min(width, width * step // steps)
    return "━" * done + "─" * (width - done)


def per_step(seconds: float) -> str:
    """Keras' time per step: ``1s/step``, ``11ms/step`` or ``804us/step``."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/step"
    return f"{seconds * 1e3:.0f}ms/step" if seconds >= 1e-3 else f"{seconds * 1e6:.0f}us/step"


def evaluation_line(results: dict[str, float], steps: int, seconds: float, bar: bool = True) -> str:
    """``evaluate``'s line as Keras 3 prints it: ``12/12 ━━━━━━━━━━━━━━━━━━━━ 0s 2ms/step - accuracy: 0.9556 -
    loss: 0.1722`` (verbose 1 or "auto"), or ``12/12 - 0s - 2ms/step - ...`` (verbose 2); the metrics first,
    the loss last, as Keras orders them."""
    steps = max(steps, 1)
    timing = [f"{steps}/{steps} {keras_bar(steps, steps)} {seconds:.0f}s {per_step(seconds / steps)}"] if bar else \
        [f"{steps}/{steps}", f"{seconds:.0f}s", per_step(seconds / steps)]
    names = [name for name in results if name != "loss"] + (["loss"] if "loss" in results else [])
    return " - ".join(timing + [f"{name}: {results[name]:.4f}" for name in names])


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class _NotebookBar:
    """A line of text in a notebook's display slot, replaced by each update and at last by the epoch's line.

    Plain text, not an ipywidgets bar: a widget stays alive in the kernel, and an executed
    notebook keeps every widget's state in its metadata (the bars made 65 KB of 111 KB).
    """

    def __init__(self, steps: int):
        from IPython.display import Pretty, display

        self.steps = steps
        self.handle = display(Pretty(f"0/{steps} {keras_bar(0, steps)}"), display_id=True)

    def update(self, step: int, text: str) -> None:
        from IPython.display import Pretty

        self.handle.update(Pretty(f"{step}/{self.steps} {keras_bar(step, self.steps)} {text}"))

    def finish(self, line: str) -> None:
        from IPython.display import Pretty

        self.handle.update(Pretty(line))  # the saved notebook keeps this line


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
        if self.bars and _in_notebook():
            self.bar = _NotebookBar(steps)
        elif self.bars and getattr(self.stream, "isatty", lambda: False)():
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
