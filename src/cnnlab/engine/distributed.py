"""Several processes, one training: joining a torchrun job and letting rank 0 alone touch the run's files.

``torchrun --nproc_per_node=N -m cnnlab train ...`` starts N copies of cnnlab with
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and the rendezvous address) in their
environment. :func:`setup` joins them in one process group: gloo for the CPU and, where
every local process has a GPU of its own, NCCL for CUDA tensors (one group, both
backends). Without those variables, or with ``WORLD_SIZE=1``, every helper here is a
plain call and cnnlab is the single process it always was.

Rank 0 alone reads and writes the run directory (:func:`on_main`); the others receive
what it read, and rank 0's errors, so that every process stops with the same message. A
process that dies or hangs is noticed by the others within the group's timeout (a lost
connection at once, a silent peer after ``CNNLAB_DIST_TIMEOUT`` seconds, default 600),
and reported as one :class:`DistributedError` line instead of torch's traceback.
"""

from __future__ import annotations

import atexit
import gc
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from cnnlab.engine.config import ConfigError
from cnnlab.errors import CnnlabError

T = TypeVar("T")
TIMEOUT_ENV = "CNNLAB_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0  # a checkpoint write or a slow first step on rank 0 stays well inside it
_active = False


class DistributedError(CnnlabError):
    """A multi-process training that cannot start, or lost one of its processes; names the rank."""


def torchrun_env() -> tuple[int, int, int] | None:
    """``(rank, world size, local rank)`` from torchrun's variables, or None for a single process."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise DistributedError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise DistributedError(f"RANK {rank} does not fit WORLD_SIZE {world} (torchrun sets them)")
    return (rank, world, local) if world > 1 else None


def _timeout() -> timedelta:
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise DistributedError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}"[:200])
    return timedelta(seconds=seconds)


def _gpu_per_process(local: int) -> bool:
    return torch.cuda.is_available() and local < torch.cuda.device_count()


def setup() -> bool:
    """Join the torchrun job the environment describes (once); False when this is one process alone."""
    global _active
    env = torchrun_env()
    if _active or env is None:
        return _active
    rank, world, local = env
    if not dist.is_initialized():
        backend = "gloo"
        if _gpu_per_process(local) and dist.is_nccl_available():
            torch.cuda.set_device(local)  # NCCL's communicators (and object collectives) use this GPU
            backend = "cpu:gloo,cuda:nccl"
        try:
            dist.init_process_group(backend, timeout=_timeout())  # env://: torchrun's MASTER_ADDR, MASTER_PORT
        except (RuntimeError, ValueError) as exc:  # no rendezvous address, peers that never came
            raise DistributedError(f"rank {rank} of {world}: cannot join the other processes "
                                   f"({_first_words(exc)}); start cnnlab with torchrun") from None
        atexit.register(teardown)
    _active = True
    return True


def teardown() -> None:
    """Leave the process group (at exit); a group already broken by a lost peer is left as it is."""
    global _active
    _active = False
    # A DDP wrapper left in a reference cycle holds the group's threads: freed first, or the
    # interpreter's exit destroys them still running and aborts ("terminate called ...").
    gc.collect()
    if dist.is_initialized():
        with suppress(Exception):
            dist.destroy_process_group()


def active() -> bool:
    """Whether this process trains together with others."""
    return _active and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 for a single process)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """How many processes train together (1 for a single process)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process is rank 0: the one that writes the run, prints and reports."""
    return rank() == 0


def describe() -> dict:
    """What the manifest records about the processes (nothing for a single process)."""
    if not active():
        return {}
    return {"processes": {"world_size": world_size(), "backend": str(dist.get_backend())}}


def local_device(device: torch.device) -> torch.device:
    """The device of this process: on CUDA, the GPU its LOCAL_RANK names (one GPU per process)."""
    env = torchrun_env()
    if device.type != "cuda" or env is None:
        return device
    local = env[2]
    if not _gpu_per_process(local):
        raise ConfigError(f"--device cuda with several processes needs one GPU per process; local rank {local} "
                          f"has none (torch sees {torch.cuda.device_count()})")
    return torch.device("cuda", local)


def check_batch(batch_size: int, processes: int | None = None) -> None:
    """The global batch must split evenly: each of the N processes takes batch/N images per step."""
    n = processes or world_size()
    if batch_size % n:
        lower, upper = batch_size - batch_size % n, batch_size + n - batch_size % n
        hint = f"{lower} or {upper}" if lower else str(upper)
        raise ConfigError(f"--batch-size {batch_size} does not split among {n} processes: it is the global batch "
                          f"(each process takes batch/{n} images per step); use a multiple of {n}, such as {hint}")


def _first_words(exc: BaseException) -> str:
    """torch's message without its source-file prefix and advice: ``Connection reset by peer``."""
    text = re.sub(r"^\s*\[[^\]]*\]\s*", "", str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    return (text.split(". ")[0] or type(exc).__name__)[:200]


def _lost_peer(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, getattr(dist, "DistError", ())) or "gloo" in text or "nccl" in text


@contextmanager
def peers_guard() -> Iterator[None]:
    """Turn a collective's failure (a peer died, hung past the timeout) into one DistributedError line."""
    try:
        yield
    except RuntimeError as exc:
        if not active() or isinstance(exc, CnnlabError) or not _lost_peer(exc):
            raise
        raise DistributedError(f"rank {rank()} of {world_size()}: another process of this training stopped or "
                               f"stopped answering ({_first_words(exc)}); its own output says why") from None


def _share(outcome: list) -> list:
    """Rank 0's one-element list, on every rank (a pickled broadcast over the CPU or this GPU)."""
    with peers_guard():
        dist.broadcast_object_list(outcome, src=0)
    return outcome


def _from_main(fn: Callable[[], T], send_value: bool) -> T | None:
    """Rank 0 runs ``fn``; the others get its result (``send_value``) or raise its error."""
    if rank() == 0:
        try:
            value = fn()
        except CnnlabError as exc:
            _share([("error", str(exc))])
            raise
        except BaseException as exc:
            _share([("error", f"rank 0 stopped: {_first_words(exc)}")])
            raise
        _share([("ok", value if send_value else None)])
        return value
    status, value = _share([None])[0]
    if status == "error":
        raise DistributedError(f"{value} (reported by rank 0)")
    return value


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` run by rank 0 alone (reading or writing the run's files); every rank gets its result.

    An error there is raised on every rank, so that all stop with rank 0's message.
    """
    return _from_main(fn, send_value=True) if active() else fn()


def main_first(fn: Callable[[], T]) -> T:
    """``fn()`` on every rank, rank 0 first (a download or cache it fills, that the others then find)."""
    if not active():
        return fn()
    if rank() == 0:
        return _from_main(fn, send_value=False)
    _from_main(fn, send_value=False)
    return fn()


def gather(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank (``[value]`` for a single process)."""
    if not active():
        return [value]
    values: list = [None] * world_size()
    with peers_guard():
        dist.all_gather_object(values, value)
    return values
