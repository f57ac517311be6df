"""Decoding image files to uint8 arrays, on every core, with clear per-file errors."""

from __future__ import annotations

import io
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from cnnlab.data.dataset import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MODES = {1: "L", 3: "RGB"}
PARALLEL_MIN = 2000  # below this, worker start-up costs more than it saves
CHUNK = 1000


@dataclass
class Decoded:
    """Images of one list of files, in order, plus what decoding did."""

    images: list[np.ndarray]
    keep: list[int]  # indices of the files that decoded (all of them unless skipping)
    conversions: Counter
    bad: list[str]


def decode_image(data: bytes, channels: int, size: tuple[int, int] | None = None):
    """``(uint8 array (H, W, C), original mode)``, or ``(None, reason)`` for a bad file."""
    from PIL import Image

    if not data:
        return None, "empty file"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            if mode != MODES[channels]:
                image = image.convert(MODES[channels])
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except Exception as exc:  # PIL raises many types for truncated or non-image data
        return None, f"not a readable image ({type(exc).__name__}: {exc})"
    return array.reshape(array.shape[0], array.shape[1], channels), mode


def _decode_chunk(args):
    items, channels, size = args
    return [decode_image(data, channels, size) for _, data in items]


def decode_all(items: list[tuple[str, bytes]], channels: int, size: tuple[int, int] | None,
               skip_bad: bool, workers: int | None = None) -> Decoded:
    """Decode ``(name, bytes)`` items; a bad file is an error naming it unless ``skip_bad``."""
    workers = workers or os.cpu_count() or 1
    chunks = [(items[i:i + CHUNK], channels, size) for i in range(0, len(items), CHUNK)]
    if workers > 1 and len(items) >= PARALLEL_MIN:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = [r for chunk in pool.map(_decode_chunk, chunks) for r in chunk]
    else:
        results = [r for chunk in map(_decode_chunk, chunks) for r in chunk]
    decoded = Decoded([], [], Counter(), [])
    for index, ((name, _), (array, detail)) in enumerate(zip(items, results)):
        if array is None:
            if not skip_bad:
                raise DatasetError(f"{name}: {detail} (pass skip_bad / --skip-bad to skip such files)")
            decoded.bad.append(name)
            continue
        if detail != MODES[channels]:
            decoded.conversions[f"{detail} -> {MODES[channels]}"] += 1
        decoded.images.append(array)
        decoded.keep.append(index)
    return decoded


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
