"""Memory-mapped image caches: a ``.npy`` of uint8 pixels beside a small ``.meta.npz``.

A converted image folder is kept as one uint8 array ``(N_train + N_test, H, W, C)``
(training rows first) that ``np.load(mmap_mode="r")`` maps instead of reading: a
dataset larger than RAM is then trained from the cache, its pages read as batches ask
for them. The labels, class names and notes sit beside it in ``<stem>.meta.npz``, with
the image array's shape, the ``.npy``'s size and the sha256 of its pixels, so a truncated,
mismatched or damaged cache is found and rebuilt, never used: the pixels are hashed on their
first use in a process (:func:`verified`; CIFAR-10's 184 MB in about 0.2 s). Both files are
written atomically (images first, so a ``.meta.npz`` never describes a half-written ``.npy``).
A cache truncated while it is mapped is one error line, not a bare SIGBUS (``cnnlab.data.bus_error``).

Pages read through a map count in the process's resident memory until they are
unmapped, and one epoch reads them all: :class:`MappedPages` hands them back to the
kernel as reading goes (see there).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from tokenize import TokenError

import numpy as np

from cnnlab.data import bus_error
from cnnlab.data import cache as cache_mod
from cnnlab.data.dataset import DatasetError
from cnnlab.data.pages import MappedPages, byte_chunks, is_mapped  # noqa: F401  (importable from here too)
from cnnlab.files import open_regular

IMAGES_SUFFIX, META_SUFFIX = ".npy", ".meta.npz"
META_KEYS = ("image_shape", "images_bytes", "pixels_sha256", "y_train", "y_test", "class_names", "notes")


def write_npy(handle, shape: tuple[int, ...], chunks: Iterable[np.ndarray], digest=None) -> None:
    """Write a uint8 ``.npy`` of ``shape`` from ``chunks`` of rows, never holding the whole array
    (the pixels' bytes also go into ``digest``, a hashlib object, when given)."""
    np.lib.format.write_array_header_1_0(handle, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    written = 0
    for chunk in chunks:
        chunk = np.ascontiguousarray(chunk, dtype=np.uint8)
        handle.write(memoryview(chunk).cast("B"))
        if digest is not None:
            digest.update(memoryview(chunk).cast("B"))
        written += chunk.nbytes
    if written != int(np.prod(shape)):
        raise ValueError(f"wrote {written:,} bytes of pixels for an array of shape {tuple(shape)}")


def save_image_cache(stem: Path, images_shape: tuple[int, ...], chunks: Iterable[np.ndarray],
                     meta: dict[str, np.ndarray]) -> None:
    """Write ``<stem>.npy`` (uint8 ``images_shape``, from ``chunks``) then ``<stem>.meta.npz``, atomically.

    ``meta`` holds ``y_train``, ``y_test``, ``class_names`` and ``notes``; the first
    ``len(y_train)`` rows are the training images.
    """
    images, digest = stem.with_name(stem.name + IMAGES_SUFFIX), hashlib.sha256()
    cache_mod.atomic_write(images, lambda handle: write_npy(handle, images_shape, chunks, digest))
    record = {**meta, "image_shape": np.array(images_shape, np.int64),
              "images_bytes": np.array(images.stat().st_size, np.int64),
              "pixels_sha256": np.array(digest.hexdigest())}
    cache_mod.save_arrays(stem.with_name(stem.name + META_SUFFIX), record)
    _VERIFIED.add(_file_state(images))  # hashed as it was written


def save_arrays_as_image_cache(stem: Path, arrays: dict[str, np.ndarray]) -> None:
    """:func:`save_image_cache` for arrays in memory (``x_train``, ``x_test`` and the meta keys)."""
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    shape = (len(x_train) + len(x_test), *x_train.shape[1:])
    meta = {key: arrays[key] for key in ("y_train", "y_test", "class_names", "notes")}
    save_image_cache(stem, shape, (x_train, x_test), meta)


def load_image_cache(stem: Path) -> dict[str, np.ndarray] | None:
    """``x_train``/``x_test`` (views of one read-only map), labels, class names and notes; None when a file
    is missing, damaged or disagrees with the other (both are then removed: the caller rebuilds)."""
    images, meta_path = stem.with_name(stem.name + IMAGES_SUFFIX), stem.with_name(stem.name + META_SUFFIX)
    meta = _load_meta(meta_path)
    pixels = _map_images(images, meta) if meta is not None else None
    if pixels is not None:  # a map read past a truncated end, from here on: one error line, not a bare SIGBUS
        bus_error.report_on_bus_error(images)
    if pixels is not None and not verified(images, pixels, str(meta["pixels_sha256"])):
        pixels = None
    if pixels is None:
        for path in (images, meta_path):
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
        return None
    split = len(meta["y_train"])
    return {"x_train": pixels[:split], "x_test": pixels[split:], **{key: meta[key] for key in META_KEYS[3:]}}


# The caches hashed in this process, by (device, inode, size, mtime, ctime): a write in place changes
# the ctime even where the mtime is put back, so a cache damaged after its check is hashed again.
_VERIFIED: set[tuple[int, ...]] = set()


def _file_state(path: Path) -> tuple[int, ...]:
    info = os.stat(path)
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def verified(path: Path, pixels: np.ndarray, expected: str) -> bool:
    """Whether the mapped ``pixels`` of ``path`` hash to ``expected`` (the meta's sha256); hashed once per
    process and state of the file, in chunks whose pages are released (no copy, nothing left resident)."""
    try:
        state = _file_state(path)
    except OSError:
        return False
    if state not in _VERIFIED:
        digest = hashlib.sha256()
        for chunk in byte_chunks(pixels):
            digest.update(chunk)
        if digest.hexdigest() != expected:
            return False
        _VERIFIED.add(state)
    return True


def _load_meta(path: Path) -> dict[str, np.ndarray] | None:
    arrays = cache_mod.load_arrays(path, required=META_KEYS)
    if arrays is None or arrays["image_shape"].ndim != 1 or len(arrays["image_shape"]) < 2:
        return None
    return arrays


def _map_images(path: Path, meta: dict[str, np.ndarray]) -> np.ndarray | None:
    """The map of ``path``, when its size, dtype and shape are what ``meta`` recorded."""
    shape = tuple(int(side) for side in meta["image_shape"])
    if not os.path.lexists(path) or os.path.islink(path):  # a link is no cache of cnnlab's: rebuilt (never through it)
        return None
    try:  # a FIFO, device or link there is refused (a DatasetError naming it), never waited on
        with open_regular(path, "image cache", DatasetError, links=False) as handle:
            if os.fstat(handle.fileno()).st_size != int(meta["images_bytes"]):
                return None
            pixels = _map_npy(handle)
    except DatasetError as exc:  # a FIFO or device planted there
        raise cache_mod.planted(exc) from None
    # truncated below its header, not a .npy, or a damaged header (numpy parses it with tokenize)
    except (OSError, ValueError, SyntaxError, TokenError):
        return None
    consistent = (pixels.dtype == np.uint8 and pixels.shape == shape
                  and shape[0] == len(meta["y_train"]) + len(meta["y_test"]))
    return pixels if consistent else None


def _map_npy(handle) -> np.memmap:
    """The array of the ``.npy`` file open in ``handle``, mapped read-only (``np.load`` maps only a path it
    opens itself, and so could wait on a FIFO swapped in after a check)."""
    version = np.lib.format.read_magic(handle)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unknown .npy version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(handle)
    if dtype.hasobject:
        raise ValueError("a .npy of Python objects")
    return np.memmap(handle, dtype=dtype, mode="r", offset=handle.tell(), shape=shape,
                     order="F" if fortran_order else "C")
