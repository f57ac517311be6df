"""``overlay``: images with their maps drawn over them, as a matplotlib Figure made without pyplot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.engine.inputs import InputError
from cnnlab.presenters.plots import MAX_GRID_IMAGES, plain, subplots


def overlay(images: np.ndarray, maps: np.ndarray, *, titles: Sequence[str] | None = None, alpha: float = 0.5,
            cmap: str = "jet", columns: int = 8, caption: str | None = None, side_by_side: bool = False):
    """A figure of each image with its map over it (``alpha`` the map's opacity, ``cmap`` its colours).

    A :class:`matplotlib.figure.Figure` made without pyplot: the user's backend is never switched, a
    notebook shows it once (as the cell's value), and ``fig.savefig(path)`` saves it.

    Args:
        images: ``(N, H, W, C)`` (or one image): uint8, or floats in [0, 1] (0..255 floats are scaled).
        maps: ``(N, H, W)`` (or one map) in [0, 1], as :func:`grad_cam` and :func:`saliency` give them.
        titles: one title per image (a class name, a probability...).
        columns: images per row (at most).
        caption: a line under the figure, e.g. a sanity check's verdict.
        side_by_side: draw the image alone beside each overlay.
    """
    pictures, heat = _displayable(images, maps)
    count, panels = len(pictures), 2 if side_by_side else 1
    if titles is not None and len(titles) != count:
        raise InputError(f"overlay: {len(titles)} titles for {count} images")
    cols = max(1, min(count, columns // panels or 1))
    rows = -(-count // cols)
    fig, axes = subplots(rows, cols * panels, figsize=(1.7 * cols * panels, 1.8 * rows + (0.5 if caption else 0.2)),
                         squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    gray = pictures.shape[-1] == 1
    for index in range(count):
        row, col = divmod(index, cols)
        shown = pictures[index][..., 0] if gray else pictures[index]
        places = axes[row, col * panels:(col + 1) * panels]
        if side_by_side:
            places[0].imshow(shown, cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
        places[-1].imshow(shown, cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
        places[-1].imshow(heat[index], cmap=cmap, alpha=alpha, vmin=0, vmax=1, interpolation="nearest")  # as computed
        if titles is not None:
            places[0].set_title(plain(titles[index]), fontsize=8)
    if caption:
        fig.text(0.5, 0.01, plain(caption), ha="center", va="bottom", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06 if caption else 0, 1, 1))
    return fig


def _displayable(images, maps) -> tuple[np.ndarray, np.ndarray]:
    """Images as floats in [0, 1] ``(N, H, W, C)`` and maps ``(N, H, W)``, checked against each other."""
    pictures, heat = np.asarray(images), np.asarray(maps, dtype=np.float32)
    if pictures.ndim == 3 and heat.ndim == 2:
        pictures, heat = pictures[None], heat[None]  # one image and its map
    if pictures.ndim != 4 or pictures.shape[-1] not in (1, 3, 4):
        raise InputError(f"overlay: images must be (N, H, W, C) with 1, 3 or 4 channels, got {pictures.shape}")
    if heat.shape != pictures.shape[:3]:
        raise InputError(f"overlay: maps must be (N, H, W) = {pictures.shape[:3]} (one per image), got "
                         f"{heat.shape}; a network on flat vectors has no picture to draw over")
    if not 1 <= len(pictures) <= MAX_GRID_IMAGES:
        raise InputError(f"overlay: 1 to {MAX_GRID_IMAGES} images, got {len(pictures)}")
    if not np.isfinite(heat).all():
        raise InputError("overlay: the maps hold NaN or infinite values")
    values = pictures.astype(np.float32)
    if pictures.dtype == np.uint8 or values.max(initial=0) > 1.5:
        values = values / 255
    return np.clip(values, 0, 1), np.clip(heat, 0, 1)


def feature_grid(maps: np.ndarray, *, title: str | None = None, limit: int = 32, columns: int = 8,
                 signed: bool = False):
    """One image's feature maps ``(h, w, channels)`` (as :func:`feature_maps` gives them, one row) or a
    convolution's kernels for one input channel ``(kh, kw, filters)``: the first ``limit`` channels side by
    side, each scaled to its own range (bright: high; ``signed``: red positive, blue negative, white zero, as
    a kernel's weights read best). A Figure made without pyplot, as :func:`overlay`'s."""
    values = np.asarray(maps, dtype=np.float32)
    if values.ndim != 3 or not np.isfinite(values).all():
        raise InputError(f"feature_grid: expected finite maps (height, width, channels), got shape {values.shape}")
    count = min(values.shape[-1], limit)
    cols = max(1, min(count, columns))
    rows = -(-count // cols)
    fig, axes = subplots(rows, cols, figsize=(1.2 * cols, 1.25 * rows + (0.4 if title else 0.1)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for channel, ax in zip(range(count), axes.flat):
        reach = float(np.abs(values[..., channel]).max()) or 1.0
        ax.imshow(values[..., channel], cmap="RdBu_r" if signed else "viridis", interpolation="nearest",
                  **({"vmin": -reach, "vmax": reach} if signed else {}))
        ax.set_title(str(channel), fontsize=7)
    if title:
        fig.suptitle(plain(title), fontsize=9)
    fig.tight_layout()
    return fig
