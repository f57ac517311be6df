"""Keeping freed memory in the process during CPU training, so that large tensors stop page-faulting.

glibc's ``malloc`` serves each block above its mmap threshold (128 KiB, rising with use up
to 32 MiB) with a fresh ``mmap`` and gives it back to the kernel with ``munmap`` on free.
A CPU training step allocates and frees the same activations every step (``fast`` at batch
512: 63 MB for one map of its first group), so every step the kernel hands out and zeroes
those pages again, one minor page fault per 4 KiB page. Measured on a 2-core AMD EPYC Zen 2
(AVX2 only), one epoch in a fresh process on CIFAR-10, glibc's defaults against
:func:`retained_heap`: ``fast`` 63.8 s (4.9 M page faults) against 60.6 s (0.75 M, most of
them the process's start); the homework's ``cnn`` 98.4 s (6.9 M) against 88.0 s (0.15 M)
(docs/benchmarks.md). This is what PyTorch's CPU tuning guide gets from jemalloc or
tcmalloc, done with glibc's own ``mallopt``: no extra library and nothing to preload.

During training only: afterwards the defaults come back and ``malloc_trim`` returns the
kept memory to the system, so a notebook does not hold the training peak for ever. A user
who tuned malloc (``MALLOC_*`` variables or glibc tunables) is left alone, and so is any C
library other than glibc.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

# mallopt's parameters (malloc.h) and glibc's defaults for them.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEEP_FREED = 2**31 - 1  # the largest trim threshold (mallopt takes an int): up to 2 GiB freed stays

_lock = threading.Lock()
_holders = 0  # trainings in this process inside retained_heap(); the last one out restores the defaults


def user_tuned_malloc(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment already tunes malloc (glibc's ``MALLOC_*_`` variables or its tunables)."""
    environ = os.environ if environ is None else environ
    return any(name.startswith("MALLOC_") for name in environ) or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")


def _glibc():
    """The running glibc (with ``mallopt`` and ``malloc_trim``), or None elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextmanager
def retained_heap(device: str = "cpu") -> Iterator[bool]:
    """Within the block, freed memory stays in the process (no ``mmap`` per large block, no trim);
    yields whether that applies (CPU training on glibc, malloc not tuned by the user)."""
    global _holders
    libc = _glibc() if device == "cpu" and not user_tuned_malloc() else None
    if libc is None:
        yield False
        return
    with _lock:
        if _holders == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED)
        _holders += 1
    try:
        yield True
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
