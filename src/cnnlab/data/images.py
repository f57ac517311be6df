"""Decoding image files to uint8 arrays, on every core, with clear per-file errors.

Files are read lazily, a chunk at a time (at most ``CHUNK`` files, and ``CHUNK_BYTES``
plus one file's bytes; two chunks per worker in flight), each through ``limits``: a file over
``MAX_IMAGE_FILE_BYTES`` or not a regular file is a bad file, as is an image whose
header declares more than ``MAX_IMAGE_PIXELS``; the decoded images of one dataset
may take ``MAX_DATASET_BYTES`` at most.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.data import limits
from cnnlab.data.dataset import DatasetError
from cnnlab.errors import describe

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Only these decoders are tried, whatever a file's bytes claim: a file named .png that
# holds an EPS must not reach Pillow's EPS plugin (which runs Ghostscript).
FORMATS = ("PNG", "JPEG", "BMP", "WEBP")
MODES = {1: "L", 3: "RGB"}
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # how Pillow opens 16-bit grayscale
PARALLEL_MIN = 2000  # below this, worker start-up costs more than it saves
CHUNK = 1000
CHUNK_BYTES = 16 * limits.MiB

# A file to decode: its bytes, a path to read (bounded), or the reason it cannot be read.
Source = bytes | Path | limits.FileLimitError


@dataclass
class Decoded:
    """Images of one list of files, in order, plus what decoding did."""

    images: list[np.ndarray]
    keep: list[int]  # indices of the files that decoded (all of them unless skipping)
    conversions: Counter
    bad: list[str]


def read_image_file(path: str | os.PathLike) -> bytes:
    """An image file's bytes, if it is a regular file of at most ``MAX_IMAGE_FILE_BYTES``."""
    return limits.read_regular_file(path, limits.MAX_IMAGE_FILE_BYTES, "image file")


def decode_image(data: bytes, channels: int, size: tuple[int, int] | None = None):
    """``(uint8 array (H, W, C), original mode)``, or ``(None, reason)`` for a bad file."""
    from PIL import Image

    if not data:
        return None, "empty file"
    try:
        with warnings.catch_warnings():  # the pixel limit below is ours, and lower than Pillow's
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        with image:
            if image.width * image.height > limits.MAX_IMAGE_PIXELS:
                return None, (f"{image.width}x{image.height} pixels is more than the "
                              f"{limits.MAX_IMAGE_PIXELS:,} cnnlab decodes")
            image.load()
            mode = image.mode
            array = _pixels(image, channels, size)
    except Exception as exc:  # PIL raises many types for truncated or non-image data
        if type(exc).__name__ == "UnidentifiedImageError":  # Pillow's text names only a BytesIO object
            return None, f"not a readable image (its bytes are none of {', '.join(FORMATS)})"
        return None, f"not a readable image ({describe(exc)})"
    return array.reshape(array.shape[0], array.shape[1], channels), mode


def _pixels(image, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    if image.mode in SIXTEEN_BIT:
        image = Image.fromarray(scale_16bit(np.asarray(image)))
    if image.mode != MODES[channels]:
        image = image.convert(MODES[channels])
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def scale_16bit(values: np.ndarray) -> np.ndarray:
    """0..65535 to 0..255, rounded (Pillow's own conversion clips everything above 255 to white)."""
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _load(source: Source) -> bytes | str:
    """The bytes of ``source``, or why they cannot be had."""
    if isinstance(source, limits.FileLimitError):
        return source.reason
    if isinstance(source, bytes):
        return source
    try:
        return read_image_file(source)
    except limits.FileLimitError as exc:
        return exc.reason


def _decode_chunk(args):
    items, channels, size = args
    return [decode_image(data, channels, size) if isinstance(data, bytes) else (None, data) for data in items]


def _chunks(sources: Iterable[Source], channels: int, size) -> Iterator[tuple]:
    """Read lazily: a chunk holds at most CHUNK files and about CHUNK_BYTES bytes."""
    chunk, held = [], 0
    for source in sources:
        chunk.append(_load(source))
        held += len(chunk[-1])
        if len(chunk) >= CHUNK or held >= CHUNK_BYTES:
            yield chunk, channels, size
            chunk, held = [], 0
    if chunk:
        yield chunk, channels, size


def _results(chunks: Iterator[tuple], parallel: bool, workers: int) -> Iterator[tuple]:
    """Decoded chunks in order; in parallel, at most two chunks per worker in flight."""
    if not parallel:
        for chunk in chunks:
            yield from _decode_chunk(chunk)
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(_decode_chunk, chunk))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


def decode_all(items: list[tuple[str, Source]], channels: int, size: tuple[int, int] | None,
               skip_bad: bool, workers: int | None = None) -> Decoded:
    """Decode ``(name, source)`` items; a bad file is an error naming it unless ``skip_bad``."""
    workers = workers or os.cpu_count() or 1
    if size is not None and items and len(items) * size[0] * size[1] * channels > limits.MAX_DATASET_BYTES:
        # known before anything is decoded: every image comes out at this size
        raise DatasetError(f"{items[0][0]}: {len(items):,} images of {size[1]}x{size[0]} pixels would take "
                           f"{limits.size_text(len(items) * size[0] * size[1] * channels)}, more than the "
                           f"{limits.size_text(limits.MAX_DATASET_BYTES)} cnnlab holds for one dataset; pass a "
                           "smaller size (--size HxW)")
    chunks = _chunks((source for _, source in items), channels, size)
    decoded, total = Decoded([], [], Counter(), []), 0
    with closing(_results(chunks, workers > 1 and len(items) >= PARALLEL_MIN, workers)) as results:
        for index, ((name, _), (array, detail)) in enumerate(zip(items, results)):
            total += _take(decoded, index, name, array, detail, skip_bad, channels)
            if total > limits.MAX_DATASET_BYTES:
                raise DatasetError(f"{name}: the decoded images pass {limits.size_text(limits.MAX_DATASET_BYTES)}"
                                   ", the most cnnlab holds for one dataset; pass a smaller size (--size HxW)")
    return decoded


def _take(decoded: Decoded, index: int, name: str, array, detail: str, skip_bad: bool, channels: int) -> int:
    """Record one file's result; the bytes its image takes (0 when skipped)."""
    if array is None:
        if not skip_bad:
            raise DatasetError(f"{name}: {detail} (pass skip_bad / --skip-bad to skip such files)")
        decoded.bad.append(name)
        return 0
    if detail != MODES[channels]:
        decoded.conversions[f"{detail} -> {MODES[channels]}"] += 1
    decoded.images.append(array)
    decoded.keep.append(index)
    return array.nbytes


def stack_same_size(images: list[np.ndarray], names: list[str]) -> np.ndarray:
    """Stack to ``(N, H, W, C)``; different sizes are an error listing examples."""
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for image, name in zip(images, names):
        by_shape.setdefault(image.shape, []).append(name)
    if len(by_shape) > 1:
        examples = "; ".join(f"{shape[1]}x{shape[0]}: {', '.join(files[:2])}"
                             for shape, files in list(by_shape.items())[:4])
        raise DatasetError(f"images have {len(by_shape)} different sizes ({examples}); "
                           "pass a target size (size=(H, W) / --size HxW) to resize them")
    return np.stack(images) if images else np.zeros((0, 1, 1, 1), np.uint8)
