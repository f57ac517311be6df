"""Compare networks on one dataset: train each (per seed), evaluate, analyse; resumable.

The comparison directory's name comes from the specs and the dataset, so running the
same command again finds it: finished runs are reused, interrupted ones resumed. A
run's folder is named by its spec's content (a short hash of the resolved spec), so an
edited spec file is a new run, and two different files of one name are two models.
cnnlab adopts only folders it made (their marker says so), and deletes none.
The dataset is loaded once here and handed down to training and to the analyses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cnnlab.engine import distributed
from cnnlab.engine.config import TrainConfig
from cnnlab.experiment.executor import ExecutorError, ExecutorOptions
from cnnlab.experiment.model_options import model_configs, options_record
from cnnlab.experiment.option_changes import changed_options
from cnnlab.experiment.results import Comparison, DatasetFacts, ModelResult
from cnnlab.runs.directory import (
    RunError,
    check_folder_name,
    create_marked,
    is_marked,
    open_dataset,
    read_json,
    write_json,
)
from cnnlab.runs.records import dataset_options_record, dataset_reference, spec_digest
from cnnlab.runs.reuse import reuse_run, train_or_resume

DIGEST_CHARS = 10  # of the spec's sha256 in a run folder's name


def _slug(text: str) -> str:
    name = Path(text).name.split(".")[0] if ("/" in text or "." in text) else text
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40].lstrip("-") or "model"


def comparison_dir(specs: list[str], dataset: str, out: Path, name: str | None) -> Path:
    """The comparison's folder: ``name``, or one made from the specs and the dataset."""
    return Path(out) / (name or f"compare-{'-'.join(map(_slug, specs))}-{_slug(str(dataset))}")


def _open_dir(folder: Path, record: dict) -> None:
    """Create the comparison folder, or check that an existing one is cnnlab's and made by the same command.

    Until a run exists in it, a comparison folder holds only its options: a new command
    then takes it over, so a failed first attempt blocks nothing.
    """
    if not os.path.lexists(folder):
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            create_marked(folder, "comparison")
        except FileExistsError:
            raise RunError(f"{folder}: exists and is not a folder; pick another --name or --out") from None
        except OSError as exc:
            raise RunError(f"{folder}: cannot create the comparison folder ({exc.strerror})") from None
    elif folder.is_symlink() or not folder.is_dir() or not is_marked(folder, "comparison"):
        raise RunError(f"{folder}: exists and is not a comparison cnnlab made (no marker); cnnlab never adopts, "
                       "empties or deletes such a folder: pass --name (or --out) to compare elsewhere")
    elif (folder / "options.json").exists() and _has_runs(folder):
        changes = changed_options(read_json(folder / "options.json"), json.loads(json.dumps(record)))
        if changes:
            raise RunError(f"{folder}: a comparison with other options is there ({'; '.join(changes)}); "
                           "pass --name to start another, or rerun it with its own options")
        return
    write_json(folder / "options.json", record)


def _has_runs(folder: Path) -> bool:
    runs = folder / "runs"
    return runs.is_dir() and any(runs.iterdir())


def _resolve(specs, seeds, configs: dict[str, TrainConfig]) -> dict[str, tuple[object, str]]:
    """Each spec resolved, with its content's digest; the same content twice is refused."""
    from cnnlab.net.resolve import resolve_spec

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise RunError(f"--seeds must be a positive integer, got {seeds!r}"[:200])
    for config in configs.values():  # the last seed
        TrainConfig.from_dict({**config.to_dict(), "seed": config.seed + seeds - 1}).validate()
    if len(specs) < 2:
        raise RunError("compare needs at least two specs")
    resolved, seen = {}, {}
    for spec in specs:
        model_spec = resolve_spec(spec)
        digest = spec_digest(model_spec)
        if digest in seen or spec in resolved:
            raise RunError(f"compare got the same spec twice ({seen.get(digest, spec)} and {spec} are one "
                           "network); use --seeds N to repeat one")
        resolved[spec], seen[digest] = (model_spec, digest), spec
    return resolved


def _check_fit(resolved: dict, data, configs: dict[str, TrainConfig]) -> dict:
    """Every spec against the data, and the options against the data and machine: before any folder.
    Returns each spec's :class:`cnnlab.engine.preflight.Preflight`, handed down to its runs.

    Each network must fit the device's memory on its own (concurrent runs on one device
    share it: a tight fit is for sequential runs)."""
    from cnnlab.engine.device import resolve_device
    from cnnlab.engine.preflight import check_network

    return {spec: check_network(model_spec, configs[spec], data, resolve_device(configs[spec].device))
            for spec, (model_spec, _) in resolved.items()}


