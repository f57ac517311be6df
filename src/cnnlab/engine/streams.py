"""Training batches that come from a source as it yields them: a generator, a ``PyDataset``, a DataLoader.

The epoch loop (:func:`cnnlab.engine.loop.train_epoch`) asks its data for an epoch's batches;
:class:`cnnlab.engine.loop.TensorData` draws them from arrays over a seeded shuffle, a
:class:`StreamData` takes them from a :class:`BatchStream` in the order the source gives
them (a PyDataset's batch order is shuffled by the adapter, as Keras' fit shuffles it); a stream cannot be
rewound.

A :class:`BatchStream` (made by :mod:`cnnlab.api.data_sources`, which checks each batch as
``fit`` checks arrays) yields host arrays: images ``(B, H, W, C)`` or ``(B, D)`` as
:func:`cnnlab.engine.batches.compact_pixels` holds them, int64 class indices ``(B,)`` and
float32 weights ``(B,)`` or None. Each batch is converted here as an array's batch is
(:func:`cnnlab.engine.batches.to_network_input`), on the training device; nothing is read back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.engine.batches import DeviceImages, ImageBatches, compact_pixels
from cnnlab.errors import CnnlabError

HostBatch = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # images, class indices, weights


class StreamError(CnnlabError, ValueError):
    """A stream gave fewer batches than an epoch needs; names the argument to change."""


@dataclass
class BatchStream:
    """``steps`` batches an epoch, from passes over a source: ``new_pass(epoch)`` starts one in that epoch
    (an iterator of :data:`HostBatch`; a generator's pass is the generator itself, which goes on).

    As Keras' epoch iterator: with ``keep`` (``steps_per_epoch`` given, or a generator) a pass goes on
    into the next epoch, and a new one starts once it is spent (``length``: the batches in a pass of a
    source that has a length; None for a generator); an epoch that reaches the end of a pass is cut
    short there. Without ``keep`` every epoch is one new pass. ``first`` is the first batch of epoch
    0's pass, read already (it sized the network), and ``rest`` that pass after it.
    """

    new_pass: Callable[[int], Iterator[HostBatch]]
    steps: int
    first: HostBatch
    rest: Iterator[HostBatch]
    what: str = "x"  # the argument it came from, for the error when it runs out
    length: int | None = None
    keep: bool = False
    on_epoch_end: Callable[[], object] | None = None  # a PyDataset's, called after each epoch's last batch

    def __post_init__(self):
        self._pending: HostBatch | None = self.first
        self._pass: Iterator[HostBatch] | None = None
        self._seen = 0  # batches taken from the current pass

    @property
    def batch_size(self) -> int:
        """The first batch's size: what the time estimate and the facts go by."""
        return len(self.first[1])

    def batches(self, epoch: int = 0) -> Iterator[HostBatch]:
        """Epoch ``epoch``'s batches (0 the first): ``steps`` of them, fewer where a pass of a sized source
        ends first; a generator that ends is an error naming ``steps_per_epoch``."""
        if self._pass is None or not self.keep:
            if self.rest is not None and epoch == 0:  # the pass whose first batch was read ahead
                self._pass = self.rest
            else:
                self._pass, self._pending = self.new_pass(epoch), None
            self.rest, self._seen = None, 0
        for step in range(self.steps):
            if self.length is not None and self._seen >= self.length:
                break  # the pass is spent: the epoch ends here (Keras warns and does the same)
            batch = self._pending if self._pending is not None else next(self._pass, None)
            self._pending = None
            if batch is None:
                raise StreamError(f"{self.what}: the data ran out after {step} of {self.steps} batches of an "
                                  f"epoch; give steps_per_epoch (and epochs) it can supply, or a source that "
                                  f"repeats")
            self._seen += 1
            yield batch
        if self.length is not None and self._seen >= self.length:
            self._pass = None  # the next epoch starts a new pass


class StreamData:
    """The epoch loop's data for a stream: its batches, converted on ``device`` as they come, and
    validation arrays (:class:`ImageBatches` and class indices), read once, as arrays are.

    ``x_train``/``y_train`` hold the first batch: what the session's set-up reads from its
    data (the input's rank, data-aware initialisation, the precision's and the time's trial steps).
    """

    def __init__(self, stream: BatchStream, device: torch.device):
        self.stream, self.device = stream, device
        images, labels, _ = stream.first
        self.x_train: ImageBatches = DeviceImages(compact_pixels(images).to(device))
        self.y_train = torch.from_numpy(labels).to(device)
        self.x_val: ImageBatches | None = None
        self.y_val: torch.Tensor | None = None
        self.w_train = None

    @property
    def train_size(self) -> int:
        """Images in one epoch, as far as it is known before it runs: steps times the first batch's size."""
        return self.stream.steps * self.stream.batch_size

    def steps(self, batch_size: int) -> int:
        """The stream's own steps per epoch (its batches have their own size, not ``batch_size``)."""
        return self.stream.steps

    def epoch_batches(self, state, batch_size: int):
        """``(count, x, y, weights)`` per batch, as :meth:`cnnlab.engine.loop.TensorData.epoch_batches`
        gives them: ``count`` the batch's size, the rest this process's part of it, on the device."""
        for images, labels, weights in self.stream.batches(state.epoch):
            count = len(labels)
            lo, hi = state.strategy.part(count)
            x = DeviceImages(compact_pixels(images[lo:hi]).to(self.device, non_blocking=True)).slice(0, hi - lo)
            y = torch.from_numpy(labels[lo:hi]).to(self.device, non_blocking=True)
            w = None if weights is None else torch.from_numpy(weights[lo:hi]).to(self.device, non_blocking=True)
            yield count, x, y, w
        if self.stream.on_epoch_end is not None:
            self.stream.on_epoch_end()
