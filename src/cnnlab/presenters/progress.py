"""Training feedback: a bar per epoch in a terminal or notebook, plain lines elsewhere."""

from __future__ import annotations

import sys


def format_epoch(record: dict, epochs: int) -> str:
    """``epoch 2/5  loss 1.2345  accuracy 0.5600  val_loss ...  time 3.2s  12,500 img/s``"""
    parts = [f"epoch {record['epoch']}/{epochs}",
             f"loss {record['loss']:.4f}", f"accuracy {record['accuracy']:.4f}"]
    if record.get("val_loss") is not None:
        parts += [f"val_loss {record['val_loss']:.4f}", f"val_accuracy {record['val_accuracy']:.4f}"]
    parts += [f"time {record['time']:.1f}s", f"{record['images_per_second']:,.0f} img/s"]
    return "  ".join(parts)


class ProgressPrinter:
    """The engine's callback for people: bars when ``stream`` is a terminal, else one line an epoch."""

    def __init__(self, stream=None, bars: bool | None = None):
        self.stream = stream or sys.stderr
        self.bars = self._is_interactive() if bars is None else bars
        self.bar = None
        self.epochs = 0

    def _is_interactive(self) -> bool:
        if "ipykernel" in sys.modules:
            return True
        return hasattr(self.stream, "isatty") and self.stream.isatty()

    def note(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_train_begin(self, facts: dict) -> None:
        """The split audit (new runs), where a resumed run picks up, and the time estimate."""
        from cnnlab.data.split import format_audit

        if facts.get("split_audit"):
            self.note(format_audit(facts["split_audit"]))
        if facts.get("resumed_at_epoch") is not None:
            self.note(f"resuming {facts['run_dir']} after epoch {facts['resumed_at_epoch']}")
        self.note(f"estimated time per epoch: {facts['estimate_seconds']:.1f}s "
                  f"({facts['train_count']:,} training images, batch {facts['batch_size']})")

    def on_epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs = epochs
        if self.bars:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="step",
                            file=self.stream, leave=False, dynamic_ncols=True)

    def on_progress(self, step: int, steps: int, loss: float, accuracy: float) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.4f}", accuracy=f"{accuracy:.4f}", refresh=False)

    def on_epoch_end(self, record: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.note(format_epoch(record, self.epochs))
