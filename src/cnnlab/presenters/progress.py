"""Training feedback: a bar per epoch in a terminal or notebook, plain lines elsewhere."""

from __future__ import annotations

import sys
import time

from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.records import EpochRecord, TrainingFacts


def format_epoch(record: EpochRecord, epochs: int) -> str:
    """``epoch 2/5  loss 1.2345  accuracy 0.5600  val_loss ...  time 3.2s  12,500 img/s``"""
    parts = [f"epoch {record.epoch}/{epochs}", f"loss {record.loss:.4f}", f"accuracy {record.accuracy:.4f}"]
    if record.val_loss is not None:
        parts += [f"val_loss {record.val_loss:.4f}", f"val_accuracy {record.val_accuracy:.4f}"]
    parts += [f"time {record.time:.1f}s", f"{record.images_per_second:,.0f} img/s"]
    return "  ".join(parts)


def format_seconds(seconds: float) -> str:
    """``0.06s``, ``1.8s``, ``66s``, ``5m 34s``, ``1h 05m``: a duration as people read it."""
    if seconds < 0.995:
        return f"{seconds:.2f}s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 3599.5:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h {minutes:02d}m"


class EpochClock:
    """Times an epoch from the progress reports: the steps after the first report are past the warm-up.

    The loop reports at a host synchronisation every few steps, so the clock reads true times
    without adding any. An epoch with a single report is timed whole.
    """

    def __init__(self) -> None:
        self.first: tuple[int, float] | None = None  # (step, time) of the epoch's first report
        self.last: tuple[int, float] | None = None
        self.steps = 0

    def start(self, steps: int) -> None:
        """A new epoch of ``steps`` steps."""
        self.first, self.last, self.steps = None, None, steps

    def report(self, step: int) -> None:
        """Steps up to ``step`` are done (the loop just synchronised)."""
        now = (step, time.perf_counter())
        self.first = self.first or now
        self.last = now

    def steady_epoch_seconds(self, record: EpochRecord) -> float:
        """The epoch's time at the pace of its steps after the first report, validation added."""
        validation = max(record.time - record.train_time, 0.0)
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return record.time
        (step0, time0), (step1, time1) = self.first, self.last
        return (time1 - time0) / (step1 - step0) * self.steps + validation


class ProgressPrinter(TrainingCallback):
    """The engine's callback for people: bars when ``stream`` is a terminal, else one line an epoch.

    One printer serves every run of a comparison: a split audit like the last one shown is
    not printed again. After a run's first epoch it prints the time the remaining epochs
    should take, measured on that epoch.
    """

    wants_estimate = True  # an epoch's estimated time, shown before the first

    def __init__(self, stream=None, bars: bool | None = None):
        self.stream = stream or sys.stderr
        self.bars = self._is_interactive() if bars is None else bars
        self.bar = None
        self.epochs = 0
        self.shown_audit: dict | None = None
        self.clock = EpochClock()
        self.first_epoch = True  # of this run (a resumed run's first may be epoch 3)

    def _is_interactive(self) -> bool:
        if "ipykernel" in sys.modules:
            return True
        return hasattr(self.stream, "isatty") and self.stream.isatty()

    def note(self, text: str) -> None:
        """A line on the stream."""
        print(text, file=self.stream, flush=True)

    def on_train_begin(self, facts: TrainingFacts) -> None:
        """The split audit (new runs, once), where a resumed run picks up, and the time estimate."""
        self._audit(facts.split_audit)
        if facts.resumed_at_epoch is not None:
            self.note(f"resuming {facts.run_dir} after epoch {facts.resumed_at_epoch}")
        self.first_epoch = True
        if facts.estimate_seconds is not None:
            self.note(f"estimated time per epoch: {format_seconds(facts.estimate_seconds)} "
                      f"({facts.train_count:,} training images, batch {facts.batch_size})")

    def _audit(self, audit: dict | None) -> None:
        """The split's images per class, unless the table would repeat the last one shown."""
        from cnnlab.data.split import format_audit

        if not audit:
            return
        table = {key: audit.get(key) for key in ("train", "validation", "test", "warnings")}
        if table != self.shown_audit:
            self.note(format_audit(audit))
            self.shown_audit = table

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        """A bar for the epoch's steps (terminals and notebooks)."""
        self.epochs = epochs
        self.clock.start(steps)
        if self.bars:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="step",
                            file=self.stream, leave=False, dynamic_ncols=True)

    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        """The bar moves on, showing the running loss and accuracy."""
        self.clock.report(step)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.4f}", accuracy=f"{accuracy:.4f}", refresh=False)

    def on_epoch_end(self, record: EpochRecord, state=None) -> None:
        """The epoch's line; after a run's first epoch, the time the rest should take."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.note(format_epoch(record, self.epochs))
        remaining = self.epochs - record.epoch
        if self.first_epoch and remaining > 0:
            seconds = self.clock.steady_epoch_seconds(record)
            self.note(f"estimated time for the remaining {remaining} epoch{'s' if remaining > 1 else ''}: "
                      f"{format_seconds(seconds * remaining)} ({format_seconds(seconds)} per epoch, "
                      f"measured on epoch {record.epoch})")
        self.first_epoch = False
