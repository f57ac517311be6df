"""Compare networks on one dataset: train each (per seed), evaluate, analyse; resumable.

The comparison directory's name comes from the specs and the dataset, so running the
same command again finds it: finished runs are reused, interrupted ones resumed.
The dataset is loaded once here and handed down to training and to the analyses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cnnlab.engine.config import TrainConfig
from cnnlab.experiment.results import Comparison, DatasetFacts, ModelResult
from cnnlab.runs.directory import RunError, open_dataset, read_json, write_json


def _slug(text: str) -> str:
    name = Path(text).name.split(".")[0] if ("/" in text or "." in text) else text
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def comparison_dir(specs: list[str], dataset: str, out: Path, name: str | None) -> Path:
    """The comparison's folder: ``name``, or one made from the specs and the dataset."""
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


def _train_or_resume(run_dir: Path, spec: str, dataset: str, data, config: TrainConfig, options: dict,
                     callback) -> str:
    from cnnlab import runs
    from cnnlab.engine.checkpoint import CHECKPOINT, WEIGHTS

    if (run_dir / WEIGHTS).exists():
        return "reused"
    if (run_dir / CHECKPOINT).exists():
        runs.resume(run_dir, callback, data=data)
        return "resumed"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # started but no epoch finished: nothing to keep
    runs.train(spec, dataset, config, out=run_dir.parent, name=run_dir.name, dataset_options=options,
               callback=callback, data=data)
    return "trained"


def _check_request(specs, seeds: int) -> None:
    if seeds < 1:
        raise RunError(f"--seeds must be at least 1, got {seeds}")
    if len(specs) < 2:
        raise RunError("compare needs at least two specs")
    slugs = [_slug(spec) for spec in specs]
    if len(set(slugs)) < len(slugs):
        raise RunError(f"compare got the same spec twice ({', '.join(specs)}); use --seeds N to repeat one")


def compare(specs: list[str] = ("mlp", "cnn"), dataset: str = "cifar10", config: TrainConfig | None = None,
            seeds: int = 1, out: str | Path = "runs", name: str | None = None,
            dataset_options: dict | None = None, callback=None) -> Comparison:
    """Train and evaluate every spec for ``seeds`` seeds; writes and returns the :class:`Comparison`.

    It holds, per model, each run's history and test results plus the analyses the
    report draws (shift robustness, predictions, first-layer filters), and the dataset.
    """
    config = (config or TrainConfig()).validate()
    _check_request(specs, seeds)
    options = dict(dataset_options or {})
    folder = comparison_dir(list(specs), dataset, Path(out), name)
    _open_dir(folder, _options_record(specs, dataset, config, seeds, options))
    data = open_dataset(dataset, options)  # once: every run trains and is tested on this same copy
    trained = {spec: [_train_seed(folder, spec, dataset, data, config, config.seed + k, options, callback)
                      for k in range(seeds)] for spec in specs}
    comparison = analyse(folder, trained, data)
    write_json(folder / "comparison.json", comparison.to_dict())
    return comparison


def _train_seed(folder: Path, spec: str, dataset: str, data, config: TrainConfig, seed: int, options: dict,
                callback) -> tuple[Path, str, int]:
    """``(run directory, status, seed)`` of one model and seed, trained, resumed or reused."""
    seeded = TrainConfig.from_dict({**config.to_dict(), "seed": seed})
    run_dir = folder / "runs" / f"{_slug(spec)}-seed{seed}"
    if callback is not None:
        callback.note(f"== {spec}, seed {seed}: {run_dir}")
    return run_dir, _train_or_resume(run_dir, spec, dataset, data, seeded, options, callback), seed


def analyse(folder: Path, trained: dict[str, list[tuple[Path, str, int]]], data) -> Comparison:
    """Evaluate every run on the test part; the deeper analyses use each model's first seed.

    ``trained`` maps each spec to its runs' ``(run directory, status, seed)``.
    """
    from cnnlab.experiment.analysis import evaluate_run

    models = [ModelResult(spec, [evaluate_run(run_dir, data, status=status, seed=seed, deep=index == 0)
                                 for index, (run_dir, status, seed) in enumerate(runs)])
              for spec, runs in trained.items()]
    split = read_json(models[0].first.run_dir / "manifest.json").get("split")
    return Comparison(folder, models, DatasetFacts.of(data, split), data)
