"""Batches for the network, gathered from compact pixels and converted one batch at a time.

A dataset stays as it came: uint8 pixels ``(N, H, W, C)``, a quarter of float32's
memory, or float32 for float input. Every batch the engine trains, validates or
evaluates on is gathered by an :class:`ImageBatches` and converted by
:func:`to_network_input`, the one conversion: uint8 scaled to [0, 1] with exactly the
values of ``float32(x) / float32(255)``, images permuted to ``(B, C, H, W)`` with
channels-last memory (the layout the CPU convolutions run fastest on).

Two sources:

* :class:`DeviceImages`: the pixels as a tensor on the training device (on the CPU the
  array itself, not copied); batches are gathered there, with no host synchronisation.
* :class:`MappedImages`: a memory-mapped array (a cache larger than RAM, see
  :mod:`cnnlab.data.mapped`): each batch's rows are read from the map on the host and
  copied to the device; the pages read are handed back to the kernel as reading goes.

Both may hold a subset of their rows (a validation split) as an index array, so a split
never copies the pixels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from cnnlab.data.pages import MappedPages, is_mapped


def to_network_input(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels ``(B, H, W, C)`` or vectors ``(B, D)`` -> float32 ``(B, C, H, W)`` (channels-last memory) or ``(B, D)``.

    uint8 is scaled to [0, 1]; any other dtype becomes float32 as it is.
    """
    values = _scaled(pixels) if pixels.dtype == torch.uint8 else pixels.float()
    if values.dim() == 4:
        values = values.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W), memory stays channels-last
    return values


def _scaled(pixels: torch.Tensor) -> torch.Tensor:
    if pixels.device.type == "cpu":
        return pixels.float().div_(255.0)  # the CPU divides exactly, as numpy's float32(x) / float32(255)
    # CUDA divides by a scalar as a product with its reciprocal, a bit off for about half the values:
    # look the 256 values up instead, divided once on the CPU, so every device gets the same floats.
    return _pixel_values(pixels.device)[pixels.long()]


@lru_cache(maxsize=8)
def _pixel_values(device: torch.device) -> torch.Tensor:
    """The float32 value of each uint8 pixel, ``(256,)``, on ``device``."""
    return torch.arange(256, dtype=torch.uint8).float().div_(255.0).to(device)


def compact_pixels(images) -> torch.Tensor:
    """A CPU tensor of the images as they are held: uint8 stays uint8, other numbers become float32.

    An array that is C-contiguous, writable and of that dtype is shared, not copied.
    """
    array = np.asarray(images)
    if array.dtype != np.uint8:
        array = array.astype(np.float32, copy=False)
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        array = array.copy()  # torch shares writable memory only (it never writes here)
    return torch.from_numpy(array)


class ImageBatches:
    """Images that hand out converted batches: ``take(positions)``, ``slice(start, stop)``.

    ``positions`` index this source's own rows, ``0..len - 1``, and live on
    ``index_device``; batches come back on ``device``.
    """

    device: torch.device
    index_device: torch.device
    pixels: object
    index: object

    def __len__(self) -> int:
        return len(self.pixels) if self.index is None else len(self.index)

    @property
    def ndim(self) -> int:
        """4 for images (the network's input is ``(B, C, H, W)``), 2 for vectors."""
        return len(self.pixels.shape)

    def take(self, positions: torch.Tensor) -> torch.Tensor:
        """The converted batch of the rows at ``positions`` ``(B,)``, in that order."""
        raise NotImplementedError

    def slice(self, start: int, stop: int) -> torch.Tensor:
        """The converted batch of rows ``[start, stop)``."""
        raise NotImplementedError

    def rows(self, index) -> ImageBatches:
        """A source of this one's rows at ``index`` (integers), sharing the pixels."""
        raise NotImplementedError

    def part(self, start: int, stop: int) -> ImageBatches:
        """A source of rows ``[start, stop)``, sharing the pixels."""
        raise NotImplementedError


