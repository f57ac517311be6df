"""The cache directory and atomic, self-checking array caches."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from cnnlab.data.dataset import DatasetError
from cnnlab.files import open_regular
from cnnlab.formats import check_stored_zip

CACHE_ENV = "CNNLAB_CACHE"
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "class_names")


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """``override``, else $CNNLAB_CACHE, else the user's cache dir (XDG) / cnnlab."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnlab"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open_regular(path, "file", DatasetError) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def atomic_write(path: Path, write) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place.

    The one write helper's contract (:func:`cnnlab.files.write_file`): ``path`` itself
    may not be a link, and the file gets the umask's permissions, so a cache shared on
    a course server stays readable by the group the umask allows.
    """
    from cnnlab.files import write_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, write, root=path.parent)


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save the arrays uncompressed (fast to load), atomically."""
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def planted(exc: DatasetError) -> DatasetError:
    """The refusal of something cnnlab did not write at a cache path, with the way out: it is left as it is."""
    return DatasetError(f"{exc}; remove it, or use another cache folder (--cache-dir DIR or ${CACHE_ENV})")


def load_arrays(path: Path, required: tuple[str, ...] = ARRAY_KEYS) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when missing, damaged or lacking a ``required`` key (the caller rebuilds).

    Anything but a regular file at ``path`` (a FIFO, a device, a link: cnnlab writes none
    there) is a DatasetError naming it, at once and without waiting on it; it is left as it is.
    A compressed member (cnnlab writes none) counts as damage: a planted zip bomb is never inflated.
    """
    if not os.path.lexists(path):
        return None
    try:
        with open_regular(path, "cache file", DatasetError, links=False) as handle:
            # stored uncompressed, as np.savez writes: what loading allocates is bounded by the file's size
            check_stored_zip(handle, str(path), ValueError)
            with np.load(handle, allow_pickle=False) as data:
                arrays = {key: data[key] for key in required if key in data.files}  # nothing it does not use
    except DatasetError as exc:  # a link, FIFO or device planted there: left alone, and the way out said
        raise planted(exc) from None
    except Exception:  # any damage means: rebuild, never use
        path.unlink(missing_ok=True)
        return None
    consistent = set(required) <= set(arrays) and all(
        len(arrays[f"x_{part}"]) == len(arrays[f"y_{part}"]) for part in ("train", "test") if f"x_{part}" in arrays)
    if not consistent:
        path.unlink(missing_ok=True)
        return None
    return arrays
