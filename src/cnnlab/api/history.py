"""What ``fit`` returns: the per-epoch metrics, as Keras' History object holds them."""

from __future__ import annotations


class History:
    """Per-epoch metrics: ``history.history["val_accuracy"]`` as in Keras, ``records`` as dicts."""

    def __init__(self, records: list[dict]):
        self.records = [dict(r) for r in records]

    @property
    def history(self) -> dict[str, list]:
        keys = [k for k in self.records[0] if k != "epoch"] if self.records else []
        return {key: [r[key] for r in self.records] for key in keys}

    @property
    def epoch(self) -> list[int]:
        return [r["epoch"] - 1 for r in self.records]

    def __repr__(self) -> str:
        return f"History({len(self.records)} epochs)"