class DeviceImages(ImageBatches):
    """Pixels held on the training device, batches gathered there.

    ``pixels``: uint8 or float ``(N, H, W, C)`` / ``(N, D)``; ``index``: int64 ``(M,)`` rows of
    ``pixels`` this source holds (None: all). ``ready=True`` takes ``pixels`` as network input
    already (a float tensor made by :func:`to_network_input`), sliced as it is.
    """

    def __init__(self, pixels: torch.Tensor, index: torch.Tensor | None = None, ready: bool = False):
        self.pixels, self.index, self.ready = pixels, index, ready
        self.device = self.index_device = pixels.device

    def take(self, positions: torch.Tensor) -> torch.Tensor:
        rows = positions if self.index is None else self.index[positions]
        return self._convert(self.pixels[rows])

    def slice(self, start: int, stop: int) -> torch.Tensor:
        if self.index is None:
            return self._convert(self.pixels[start:stop])
        return self._convert(self.pixels[self.index[start:stop]])

    def rows(self, index) -> DeviceImages:
        index = torch.as_tensor(np.asarray(index, dtype=np.int64)).to(self.device)
        return DeviceImages(self.pixels, index if self.index is None else self.index[index], self.ready)

    def part(self, start: int, stop: int) -> DeviceImages:
        if self.index is None:  # a view: no index to gather through
            return DeviceImages(self.pixels[start:stop], None, self.ready)
        return DeviceImages(self.pixels, self.index[start:stop], self.ready)

    def _convert(self, batch: torch.Tensor) -> torch.Tensor:
        return batch if self.ready else to_network_input(batch)


class MappedImages(ImageBatches):
    """Pixels in a read-only memory map on the host; each batch is read from it and copied to ``device``.

    ``index``: int64 ``(M,)`` rows of the map this source holds (None: all), on the host, where
    the positions are too: gathering rows from the map needs no device round trip.
    """

    index_device = torch.device("cpu")

    def __init__(self, pixels: np.ndarray, device: torch.device, index: np.ndarray | None = None,
                 pages: MappedPages | None = None):
        self.pixels, self.device, self.index = pixels, torch.device(device), index
        self.pages = pages or MappedPages(pixels)  # shared by every source of one map
        self.row_bytes = pixels[:1].nbytes

    def take(self, positions: torch.Tensor) -> torch.Tensor:
        rows = positions.numpy()
        return self._load(rows if self.index is None else self.index[rows])

    def slice(self, start: int, stop: int) -> torch.Tensor:
        if self.index is None:
            return self._load(slice(start, stop))
        return self._load(self.index[start:stop])

    def rows(self, index) -> MappedImages:
        index = np.asarray(index, dtype=np.int64)
        return MappedImages(self.pixels, self.device, index if self.index is None else self.index[index], self.pages)

    def part(self, start: int, stop: int) -> MappedImages:
        if self.index is None:  # a view of the map: read in one contiguous run per batch
            return MappedImages(self.pixels[start:stop], self.device, None, self.pages)
        return MappedImages(self.pixels, self.device, self.index[start:stop], self.pages)

    def _load(self, rows) -> torch.Tensor:
        batch = self.pixels[rows]  # (B, H, W, C): rows picked by index are read into memory of their own,
        if is_mapped(batch):  # a slice is still a view of the map: read it out
            batch = np.array(batch)
        self.pages.read(len(batch), self.row_bytes, contiguous=isinstance(rows, slice))
        return to_network_input(torch.from_numpy(batch).to(self.device, non_blocking=True))


def image_batches(images, device: torch.device) -> ImageBatches:
    """The batch source of ``images`` (an array, or an :class:`ImageBatches` passed through) for ``device``.

    A memory-mapped array stays mapped on the host; any other array is held compactly
    (:func:`compact_pixels`) on ``device``.
    """
    if isinstance(images, ImageBatches):
        return images
    if is_mapped(images):
        return MappedImages(images, device)
    return DeviceImages(compact_pixels(images).to(device))


def as_batches(x) -> ImageBatches:
    """``x`` as a batch source: an :class:`ImageBatches` as it is, a tensor as network input already."""
    if isinstance(x, ImageBatches):
        return x
    return DeviceImages(x, ready=True)


def images_to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (scaled to [0, 1]) or float images ``(N, H, W, C)`` -> float32 ``(N, C, H, W)``.

    The result is channels-last in memory, the layout the CPU convolutions run fastest on;
    flat ``(N, D)`` input passes through. All of it at once, as float32: training converts
    batch by batch instead (:mod:`cnnlab.engine.batches`), with the same conversion.
    """
    return to_network_input(compact_pixels(images)).to(device)


def class_indices(labels) -> np.ndarray:
    """Integer labels ``(N,)`` or one-hot ``(N, K)`` -> int64 class indices ``(N,)``."""
    array = np.asarray(labels)
    return (array.argmax(axis=1) if array.ndim == 2 else array).astype(np.int64)


def labels_to_tensor(labels, device: torch.device) -> torch.Tensor:
    """Integer or one-hot labels -> int64 class indices on ``device``."""
    return torch.from_numpy(class_indices(labels)).to(device)
