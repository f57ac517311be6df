"""What ``fit`` returns: the per-epoch metrics, as Keras' History object holds them."""

from __future__ import annotations

import numpy as np


class History:
    """``history.history["val_accuracy"]`` and ``history.epoch`` as in Keras; ``records`` as cnnlab keeps them.

    ``history`` holds each epoch's logs as Keras' callbacks saw them (loss, accuracy, and
    val_loss / val_accuracy when there is validation; learning_rate where a scheduler set
    it); ``records`` add the times, images per second and learning rate of every epoch. ``seed``
    is the seed the run drew from (cnnlab's addition): ``Model(seed=history.seed)`` repeats it.
    """

    def __init__(self, records: list[dict], logs: list[dict] | None = None, seed: int | None = None):
        self.seed = seed
        self.records = [dict(r) for r in records]
        self.logs = [dict(r) for r in (logs if logs is not None else records)]
        self.epoch = [r["epoch"] - 1 for r in self.records]
        if len(self.logs) > len(self.records):  # TerminateOnNaN: the epoch that stopped has logs only
            self.epoch.append(self.epoch[-1] + 1 if self.epoch else 0)

    @property
    def history(self) -> dict[str, list]:
        keys = list(dict.fromkeys(key for logs in self.logs for key in logs if key != "epoch"))
        return {key: [logs.get(key) for logs in self.logs] for key in keys}

    def __repr__(self) -> str:
        return f"History({len(self.logs)} epochs)"

    def _repr_html_(self) -> str:
        """Jupyter shows the per-epoch metrics as a table."""
        keys = [k for k, values in self.history.items() if k != "learning_rate"  # loss, accuracy as compile named it
                and all(value is None or np.ndim(value) == 0 for value in values)]  # not per-class scores
        head = "".join(f"<th>{k}</th>" for k in ["epoch", *keys])
        rows = "".join("<tr><td>" + str(epoch + 1) + "</td>" + "".join(
            f"<td>{logs[k]:.4f}</td>" if logs.get(k) is not None else "<td></td>" for k in keys) + "</tr>"
            for epoch, logs in zip(self.epoch, self.logs))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