def compare(specs: list[str] = ("mlp", "cnn"), dataset: str = "cifar10", config: TrainConfig | None = None,
            seeds: int = 1, out: str | Path = "runs", name: str | None = None,
            dataset_options: dict | None = None, callback=None,
            executor: ExecutorOptions | None = None, options: dict | None = None,
            tta: str | None = None) -> Comparison | None:
    """Train and evaluate every spec for ``seeds`` seeds; writes and returns the :class:`Comparison`.

    Under torchrun every process trains each run together; rank 0 alone evaluates and
    writes, and the other ranks get None.

    It holds, per model, each run's history and test results plus the analyses the
    report draws (shift robustness, predictions, first-layer filters), and the dataset.
    ``executor`` runs the training runs at once (:mod:`cnnlab.experiment.executor`);
    by default they run here, one after another. Each model trains with its own recipe
    (``fast`` its own, the others the experiment's) and ``options`` (TrainConfig fields)
    on top; a ``config`` given instead is every model's. ``tta`` (``"flip"`` or ``"flip_translate"``)
    also scores every run's test part with that test-time augmentation (a column beside test accuracy).
    """
    from cnnlab.engine.preflight import check_options
    from cnnlab.engine.threads import using_threads
    from cnnlab.engine.tta import check_tta

    configs = model_configs(list(specs), config, options)
    for each in configs.values():
        check_options(each)  # before the comparison folder is made
    executor = (executor or ExecutorOptions()).validate()
    callback = _join_torchrun(configs, executor, callback)
    resolved = _resolve(list(specs), seeds, configs)
    if name is not None:
        check_folder_name(name)
    reference, options = dataset_reference(dataset), dataset_options_record(dataset_options)
    folder = comparison_dir(list(specs), dataset, Path(out), name)
    # once: every run trains and is tested on this same copy (under torchrun, rank 0 loads it first)
    data = distributed.main_first(lambda: open_dataset(reference, options))
    checked = _check_fit(resolved, data, configs)  # the pre-flight, once per network: its runs take it
    check_tta(tta, tuple(data.image_shape))  # before any run trains: an MLP takes the same image
    distributed.on_main(lambda: _open_dir(folder, options_record(specs, reference, configs, seeds, options)))
    if executor.kind == "sequential":
        with using_threads(executor.threads):
            trained = {spec: [_train_seed(folder, spec, resolved[spec], reference, data, configs[spec],
                                          configs[spec].seed + k, options, callback, checked[spec])
                              for k in range(seeds)]
                       for spec in specs}
    else:
        trained = _train_concurrently(folder, list(specs), resolved, seeds, (reference, options), data, configs,
                                      executor, callback)
    if not distributed.is_main():
        return None  # under torchrun, rank 0 alone evaluates, analyses and writes
    comparison = analyse(folder, trained, data, {spec: digest for spec, (_, digest) in resolved.items()}, tta)
    write_json(folder / "comparison.json", comparison.to_dict(), root=folder)
    return comparison


def _join_torchrun(configs: dict[str, TrainConfig], executor: ExecutorOptions, callback):
    """Under torchrun: join the other processes (each run is trained by all of them); rank 0's callback."""
    if not distributed.setup():
        return callback
    for config in configs.values():
        distributed.check_batch(config.batch_size)
    return callback if distributed.is_main() else None


def _train_seed(folder: Path, spec: str, resolved: tuple, dataset: str, data, config: TrainConfig, seed: int,
                options: dict, callback, preflight=None) -> tuple[Path, str, int]:
    """``(run directory, status, seed)`` of one model and seed, trained, resumed or reused (``preflight``:
    the network's, checked once for all its seeds)."""

    model_spec, digest = resolved
    seeded = TrainConfig.from_dict({**config.to_dict(), "seed": seed})
    run_dir = run_dir_of(folder, spec, digest, seed)
    if callback is not None:
        callback.note(f"== {spec}, seed {seed}: {run_dir}")
    return run_dir, train_or_resume(run_dir, model_spec, dataset, data, seeded, options, callback, preflight), seed


