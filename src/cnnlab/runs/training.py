"""Train a network in a new run directory, or resume an interrupted run exactly where it stopped.

Everything that can be refused (options, device, dataset, spec, names) is checked
before the run folder is made. A run that fails before its first checkpoint leaves
nothing behind; one killed before it (so nothing could clean up) restarts from epoch
0 on ``--resume``, with its saved config.

Under torchrun every process calls :func:`train` (or :func:`resume`) and trains its part
of each batch (:mod:`cnnlab.engine.data_parallel`); rank 0 alone makes, reads and writes
the run directory and reports progress (:func:`cnnlab.engine.distributed.on_main`).
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import yaml

from cnnlab.engine import distributed
from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.preflight import Preflight, check_network, check_options
from cnnlab.engine.recipes import recipe_config
from cnnlab.engine.records import EpochRecord, TrainingFacts
from cnnlab.engine.steps import NonFiniteLossError
from cnnlab.files import write_file
from cnnlab.net.resolve import resolve_spec
from cnnlab.net.spec import parse_spec
from cnnlab.runs.directory import (
    RunError,
    check_folder_name,
    clear_for_restart,
    discard_run,
    new_run_dir,
    open_dataset,
    require_run,
    safe_name,
    write_json,
    write_metrics,
)
from cnnlab.runs.records import (
    check_dataset,
    dataset_identity,
    dataset_options_record,
    dataset_reference,
    manifest,
    read_config,
    record_precision,
    recorded_identity,
    recorded_precision,
    saved_config,
)


@dataclass
class RunResult:
    """A finished (or early-stopped) run: where it is, its history, the split audit, the time estimate."""

    run_dir: Path
    history: list[EpochRecord]
    split_audit: dict | None
    estimate_seconds: float | None = None


def train(spec, dataset: str = "cifar10", config: TrainConfig | None = None, *, out: str | Path = "runs",
          name: str | None = None, dataset_options: dict | None = None, callback=None,
          argv: list[str] | None = None, data=None, preflight: Preflight | None = None) -> RunResult:
    """Train ``spec`` on ``dataset`` in a new run directory under ``out``; returns its history.

    ``data`` is the dataset already loaded (``cnnlab compare`` loads it once for all its
    runs); ``dataset`` and ``dataset_options`` are recorded either way (a path made
    absolute, with the data's identity), so the run can be resumed and evaluated on its own.
    ``preflight``: ``spec`` already checked on ``data`` with ``config``'s options
    (:func:`cnnlab.engine.preflight.preflight_run`, run once by ``cnnlab compare`` for all seeds).
    """
    distributed.setup()  # under torchrun: join the other processes
    callback = callback if distributed.is_main() else None  # rank 0 reports for all
    config, data, preflight, record = _checked(spec, dataset, config, name, dataset_options, data, preflight)
    model_spec, info = preflight.spec, preflight.info
    made: list[Path] = []  # the folder, once rank 0 has made it
    try:
        run_dir = distributed.on_main(lambda: _new_run(Path(out), name, model_spec, data, record, info, made))
        return _run(RunRecorder(run_dir, data, config, argv, resume=False), model_spec, callback)
    except BaseException:
        if made:
            _discard_if_nothing_kept(made[0])
        raise


def _new_run(out: Path, name: str | None, model_spec, data, record: dict, info, made: list[Path]) -> Path:
    """A new run folder (appended to ``made`` at once) holding its config, spec and summary."""
    from cnnlab.presenters.summary_table import format_summary

    run_dir = new_run_dir(out, name or safe_name(f"{model_spec.name}-{data.name}"), explicit=name is not None)
    made.append(run_dir)
    write_json(run_dir / "config.json", record)
    write_file(run_dir / "spec.yaml", yaml.safe_dump(model_spec.to_dict(), sort_keys=False).encode(), root=run_dir)
    write_file(run_dir / "summary.txt", format_summary(info).encode(), root=run_dir)
    return run_dir


def _checked(spec, dataset, config: TrainConfig | None, name: str | None, dataset_options: dict | None, data,
             preflight: Preflight | None):
    """Everything a new run can be refused for, checked once: ``(config, data, preflight, config.json record)``."""
    config = (config or recipe_config(spec)).validate()  # none given: the preset's own recipe, else homework
    device = check_options(config) if preflight is None else None  # before the dataset is loaded
    distributed.check_batch(config.batch_size)
    if name is not None:
        check_folder_name(name)
    reference, options = dataset_reference(dataset), dataset_options_record(dataset_options)
    data = data if data is not None else distributed.main_first(lambda: open_dataset(reference, options))
    # a network too big for the device, or options the data cannot take: no folder yet
    preflight = preflight or check_network(resolve_spec(spec), config, data, device)
    record = {"spec": preflight.spec.to_dict(), "dataset": reference, "dataset_options": options,
              "dataset_identity": dataset_identity(data), "train": config.to_dict()}
    return config, data, preflight, record


def _discard_if_nothing_kept(run_dir: Path) -> None:
    """A new run that died before its first checkpoint holds nothing worth keeping: remove it,
    so it blocks no later attempt under its name."""
    from cnnlab.engine.checkpoint import CHECKPOINT

    if not os.path.lexists(run_dir / CHECKPOINT):
        with suppress(Exception):  # the original error is the one to report
            discard_run(run_dir)


def resume(run_dir: str | Path, callback=None, argv: list[str] | None = None, *, data=None) -> RunResult:
    """Continue an interrupted run from its last checkpoint, exactly where it stopped.

    A run killed before its first checkpoint restarts from epoch 0 with its saved config.
    ``data``, the dataset already loaded, must be the one the run started on (its
    identity is checked against the run's record).
    """
    from cnnlab.engine.device import resolve_device

    distributed.setup()
    callback = callback if distributed.is_main() else None
    run_dir = Path(run_dir)
    saved = distributed.on_main(lambda: read_config(require_run(run_dir)))  # rank 0 reads the run for all
    config = saved_config(saved)
    config.precision = recorded_precision(saved, run_dir) or config.precision  # "auto" keeps its first choice
    resolve_device(config.device)
    distributed.check_batch(config.batch_size)
    model_spec = parse_spec(saved["spec"], source=str(run_dir / "config.json"))
    data = data if data is not None else distributed.main_first(
        lambda: open_dataset(saved["dataset"], saved["dataset_options"]))
    identity = distributed.on_main(lambda: recorded_identity(run_dir, saved))
    check_dataset(run_dir, identity, data, f"the dataset {saved['dataset']}")
    restart = distributed.on_main(lambda: _restart_if_no_checkpoint(run_dir, callback))
    return _run(RunRecorder(run_dir, data, config, argv, resume=not restart), model_spec, callback)


def _restart_if_no_checkpoint(run_dir: Path, callback) -> bool:
    """Whether the run restarts from epoch 1 (no epoch had finished); its records of that attempt go."""
    from cnnlab.engine.checkpoint import CHECKPOINT, WEIGHTS

    restart = not (run_dir / CHECKPOINT).exists()
    if restart and (run_dir / WEIGHTS).exists():
        raise RunError(f"{run_dir}: finished (it has {WEIGHTS}) but its {CHECKPOINT} is gone; nothing to resume")
    if restart:
        clear_for_restart(run_dir)
        if callback is not None:
            callback.note(f"{run_dir}: no epoch had finished; restarting from epoch 1 with its saved config")
    return restart


def _run(recorder: RunRecorder, model_spec, callback) -> RunResult:
    from cnnlab.engine.checkpoint import WEIGHTS, export_weights
    from cnnlab.engine.session import train_model
    from cnnlab.net.builder import build_model

    data, config = recorder.data, recorder.config
    try:
        with distributed.peers_guard():  # the recorder first: an epoch's checkpoint before it is shown
            session = train_model(lambda: build_model(model_spec, init=config.init), data.x_train, data.y_train,
                                  config, class_names=data.class_names, callbacks=[recorder, callback])
    except NonFiniteLossError as exc:
        kept = exc.epoch - 1  # every finished epoch was checkpointed before the next began
        note = (f"the checkpoint of epoch {kept} is kept in {recorder.run_dir}" if kept
                else "no epoch had finished, so no checkpoint was kept")
        raise NonFiniteLossError(exc.epoch, exc.step, exc.value, kept=note) from None
    distributed.on_main(lambda: export_weights(session.state.model, recorder.run_dir / WEIGHTS,
                                               root=recorder.run_dir))
    return RunResult(recorder.run_dir, session.state.history, recorder.audit, recorder.estimate)


class RunRecorder(TrainingCallback):
    """The run directory's side of training, on the engine's callback list: its records before the
    first epoch (manifest, or the checkpoint restored) and after each (checkpoint, then metrics)."""

    def __init__(self, run_dir: Path, data, config: TrainConfig, argv, resume: bool):
        self.run_dir, self.data, self.config = run_dir, data, config
        self.argv, self.resume = argv, resume
        self.audit: dict | None = None
        self.estimate: float | None = None

    def on_session(self, session, facts: TrainingFacts) -> None:
        """Restore the checkpoint (resume) or write the manifest (new run); the run's facts for the presenters."""
        from cnnlab.engine.checkpoint import load_checkpoint

        self.audit = session.split.audit(self.data) if session.split is not None else None
        self.config = session.config  # its precision resolved: what the epochs run in, recorded in config.json
        distributed.on_main(lambda: record_precision(self.run_dir, self.config.precision))
        if self.resume:
            load_checkpoint(session.state, self.run_dir, self.config.epochs)  # rank 0 reads it for all
            distributed.on_main(lambda: write_metrics(self.run_dir, _rows(session.state.history)))
        else:
            device = session.tensors.x_train.device
            distributed.on_main(lambda: write_json(self.run_dir / "manifest.json", {
                **manifest(self.data, self.config, device, self.argv), "split": self.audit,
                **distributed.describe()}))
        facts.run_dir = str(self.run_dir)
        facts.split_audit = None if self.resume else self.audit
        facts.resumed_at_epoch = session.state.epoch if self.resume else None

    def on_train_begin(self, facts: TrainingFacts) -> None:
        self.estimate = facts.estimate_seconds

    def on_epoch_end(self, record: EpochRecord, state) -> None:
        """After each epoch: the checkpoint, then the metrics and history that match it."""
        from cnnlab.engine.checkpoint import rng_states

        rngs = distributed.gather(rng_states(state))  # every process's, for an exact resume
        distributed.on_main(lambda: self._write_epoch(state, rngs))

    def _write_epoch(self, state, rngs: list[dict]) -> None:
        from cnnlab.engine.checkpoint import save_checkpoint

        # First the checkpoint: the metrics never run ahead of it.
        save_checkpoint(state, self.run_dir, rngs if len(rngs) > 1 else None)
        rows = _rows(state.history)
        write_metrics(self.run_dir, rows)
        write_json(self.run_dir / "history.json", rows)


def _rows(history: list[EpochRecord]) -> list[dict]:
    """The history as the run's files hold it: one JSON record per epoch."""
    return [record.to_dict() for record in history]
