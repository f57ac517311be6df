"""Checkpoints: one file, written atomically, loadable with ``weights_only=True``.

It holds the model and optimizer state, the scheduler, the epoch, the history,
early-stopping state, and every RNG state (torch CPU and CUDA, the shuffle
generator, numpy, Python), so a resumed run continues exactly. The final weights
are also exported as safetensors for use elsewhere.

Both are serialised in memory and stored with :func:`cnnlab.files.write_file`: a full
disk or a read-only folder is then one error naming the file, never a half-written one.
Reading never passes torch's or safetensors' own error text on (it shows object reprs,
and torch's advises the unsafe ``weights_only=False``).
"""

from __future__ import annotations

import io
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from cnnlab.engine.loop import TrainState
from cnnlab.engine.restore import CheckpointError, load_module_state, restore_state
from cnnlab.files import read_regular, write_file

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"
MAX_FILE_BYTES = 8 * 1024**3  # far above any network cnnlab trains; a bound for a planted file

__all__ = ["CHECKPOINT", "WEIGHTS", "CheckpointError", "export_weights", "load_checkpoint", "load_weights",
           "read_checkpoint", "save_checkpoint"]


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


def save_checkpoint(state: TrainState, run_dir: Path) -> Path:
    """Serialise the state, then store it atomically over the previous checkpoint."""
    payload = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "epoch": state.epoch,
        "history": state.history,
        "early_stopping": {"best": state.best, "wait": state.wait, "stopped": state.stopped_early},
        "rng": _rng_states(state),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_file(Path(run_dir) / CHECKPOINT, buffer.getvalue(), root=run_dir)


def read_checkpoint(path: Path):
    """A checkpoint's payload, unpickled with ``weights_only=True``; errors name the file only."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no checkpoint (did the first epoch finish?)")
    data = read_regular(path, MAX_FILE_BYTES, CheckpointError, "checkpoint")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: holds objects other than tensors and plain data; refused (cnnlab "
                              "loads checkpoints with weights_only=True and nothing else)") from None
    except Exception:  # torch's text for a bad file includes reprs and unsafe advice: never shown
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, damaged or another format)") from None


def load_checkpoint(state: TrainState, run_dir: Path, epochs: int | None = None) -> TrainState:
    """Restore ``state`` in place from ``run_dir``'s checkpoint, each part checked first.

    ``epochs``, the run's planned epochs, bounds the checkpoint's epoch.
    """
    path = Path(run_dir) / CHECKPOINT
    restore_state(state, read_checkpoint(path), path, epochs)
    return state


def export_weights(model: torch.nn.Module, path: Path, root: Path | None = None) -> Path:
    """The model's weights (and batchnorm statistics) as a safetensors file, atomically.

    ``root``, the run folder, bounds the check for links (default: the file's folder).
    """
    from safetensors.torch import save

    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    path = Path(path)
    return write_file(path, save(tensors), root=root or path.parent)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Weights from a safetensors file, checked against ``model``'s names and shapes first."""
    from safetensors.torch import load

    path = Path(path)
    data = read_regular(path, MAX_FILE_BYTES, CheckpointError, "weights file")
    try:
        tensors = load(data)
    except Exception:  # safetensors' own text varies by version; the cause is the file either way
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated, damaged or another "
                              "format)") from None
    load_module_state(model, tensors, path, "weights")
