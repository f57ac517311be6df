"""Restoring a training state from a checkpoint's payload, each part checked before it is used.

``torch.load(weights_only=True)`` guarantees only that loading built no objects: the
payload may still be any dicts, lists, numbers and tensors. A checkpoint from another
network, a damaged one or a crafted one would otherwise fail deep inside training, or
not at all (a string where a number belongs). Each part is compared with what this
run's fresh state looks like, and a mismatch is one error naming the file and the part.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch

from cnnlab.engine import distributed
from cnnlab.engine.loop import TrainState
from cnnlab.engine.records import RECORD_KEYS, EpochRecord
from cnnlab.errors import CnnlabError
from cnnlab.net.fields import shown

PARTS = ("model", "optimizer", "scheduler", "epoch", "history", "early_stopping", "rng")
RNG_KEYS = {"torch", "cuda", "shuffle", "numpy", "python"}
OPTIMIZER_SLOTS = {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer", "square_avg", "grad_avg"}
# What a malformed part makes torch, numpy or random raise; the message says which part.
_MISFITS = (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError)


class CheckpointError(CnnlabError):
    """A checkpoint or weights file that is missing, unreadable or does not fit; names the file."""


def _names(keys) -> str:
    keys = list(keys)
    listed = ", ".join(shown(key) for key in keys[:3])
    return listed + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def load_module_state(module: torch.nn.Module, loaded, path: Path, what: str) -> None:
    """Load ``loaded`` into ``module`` after checking its names and shapes against the module's."""
    expected = module.state_dict()
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: the {what} are not a table of named tensors")
    missing = [key for key in expected if key not in loaded]
    unexpected = [key for key in loaded if key not in expected]
    wrong = [key for key, value in expected.items() if key in loaded
             and not (isinstance(loaded[key], torch.Tensor) and loaded[key].shape == value.shape)]
    problems = ([f"missing {_names(missing)}"] if missing else []) + \
               ([f"unexpected {_names(unexpected)}"] if unexpected else []) + \
               [f"{shown(key)} is {_shape(loaded[key])}, the network's is {tuple(expected[key].shape)}"
                for key in wrong[:3]]
    if problems:
        raise CheckpointError(f"{path}: the {what} do not fit the run's network: {'; '.join(problems)}")
    try:
        module.load_state_dict(loaded)
    except _MISFITS:
        raise CheckpointError(f"{path}: the {what} do not fit the run's network (tensor types)") from None


def _shape(value) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else f"not a tensor ({type(value).__name__})"


def same_form(fresh, loaded) -> bool:
    """Whether ``loaded`` has ``fresh``'s structure: keys, lengths, tensor shapes, value types."""
    if isinstance(fresh, torch.Tensor):
        return isinstance(loaded, torch.Tensor) and loaded.shape == fresh.shape and loaded.dtype == fresh.dtype
    if isinstance(fresh, dict):
        return isinstance(loaded, dict) and loaded.keys() == fresh.keys() and \
            all(same_form(fresh[key], loaded[key]) for key in fresh)
    if isinstance(fresh, (list, tuple)):
        return isinstance(loaded, (list, tuple)) and len(loaded) == len(fresh) and all(map(same_form, fresh, loaded))
    if isinstance(fresh, float):
        return type(loaded) in (int, float) and math.isfinite(loaded)
    if isinstance(fresh, (bool, int)) or fresh is None:
        return type(loaded) is type(fresh)
    return loaded == fresh  # strings name a mode ('cos'): this run's own


def _fail(path: Path, part: str, detail: str):
    raise CheckpointError(f"{path}: the checkpoint's {part} does not fit this run ({detail})")


def _restore_optimizer(state: TrainState, saved, path: Path) -> None:
    fresh = state.optimizer.state_dict()
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"} or \
            not same_form(fresh["param_groups"], saved["param_groups"]):
        _fail(path, "optimizer state", "another optimizer, or other settings")
    params = [p for group in state.optimizer.param_groups for p in group["params"]]
    slots = saved["state"]
    if not isinstance(slots, dict) or not set(slots) <= set(range(len(params))):
        _fail(path, "optimizer state", "its parameters are not this network's")
    for index, slot in slots.items():
        if not isinstance(slot, dict) or not set(slot) <= OPTIMIZER_SLOTS or not all(
                value is None or isinstance(value, torch.Tensor) and value.shape in ((), params[index].shape)
                for value in slot.values()):
            _fail(path, "optimizer state", f"the moments of parameter {index} have other shapes")
    try:
        state.optimizer.load_state_dict(saved)
    except _MISFITS:
        _fail(path, "optimizer state", "torch refused it")


def _restore_scheduler(state: TrainState, saved, path: Path) -> None:
    if state.scheduler is None or saved is None:
        if (state.scheduler is None) != (saved is None):
            _fail(path, "learning-rate schedule", "another schedule")
        return
    if not same_form(state.scheduler.state_dict(), saved):
        _fail(path, "learning-rate schedule", "another schedule, or damaged")
    state.scheduler.load_state_dict(saved)


