"""A run directory's files: creating it, and reading and writing its records.

A run directory holds config.json (the resolved options), spec.yaml, summary.txt,
metrics.csv (a row per epoch), history.json, manifest.json (versions, device,
threads, dataset identity, seed, command line), checkpoint.pt and, once
finished, model.safetensors. Functions here return data; the CLI prints.
"""

from __future__ import annotations

import csv
import json
import platform
import sys
from pathlib import Path

from cnnlab.data.cache import atomic_write
from cnnlab.engine.config import TrainConfig
from cnnlab.errors import CnnlabError

METRIC_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time", "train_time",
                  "images_per_second", "lr")


class RunError(CnnlabError):
    """A run directory that exists already, or is missing or incomplete; names it."""


def new_run_dir(out: Path, base: str, explicit: bool) -> Path:
    """A fresh directory under ``out``; an explicit name that exists is an error, never reused."""
    out.mkdir(parents=True, exist_ok=True)
    candidate, suffix = out / base, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            if explicit:
                raise RunError(f"{candidate}: run directory exists; pick another --name, "
                               f"or continue it with --resume {candidate}") from None
            candidate, suffix = out / f"{base}-{suffix}", suffix + 1


def open_dataset(dataset: str, options: dict):
    """The dataset a run names, loaded with the options it was given."""
    from cnnlab.data import load_dataset

    return load_dataset(dataset, **options)


def write_json(path: Path, data) -> None:
    """``data`` as indented JSON, written atomically."""
    atomic_write(path, lambda handle: handle.write((json.dumps(data, indent=2) + "\n").encode()))


def read_json(path: Path) -> dict:
    """A run's JSON record; a missing or unreadable one is a RunError naming it."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent}: not a cnnlab run directory (no {path.name})") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: unreadable ({exc})") from None


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """metrics.csv from the history (rewritten whole, so it always matches the checkpoint)."""
    def write(handle):
        lines = [",".join(METRIC_COLUMNS)]
        lines += [",".join("" if r.get(c) is None else f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                           for c in METRIC_COLUMNS) for r in history]
        handle.write(("\n".join(lines) + "\n").encode())
    atomic_write(run_dir / "metrics.csv", write)


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.csv as one dict per epoch (every value a float; empty cells None)."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: (float(v) if v else None) for k, v in row.items()} for row in csv.DictReader(handle)]


def manifest(dataset, config: TrainConfig, device, argv: list[str] | None) -> dict:
    """What reproducing a run takes: versions, device, threads, the dataset's identity, seed, command."""
    import numpy
    import torch

    from cnnlab import __version__

    return {
        "versions": {"cnnlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": numpy.__version__, "platform": platform.platform()},
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "dataset": {"name": dataset.name, **dataset.identity,
                    "image_shape": list(dataset.image_shape), "classes": dataset.class_names},
        "seed": config.seed,
        "command": argv if argv is not None else sys.argv,
    }


def describe_device(device) -> str:
    """'cuda: <GPU name>' or 'cpu: <CPU model>'."""
    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    return f"cpu: {model}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
