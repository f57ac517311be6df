"""Pages of a memory-mapped array: whether an array is mapped, handing its pages back, reading its bytes.

A leaf of ``cnnlab.data``: the dataset's content hash and the mapped image cache
(:mod:`cnnlab.data.mapped`) both read through it.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np

RELEASE_EVERY_BYTES = 64 * 2**20
# A read fault maps more than the row it reads: the kernel's fault-around (64 KiB), and on kernels that
# keep files in the page cache as large folios, the whole folio, up to a 2 MiB huge page (measured on
# Linux 6.18: 32 scattered rows of 12 KiB left 60 MB resident). Each scattered row is counted as that
# much, so a shuffled batch is released about every step: a madvise costs about 0.06 ms, a step milliseconds.
FAULT_BYTES = 2 * 2**20
HASH_CHUNK_BYTES = 32 * 2**20


def is_mapped(array) -> bool:
    """Whether ``array`` reads a file through a map (``np.load(mmap_mode=...)`` or one of its views)."""
    return getattr(array, "_mmap", None) is not None


class MappedPages:
    """Hands the pages of a read-only map back to the kernel every ``every`` bytes read.

    Without it, one epoch over a 2.4 GB cache leaves 2.4 GB resident. ``MADV_DONTNEED`` on
    a read-only file map drops the pages from this process only: the kernel's page cache
    keeps them while memory is free, so reading them again costs no disk access. Views of
    one map share its ``mmap``; releasing through any of them releases them all.
    """

    def __init__(self, array: np.ndarray, every: int = RELEASE_EVERY_BYTES):
        self.map = getattr(array, "_mmap", None)
        self.every, self.since = every, 0

    def read(self, rows: int, row_bytes: int, contiguous: bool = False) -> None:
        """Count ``rows`` rows of ``row_bytes`` read (scattered rows, or one contiguous run of them);
        release once the estimate of what they left resident passes ``every``."""
        faults = 1 if contiguous else rows
        self.since += rows * row_bytes + faults * FAULT_BYTES
        if self.since >= self.every:
            self.release()

    def release(self) -> None:
        self.since = 0
        if self.map is not None and not self.map.closed and hasattr(self.map, "madvise"):
            self.map.madvise(mmap.MADV_DONTNEED)


def byte_chunks(array: np.ndarray, chunk_bytes: int = HASH_CHUNK_BYTES) -> Iterator[memoryview]:
    """The bytes of ``array`` in row order, without copying it whole: one view for an array in memory,
    chunks of rows for a mapped one (its pages released after each chunk)."""
    pages = MappedPages(array, every=0) if is_mapped(array) else None  # released after every chunk
    array = np.ascontiguousarray(array)  # a view of a contiguous array, mapped or not
    if array.size == 0:
        return  # no bytes (and memoryview cannot cast a shape with a zero)
    if pages is None:
        yield memoryview(array).cast("B")
        return
    rows = max(1, chunk_bytes // max(array[:1].nbytes, 1))
    for start in range(0, len(array), rows):
        yield memoryview(array[start:start + rows]).cast("B")
        pages.release()