def _progress(payload: dict, path: Path, epochs: int | None) -> tuple[int, list[EpochRecord]]:
    epoch, history = payload["epoch"], payload["history"]
    if type(epoch) is not int or epoch < 0 or (epochs is not None and epoch > epochs):
        _fail(path, "epoch", f"{shown(epoch)}, where the run has {epochs} epochs")
    if not isinstance(history, list) or len(history) != epoch:
        _fail(path, "history", f"not one record for each of its {epoch} epochs")
    for number, record in enumerate(history, 1):
        if not isinstance(record, dict) or set(record) - {"scores"} != RECORD_KEYS or record["epoch"] != number \
                or not all(value is None or type(value) in (int, float) for key, value in record.items()
                           if key != "scores") or not _scores_fit(record.get("scores", {})):
            _fail(path, "history", f"the record of epoch {number} is damaged")
    return epoch, [EpochRecord.from_dict(record) for record in history]


def _scores_fit(scores) -> bool:
    """A record's compiled metrics: names to a number, or to a list of numbers (one per class)."""
    def number(value) -> bool:
        return type(value) in (int, float)

    return isinstance(scores, dict) and all(isinstance(key, str) and (number(value) or isinstance(value, list) and
                                                                      all(map(number, value)))
                                            for key, value in scores.items())


def _stopping(saved, path: Path) -> tuple[float | None, int, bool]:
    fits = isinstance(saved, dict) and set(saved) == {"best", "wait", "stopped"} and \
        (saved["best"] is None or type(saved["best"]) in (int, float)) and \
        type(saved["wait"]) is int and saved["wait"] >= 0 and type(saved["stopped"]) is bool
    if not fits:
        _fail(path, "early-stopping state", "damaged")
    return saved["best"], saved["wait"], saved["stopped"]


def _restore_rng(rng, state: TrainState, path: Path) -> None:
    """Every RNG state, so a resumed run draws what an uninterrupted one would."""
    if not isinstance(rng, dict) or not set(rng) >= RNG_KEYS:
        _fail(path, "random-number state", "damaged")
    try:
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        state.shuffle_generator.set_state(rng["shuffle"])
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
    except _MISFITS:
        _fail(path, "random-number state", "damaged")


def _own_rng(payload: dict, path: Path) -> tuple[dict, bool]:
    """This process's saved RNG states, and whether they are its own.

    A checkpoint of several processes holds each one's (``rank_rng``); resumed by as many,
    each takes its own and continues exactly. Otherwise every process takes rank 0's
    (``rng``), which is its own only for rank 0.
    """
    ranks = payload.get("rank_rng")
    if ranks is not None and not (isinstance(ranks, list) and ranks and all(
            isinstance(entry, dict) and set(entry) >= RNG_KEYS for entry in ranks)):
        _fail(path, "random-number states of its processes", "damaged")
    if ranks is not None and len(ranks) == distributed.world_size():
        return ranks[distributed.rank()], True
    return payload["rng"], distributed.rank() == 0


def _restore_average(state: TrainState, saved, path: Path) -> None:
    """The weights' moving average (ema_momentum), when the run keeps one."""
    if state.average is None:
        return
    if not isinstance(saved, dict) or not {"momentum", "steps", "averages"} <= set(saved):
        _fail(path, "weight average", "missing or not a weight average")
    try:
        state.average.load_state_dict(saved)
    except (TypeError, ValueError, RuntimeError, AttributeError):
        _fail(path, "weight average", "does not match this network")


def _restore_lookahead(state: TrainState, saved, path: Path) -> None:
    """Lookahead's slow weights (lookahead_sync_period), when the run keeps them."""
    if state.lookahead is None:
        return
    if not isinstance(saved, dict) or not {"steps", "slow"} <= set(saved):
        _fail(path, "lookahead weights", "missing or not lookahead weights")
    try:
        state.lookahead.load_state_dict(saved)
    except (TypeError, ValueError, RuntimeError, AttributeError):
        _fail(path, "lookahead weights", "does not match this network")


def restore_state(state: TrainState, payload, path: Path, epochs: int | None = None) -> None:
    """Check and apply every part of a checkpoint's payload to ``state`` (a fresh one)."""
    if not isinstance(payload, dict) or not set(PARTS) <= set(payload):
        missing = sorted(set(PARTS) - set(payload)) if isinstance(payload, dict) else PARTS
        raise CheckpointError(f"{path}: not a cnnlab checkpoint (no {', '.join(missing)})")
    epoch, history = _progress(payload, path, epochs)
    best, wait, stopped = _stopping(payload["early_stopping"], path)
    load_module_state(state.model, payload["model"], path, "model weights")
    _restore_optimizer(state, payload["optimizer"], path)
    _restore_scheduler(state, payload["scheduler"], path)
    _restore_average(state, payload.get("average"), path)
    _restore_lookahead(state, payload.get("lookahead"), path)
    rng, own = _own_rng(payload, path)
    _restore_rng(rng, state, path)
    if not own:  # another number of processes: this rank draws anew (one process keeps its stream)
        state.strategy.reseed(epoch)
    state.epoch, state.history = epoch, history
    state.best, state.wait, state.stopped_early = best, wait, stopped
