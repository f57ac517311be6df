"""Train a network in a new run directory, or resume an interrupted run exactly where it stopped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from cnnlab.engine.config import TrainConfig
from cnnlab.net.resolve import fit_spec, resolve_spec, summarize
from cnnlab.net.spec import parse_spec
from cnnlab.runs.directory import (
    RunError,
    manifest,
    new_run_dir,
    open_dataset,
    read_json,
    write_json,
    write_metrics,
)


@dataclass
class RunResult:
    """A finished (or early-stopped) run: where it is, its history, the split audit, the time estimate."""

    run_dir: Path
    history: list[dict]
    split_audit: dict | None
    estimate_seconds: float | None = None


def train(spec, dataset: str = "cifar10", config: TrainConfig | None = None, *, out: str | Path = "runs",
          name: str | None = None, dataset_options: dict | None = None, callback=None,
          argv: list[str] | None = None, data=None) -> RunResult:
    """Train ``spec`` on ``dataset`` in a new run directory under ``out``; returns its history.

    ``data`` is the dataset already loaded (``cnnlab compare`` loads it once for all its
    runs); ``dataset`` and ``dataset_options`` are recorded either way, so the run can be
    resumed and evaluated on its own.
    """
    from cnnlab.presenters.summary_table import format_summary

    config = (config or TrainConfig()).validate()
    options = dict(dataset_options or {})
    data = data if data is not None else open_dataset(dataset, options)
    config.validate(train_size=int(len(data.y_train) * (1 - config.val_split)))
    model_spec = fit_spec(resolve_spec(spec), data.image_shape, data.num_classes)
    info = summarize(model_spec)  # validates the spec against the data before anything is written
    base = name or f"{model_spec.name}-{data.name}"
    run_dir = new_run_dir(Path(out), base, explicit=name is not None)
    write_json(run_dir / "config.json", {"spec": model_spec.to_dict(), "dataset": str(dataset),
                                         "dataset_options": options, "train": config.to_dict()})
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(model_spec.to_dict(), sort_keys=False))
    (run_dir / "summary.txt").write_text(format_summary(info))
    return _run(_RunRecorder(run_dir, data, config, callback, argv, resume=False), model_spec)


def resume(run_dir: str | Path, callback=None, argv: list[str] | None = None, *, data=None) -> RunResult:
    """Continue an interrupted run from its last checkpoint, exactly where it stopped.

    ``data``, the dataset already loaded, must be the one the run started on (its
    sha256 is checked against the manifest's).
    """
    run_dir = Path(run_dir)
    saved = read_json(run_dir / "config.json")
    config = TrainConfig.from_dict(saved["train"]).validate()
    data = data if data is not None else open_dataset(saved["dataset"], saved["dataset_options"])
    previous = read_json(run_dir / "manifest.json")["dataset"].get("sha256")
    if previous != data.identity.get("sha256"):
        raise RunError(f"{run_dir}: the dataset changed since this run started "
                       f"(sha256 {data.identity.get('sha256')}, the run used {previous})")
    model_spec = parse_spec(saved["spec"], source=str(run_dir / "config.json"))
    return _run(_RunRecorder(run_dir, data, config, callback, argv, resume=True), model_spec)


def _run(recorder: _RunRecorder, model_spec) -> RunResult:
    from cnnlab.engine.checkpoint import WEIGHTS, export_weights
    from cnnlab.engine.session import train_model
    from cnnlab.net.builder import build_model

    data, config = recorder.data, recorder.config
    session = train_model(lambda: build_model(model_spec, init=config.init), data.x_train, data.y_train, config,
                          class_names=data.class_names, before_run=recorder.before_run,
                          callback=recorder.callback, on_epoch_saved=recorder.save_epoch)
    export_weights(session.state.model, recorder.run_dir / WEIGHTS)
    return RunResult(recorder.run_dir, session.state.history, recorder.audit, recorder.estimate)


class _RunRecorder:
    """The run directory's side of training: its records before the first epoch and after each."""

    def __init__(self, run_dir: Path, data, config: TrainConfig, callback, argv, resume: bool):
        self.run_dir, self.data, self.config = run_dir, data, config
        self.callback, self.argv, self.resume = callback, argv, resume
        self.audit: dict | None = None
        self.estimate: float | None = None

    def before_run(self, session) -> None:
        """Restore the checkpoint (resume) or write the manifest (new run), then announce the run."""
        from cnnlab.engine.checkpoint import load_checkpoint

        self.audit = session.split.audit(self.data) if session.split is not None else None
        if self.resume:
            load_checkpoint(session.state, self.run_dir)
            write_metrics(self.run_dir, session.state.history)
        else:
            device = session.tensors.x_train.device
            write_json(self.run_dir / "manifest.json",
                       {**manifest(self.data, self.config, device, self.argv), "split": self.audit})
        if session.state.epoch < self.config.epochs and self.callback is not None:
            self._announce(session)

    def _announce(self, session) -> None:
        from cnnlab.engine.session import estimate_epoch_seconds

        self.estimate = estimate_epoch_seconds(session.state, session.tensors, self.config)
        self.callback.on_train_begin({
            "run_dir": str(self.run_dir), "split_audit": None if self.resume else self.audit,
            "resumed_at_epoch": session.state.epoch if self.resume else None,
            "estimate_seconds": self.estimate, "train_count": len(session.tensors.y_train),
            "batch_size": self.config.batch_size})

    def save_epoch(self, state, record: dict) -> None:
        """After each epoch: the checkpoint, then the metrics and history that match it."""
        from cnnlab.engine.checkpoint import save_checkpoint

        save_checkpoint(state, self.run_dir)  # first: the metrics never run ahead of the checkpoint
        write_metrics(self.run_dir, state.history)
        write_json(self.run_dir / "history.json", state.history)
