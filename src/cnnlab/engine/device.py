"""Where and how reproducibly training runs: the device and deterministic algorithms (seeds: seeds.py).

A leaf of the engine: every other engine module may import it, it imports none of them
but the distributed helpers (under torchrun, CUDA is the GPU of LOCAL_RANK).
"""

from __future__ import annotations

import os

import torch

from cnnlab.engine.config import ConfigError
from cnnlab.engine.distributed import local_device


def resolve_device(name: str) -> torch.device:
    """'auto' is CUDA when present, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA GPU "
                          f"(torch {torch.__version__}; see the README for a GPU build)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device '{name}'; expected auto, cpu or cuda")
    return local_device(torch.device(name))  # under torchrun, CUDA is the GPU of LOCAL_RANK


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic algorithms; an op without one then raises naming itself."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
