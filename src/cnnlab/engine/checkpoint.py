"""Checkpoints: one file, written atomically, loadable with ``weights_only=True``.

It holds the model and optimizer state, the scheduler, the epoch, the history,
early-stopping state, and every RNG state (torch CPU and CUDA, the shuffle
generator, numpy, Python), so a resumed run continues exactly. The final weights
are also exported as safetensors for use elsewhere.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from cnnlab.engine.loop import TrainState
from cnnlab.errors import CnnlabError

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"


class CheckpointError(CnnlabError):
    """A checkpoint that is missing or unreadable; names the file."""


def _rng_states(state: TrainState) -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "shuffle": state.shuffle_generator.get_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _python_state(),
    }


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_rng_states(rng: dict, state: TrainState) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    state.shuffle_generator.set_state(rng["shuffle"])
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(state: TrainState, run_dir: Path) -> Path:
    """Write the checkpoint to a temporary file, then rename it over the old one."""
    payload = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "epoch": state.epoch,
        "history": state.history,
        "early_stopping": {"best": state.best, "wait": state.wait, "stopped": state.stopped_early},
        "rng": _rng_states(state),
    }
    path = Path(run_dir) / CHECKPOINT
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".checkpoint.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # atomic: a crash leaves the previous checkpoint intact
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(state: TrainState, run_dir: Path) -> TrainState:
    """Restore ``state`` in place from ``run_dir``'s checkpoint (``weights_only=True``)."""
    path = Path(run_dir) / CHECKPOINT
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint (did the first epoch finish?)") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({exc})") from None
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if state.scheduler is not None and payload["scheduler"] is not None:
        state.scheduler.load_state_dict(payload["scheduler"])
    state.epoch, state.history = payload["epoch"], payload["history"]
    stopping = payload["early_stopping"]
    state.best, state.wait, state.stopped_early = stopping["best"], stopping["wait"], stopping["stopped"]
    _set_rng_states(payload["rng"], state)
    return state


def export_weights(model: torch.nn.Module, path: Path) -> Path:
    """The model's weights (and batchnorm statistics) as a safetensors file, atomically."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    return Path(path)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        model.load_state_dict(load_file(str(path)))
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot load weights ({exc})") from None
