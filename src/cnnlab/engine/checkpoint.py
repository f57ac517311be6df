"""Checkpoints: one file, written atomically, loadable with ``weights_only=True``.

It holds the model and optimizer state, the scheduler, the epoch, the history,
early-stopping state, and every RNG state (torch CPU and CUDA, the shuffle
generator, numpy, Python), so a resumed run continues exactly. A run trained by
several processes also holds each process's RNG states (``rank_rng``, in rank order):
rank 0 writes the file, and on ``--resume`` reads it for all of them. The final weights
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
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from cnnlab.engine import distributed
from cnnlab.engine.loop import TrainState
from cnnlab.engine.restore import CheckpointError, load_module_state, restore_state
from cnnlab.files import read_regular, write_file
from cnnlab.formats import check_stored_zip
from cnnlab.net.fields import shown

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"
WEIGHTS_FORMAT = "cnnlab-weights/1"  # in the header: a weights file cnnlab wrote (save_weights may replace it)
MAX_FILE_BYTES = 8 * 1024**3  # far above any network cnnlab trains; a bound for a planted file

__all__ = ["CHECKPOINT", "WEIGHTS", "CheckpointError", "export_weights", "load_checkpoint", "load_weights",
           "read_checkpoint", "rng_states", "save_checkpoint"]


def rng_states(state: TrainState) -> dict:
    """This process's RNG states: torch (CPU, CUDA), the shuffle generator, numpy, Python."""
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


def save_checkpoint(state: TrainState, run_dir: Path, rank_rng: list[dict] | None = None) -> Path:
    """Serialise the state, then store it atomically over the previous checkpoint.

    ``rank_rng``: every process's :func:`rng_states`, in rank order, when several trained.
    """
    payload = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "epoch": state.epoch,
        "history": [record.to_dict() for record in state.history],
        "early_stopping": {"best": state.best, "wait": state.wait, "stopped": state.stopped_early},
        "rng": rng_states(state),
    }
    if state.average is not None:
        payload["average"] = state.average.state_dict()
    if state.lookahead is not None:
        payload["lookahead"] = state.lookahead.state_dict()
    if rank_rng is not None:
        payload["rank_rng"] = rank_rng
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_file(Path(run_dir) / CHECKPOINT, buffer.getvalue(), root=run_dir)


def _checkpoint_bytes(path: Path) -> bytes:
    if not path.exists():
        raise CheckpointError(f"{path}: no checkpoint (did the first epoch finish?)")
    return read_regular(path, MAX_FILE_BYTES, CheckpointError, "checkpoint")


def _check_archive(path: Path, data: bytes) -> None:
    """torch.save writes a zip file whose members carry CRCs; torch.load checks none of them, so
    damaged tensor bytes would load as wrong weights. Check them all first."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # torch.save stores its members uncompressed: a deflated one would inflate unbounded (a zip bomb)
            check_stored_zip(data, str(path), CheckpointError)
            damaged = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        raise CheckpointError(f"{path}: not a readable checkpoint (not the zip file torch.save writes: "
                              "truncated, damaged or another format)") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: damaged: its member {shown(damaged)} fails its CRC check; refused")


def read_checkpoint(path: Path, data: bytes | None = None):
    """A checkpoint's payload, unpickled with ``weights_only=True``; errors name the file only.

    ``data``: the file's bytes, already read (by rank 0, for every process of a torchrun job).
    """
    path = Path(path)
    data = _checkpoint_bytes(path) if data is None else data
    _check_archive(path, data)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the error below says it all
            warnings.simplefilter("ignore")
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
    data = distributed.on_main(lambda: _checkpoint_bytes(path))  # several processes: rank 0 reads for all
    restore_state(state, read_checkpoint(path, data), path, epochs)
    return state


def export_weights(model: torch.nn.Module, path: Path, root: Path | None = None) -> Path:
    """The model's weights (and batchnorm statistics) as a safetensors file, atomically.

    ``root``, the run folder, bounds the check for links (default: the file's folder).
    """
    from safetensors.torch import save

    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    path = Path(path)
    return write_file(path, save(tensors, metadata={"format": WEIGHTS_FORMAT}), root=root or path.parent)


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