def run_dir_of(folder: Path, spec: str, digest: str, seed: int) -> Path:
    """A run's folder in the comparison (``runs/`` made if missing): the spec's name, its digest, the seed."""
    from cnnlab.files import make_folder

    runs = distributed.on_main(lambda: make_folder(folder / "runs", root=folder))  # rank 0 makes it, for all
    return runs / f"{_slug(spec)}-{digest[:DIGEST_CHARS]}-seed{seed}"


def _train_concurrently(folder: Path, specs: list[str], resolved: dict, seeds: int, dataset: tuple[str, dict], data,
                        configs: dict[str, TrainConfig], executor: ExecutorOptions, callback) -> dict:
    """Every unfinished run as a job on ``executor``; ``{spec: [(run directory, status, seed)]}`` once all succeeded.

    Finished runs are reused here, without a worker. The workers load the dataset from its
    reference; each run's recorded dataset identity is then checked against ``data``, the
    copy the analyses use.
    """
    from cnnlab.engine.checkpoint import WEIGHTS
    from cnnlab.experiment.executor import run_jobs

    jobs = _jobs(folder, specs, resolved, seeds, dataset, configs, executor)
    status = {job.run_dir: reuse_run(Path(job.run_dir), data, dataset[0]) for job in jobs
              if os.path.lexists(job.run_dir) and (Path(job.run_dir) / WEIGHTS).exists()}
    pending = [job for job in jobs if job.run_dir not in status]
    results = run_jobs(pending, executor, callback.note if callback is not None else lambda _: None) if pending else []
    failed = [result for result in results if result.error is not None]
    if failed:
        raise ExecutorError(f"{len(failed)} of {len(jobs)} runs failed ("
                            + "; ".join(f"{r.label} seed {r.seed}: {r.error}" for r in failed)
                            + "); the finished runs are kept: run the same command again to train only the rest")
    for result in results:
        reuse_run(Path(result.run_dir), data, dataset[0])  # the dataset identity the worker recorded, checked
        status[result.run_dir] = result.status
    return {spec: [(Path(job.run_dir), status[job.run_dir], job.seed) for job in jobs if job.label == spec]
            for spec in specs}


def _jobs(folder: Path, specs: list[str], resolved: dict, seeds: int, dataset: tuple[str, dict],
          configs: dict[str, TrainConfig], executor: ExecutorOptions) -> list:
    """A :class:`RunJob` per spec and seed, in the comparison's order: references and options, no arrays."""
    from cnnlab.engine.device import resolve_device
    from cnnlab.experiment.executor import RunJob

    def job(spec: str, config: TrainConfig, seed: int) -> RunJob:
        return RunJob(str(run_dir_of(folder, spec, resolved[spec][1], seed)), spec, resolved[spec][0].to_dict(),
                      seed, dataset[0], dataset[1], {**config.to_dict(), "seed": seed}, executor.threads,
                      resolve_device(config.device).type)

    return [job(spec, configs[spec], configs[spec].seed + k) for spec in specs for k in range(seeds)]


def analyse(folder: Path, trained: dict[str, list[tuple[Path, str, int]]], data,
            digests: dict[str, str] | None = None, tta: str | None = None) -> Comparison:
    """Evaluate every run on the test part (also with ``tta``, where given), with the deeper analyses
    (shifted images, first-layer filters) on every seed: the report's claims are judged over the seeds.

    ``trained`` maps each spec to its runs' ``(run directory, status, seed)``; ``digests``
    each spec to its content's sha256. The first two models' first-seed networks, loaded once, are
    measured and then explained on the test images they disagree on (:mod:`cnnlab.experiment.explanations`).
    """
    from cnnlab.api.loading import load_model
    from cnnlab.experiment.analysis import evaluate_run
    from cnnlab.experiment.explanations import explain_disagreements

    digests = digests or {}
    networks = {spec: load_model(runs[0][0]) for spec, runs in list(trained.items())[:2]}  # first seeds

    def network(spec: str, run_dir: Path):
        return networks[spec].module if spec in networks and run_dir == trained[spec][0][0] else None

    models = [ModelResult(spec, [evaluate_run(run_dir, data, status=status, seed=seed, deep=True, tta=tta,
                                              network=network(spec, run_dir))
                                 for run_dir, status, seed in runs], digests.get(spec))
              for spec, runs in trained.items()]
    split = read_json(models[0].first.run_dir / "manifest.json").get("split")
    return Comparison(folder, models, DatasetFacts.of(data, split), data,
                      explain_disagreements(models, networks, data))
