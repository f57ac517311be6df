"""Compare networks on one dataset: train each (per seed), evaluate, analyse; resumable.

The comparison directory's name comes from the specs and the dataset, so running the
same command again finds it: finished runs are reused, interrupted ones resumed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from cnnlab.engine.config import TrainConfig
from cnnlab.runs import RunError, read_json, write_json

SHIFTS = (0, 1, 2, 3, 4)


def _slug(text: str) -> str:
    name = Path(text).name.split(".")[0] if ("/" in text or "." in text) else text
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def comparison_dir(specs: list[str], dataset: str, out: Path, name: str | None) -> Path:
    return Path(out) / (name or f"compare-{'-'.join(map(_slug, specs))}-{_slug(dataset)}")


def _options_record(specs, dataset, config: TrainConfig, seeds: int, dataset_options: dict) -> dict:
    train = {k: v for k, v in config.to_dict().items() if k != "seed"}
    return {"specs": list(specs), "dataset": str(dataset), "seeds": seeds, "base_seed": config.seed,
            "train": train, "dataset_options": dataset_options}


def _open_dir(folder: Path, record: dict) -> None:
    """Create the comparison folder, or check that an existing one was made by the same command."""
    if (folder / "options.json").exists():
        if read_json(folder / "options.json") != json.loads(json.dumps(record)):
            raise RunError(f"{folder}: a comparison with other options is there; pass --name to "
                           "start another, or rerun it with its own options")
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "options.json", record)


def _train_or_resume(run_dir: Path, spec: str, dataset: str, config: TrainConfig, options: dict, callback):
    from cnnlab import training
    from cnnlab.engine.checkpoint import CHECKPOINT, WEIGHTS

    if (run_dir / WEIGHTS).exists():
        return "reused"
    if (run_dir / CHECKPOINT).exists():
        training.resume(run_dir, callback)
        return "resumed"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # started but no epoch finished: nothing to keep
    training.train(spec, dataset, config, out=run_dir.parent, name=run_dir.name, dataset_options=options,
                   callback=callback)
    return "trained"


def compare(specs: list[str] = ("mlp", "cnn"), dataset: str = "cifar10", config: TrainConfig | None = None,
            seeds: int = 1, out: str | Path = "runs", name: str | None = None,
            dataset_options: dict | None = None, callback=None) -> dict:
    """Train and evaluate every spec for ``seeds`` seeds; returns the comparison's data.

    The result holds, per model, each run's history and test results plus the
    analyses the report draws (shift robustness, predictions, first-layer filters).
    """
    config = (config or TrainConfig()).validate()
    if seeds < 1:
        raise RunError(f"--seeds must be at least 1, got {seeds}")
    if len(specs) < 2:
        raise RunError("compare needs at least two specs")
    slugs = [_slug(spec) for spec in specs]
    if len(set(slugs)) < len(slugs):
        raise RunError(f"compare got the same spec twice ({', '.join(specs)}); use --seeds N to repeat one")
    options = dict(dataset_options or {})
    folder = comparison_dir(list(specs), dataset, Path(out), name)
    _open_dir(folder, _options_record(specs, dataset, config, seeds, options))
    models = []
    for spec in specs:
        runs = []
        for k in range(seeds):
            seeded = TrainConfig.from_dict({**config.to_dict(), "seed": config.seed + k})
            run_dir = folder / "runs" / f"{_slug(spec)}-seed{seeded.seed}"
            if callback is not None:
                callback.note(f"== {spec}, seed {seeded.seed}: {run_dir}")
            status = _train_or_resume(run_dir, spec, dataset, seeded, options, callback)
            runs.append({"run_dir": str(run_dir), "status": status, "seed": seeded.seed})
        models.append({"spec": spec, "runs": runs})
    result = analyse(folder, models)
    write_json(folder / "comparison.json", _jsonable(result))
    return result


def analyse(folder: Path, models: list[dict]) -> dict:
    """Evaluate every run on the test part; deeper analyses use each model's first seed."""
    from cnnlab.analysis import evaluate_run_deeply

    data = None
    for model in models:
        for index, run in enumerate(model["runs"]):
            deep, data = evaluate_run_deeply(Path(run["run_dir"]), data, deep=index == 0, shifts=SHIFTS)
            run.update(deep)
        model.update(_aggregate(model["runs"]))
    return {"folder": str(folder), "models": models, "dataset": _dataset_facts(data, models), "_data": data}


def _aggregate(runs: list[dict]) -> dict:
    def stats(key):
        values = np.array([run[key] for run in runs], dtype=float)
        return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "values": values.tolist()}

    return {key: stats(key) for key in ("test_accuracy", "test_loss", "best_val_accuracy",
                                        "final_val_accuracy", "seconds_per_epoch")}


def _dataset_facts(data, models) -> dict:
    first = read_json(Path(models[0]["runs"][0]["run_dir"]) / "manifest.json")
    return {"name": data.name, "classes": data.class_names, "image_shape": list(data.image_shape),
            "identity": data.identity, "split": first.get("split"), "notes": data.notes}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
