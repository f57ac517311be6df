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

    def _repr_html_(self) -> str:
        """Jupyter shows the per-epoch metrics as a table."""
        keys = [k for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in self.history]
        head = "".join(f"<th>{k}</th>" for k in ["epoch", *keys])
        rows = "".join("<tr><td>" + str(r["epoch"]) + "</td>" + "".join(
            f"<td>{r[k]:.4f}</td>" if r.get(k) is not None else "<td></td>" for k in keys) + "</tr>"
            for r in self.records)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
