"""One run's folder brought up to date: trained when absent, resumed when interrupted, reused when finished.

A comparison calls this for each of its runs, in this process or in a worker
(:mod:`cnnlab.experiment.executor`); it lives below both so that neither imports the other.
cnnlab adopts only run folders it made, and reuses a finished one only if it was
trained on the same data.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.engine import distributed
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.records import RunStatus
from cnnlab.runs.directory import require_run
from cnnlab.runs.records import check_dataset, read_config, recorded_identity


def train_or_resume(run_dir: Path, model_spec, dataset: str, data, config: TrainConfig, options: dict,
                    callback, preflight=None) -> RunStatus:
    """Train a run that is not there; reuse a finished one (on the same data); resume any other.
    ``preflight``: the network already checked on ``data`` (:mod:`cnnlab.engine.preflight`), or None.

    Under torchrun, rank 0 looks at the folder and decides for every process.
    """
    from cnnlab.runs.training import resume, train

    status = distributed.on_main(lambda: run_status(run_dir, data, dataset))
    if status is RunStatus.TRAINED:
        train(model_spec, dataset, config, out=run_dir.parent, name=run_dir.name, dataset_options=options,
              callback=callback, data=data, preflight=preflight)
    elif status is RunStatus.RESUMED:
        resume(run_dir, callback, data=data)
    return status


def run_status(run_dir: Path, data, dataset: str) -> RunStatus:
    """What a run's folder needs: ``"trained"`` (none yet), ``"reused"`` (finished) or ``"resumed"``."""
    from cnnlab.engine.checkpoint import WEIGHTS

    if not os.path.lexists(run_dir):
        return RunStatus.TRAINED
    require_run(run_dir, link_ok=False)  # a folder cnnlab did not make is never adopted
    return reuse_run(run_dir, data, dataset) if (run_dir / WEIGHTS).exists() else RunStatus.RESUMED


def reuse_run(run_dir: Path, data, dataset: str) -> RunStatus:
    """A finished run, if cnnlab made it and it was trained on ``data``: ``"reused"``."""
    require_run(run_dir, link_ok=False)
    check_dataset(run_dir, recorded_identity(run_dir, read_config(run_dir)), data, f"the dataset {dataset}")
    return RunStatus.REUSED
