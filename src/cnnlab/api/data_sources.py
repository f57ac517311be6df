"""What ``fit``, ``evaluate`` and ``predict`` take besides arrays, turned into what the one training loop takes.

Keras' ``fit`` takes arrays, a Python generator (or any iterator) of ``(x, y)`` or
``(x, y, sample_weight)`` batches, a ``keras.utils.PyDataset``-like object (``__len__`` and
``__getitem__`` giving batches, ``on_epoch_end`` called after each epoch), a torch
``DataLoader`` (a map-style torch ``Dataset`` is batched by a DataLoader cnnlab makes, shuffled
from the model's seed), and ``image_dataset_from_directory``'s dataset. Here each becomes either

* arrays (:class:`FitData` ``x``, ``labels``, ``weights``): arrays themselves, and a folder's
  dataset (its uint8 images): cnnlab's seeded shuffle and exact resume hold for them; or
* a :class:`~cnnlab.engine.streams.BatchStream`: batches taken in the order the source gives
  them, each checked as arrays are (:func:`check_images`, :func:`check_labels`, the loss's label
  format, the model's outputs). A PyDataset's batch order is shuffled each epoch, as Keras'
  ``fit(shuffle=True)`` shuffles it (from the model's seed); a generator's or a DataLoader's
  order is the source's own (as in Keras), and a generator's next epoch goes on where the last
  one stopped.

Validation data and ``evaluate``/``predict`` from a source are read once into arrays
(``validation_steps`` / ``steps`` batches), and then scored as arrays are.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cnnlab.engine.inputs import InputError, Labels, check_labels
from cnnlab.engine.streams import BatchStream


@dataclass(frozen=True)
class FitData:
    """fit's training data, checked: arrays (``x`` images, ``labels``, ``weights`` ``(N,)`` or None)
    or a stream (``x`` a :class:`BatchStream`, ``labels`` its first batch's); ``batch_size`` a
    dataset's own (None: fit's)."""

    x: np.ndarray | BatchStream
    labels: Labels
    weights: np.ndarray | None = None
    batch_size: int | None = None
    dataset: bool = False  # image_dataset_from_directory's: arrays, but Keras takes no validation_split with it

    @property
    def streamed(self) -> bool:
        return isinstance(self.x, BatchStream)

    @property
    def arrays(self) -> bool:
        """Arrays the user gave (a folder's dataset is arrays too, but Keras takes no validation_split with it)."""
        return not self.streamed and not self.dataset

    @property
    def images(self) -> np.ndarray:
        """The images, or a stream's first batch (what sizes the network and its memory)."""
        return self.x.first[0] if self.streamed else self.x

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.images.shape[1:]


def is_array(x) -> bool:
    """Arrays (numpy, a memory map, a torch tensor, nested lists): everything that is not a source of batches."""
    return isinstance(x, (np.ndarray, list, tuple)) or type(x).__module__ == "torch" and hasattr(x, "numpy")


def weights_for(indices: np.ndarray, class_weight, sample_weight, name: str = "sample_weight") -> np.ndarray | None:
    """Keras' per-image loss weights ``(N,)`` float32: ``sample_weight``, or ``class_weight[label]``
    (a class missing from the dict weighs 1, as in Keras); Keras refuses both together."""
    if class_weight is not None and sample_weight is not None:
        raise InputError("fit: give class_weight or sample_weight, not both (as Keras refuses them together)")
    if class_weight is not None:
        if not isinstance(class_weight, dict) or not all(_is_number(v) for v in class_weight.values()):
            raise InputError(f"fit: class_weight must be a dict {{class index: weight}}, got {class_weight!r}")
        return np.array([float(class_weight.get(int(c), 1.0)) for c in indices], dtype=np.float32)
    if sample_weight is None:
        return None
    weights = np.asarray(_host(sample_weight), dtype=np.float32)
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != indices.shape:
        raise InputError(f"{name}: expected one weight per image {indices.shape}, got shape {weights.shape}")
    if not np.isfinite(weights).all() or weights.min() < 0:
        raise InputError(f"{name}: weights must be finite and 0 or more")
    return weights


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _host(value):
    """A torch tensor as a numpy array (on the host); anything else as it is."""
    if type(value).__module__ == "torch" and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


def is_folder_dataset(x) -> bool:
    """``image_dataset_from_directory``'s dataset (:class:`cnnlab.data.image_dataset.ImageDataset`): uint8
    ``images``, class-index ``labels``, ``class_names``, ``batch_size`` and ``label_mode``."""
    return all(hasattr(x, name) for name in ("images", "labels", "class_names", "batch_size", "label_mode"))


def folder_arrays(dataset, raw_pixels: bool) -> tuple[np.ndarray, Labels]:
    """A folder dataset's images and labels as fit takes arrays: uint8 (scaled by cnnlab), or float32
    0..255 where the network scales them itself (``Rescaling(1./255)``: Keras' batches are 0..255)."""
    if dataset.label_mode is None:
        raise InputError("x: the dataset has no labels (label_mode=None); fit needs label_mode 'int', "
                         "'categorical' or 'binary'")
    images = dataset.images.astype(np.float32) if raw_pixels else dataset.images
    width = len(dataset.class_names) if dataset.label_mode == "categorical" else None
    return images, Labels(dataset.labels.astype(np.int64), width)


class SourceReader:
    """Reads batches from a source as a model takes them: ``check`` is the model's own check of images
    and labels (:meth:`cnnlab.api.model.Model._batch`), ``name`` the argument they came as."""

    def __init__(self, check, name: str = "x"):
        self.check, self.name = check, name

    def batch(self, item, step: int, class_weight=None) -> tuple[np.ndarray, Labels, np.ndarray | None]:
        """``(images, labels, weights)`` of one batch the source gave: ``(x, y)`` or ``(x, y, sample_weight)``."""
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise InputError(f"{self.name}: batch {step + 1} is not a pair (x, y) or a triple (x, y, sample_weight), "
                             f"got {type(item).__name__}")
        where = f"{self.name} (batch {step + 1})"
        images, labels = self.check(_host(item[0]), _host(item[1]), where)
        sample_weight = item[2] if len(item) == 3 else None
        return images, labels, weights_for(labels.indices, class_weight, sample_weight, f"{where} sample_weight")


def batch_iterator(x, steps: int | None, seed: int, batch_size: int | None, name: str, shuffle: bool = False):
    """``(new_pass, steps, length)`` for a source of batches: ``new_pass(key)`` starts a pass over its
    batches (a generator's is the generator itself, which goes on), ``steps`` per epoch (``steps`` given,
    else the source's length) and ``length`` the batches in a pass (None: a generator). With ``shuffle``,
    a PyDataset's batch order and a torch Dataset's samples are shuffled in each pass, as Keras' fit
    shuffles a PyDataset, from cnnlab's own generator (``seed`` and the pass's ``key``). Refuses what
    is not a source of batches."""
    import torch

    if isinstance(x, (str, bytes, dict)):  # iterable, but no batches
        raise InputError(f"{name}: expected a pair (x, y) of arrays or a source of batches, got {type(x).__name__}")
    if isinstance(x, torch.utils.data.DataLoader):  # shuffled (or not) by its own sampler, as Keras leaves it
        return lambda key: iter(x), _steps(steps, len(x), name), len(x)

    if isinstance(x, torch.utils.data.Dataset) and hasattr(x, "__len__"):
        def loader(key: int):
            generator = torch.Generator().manual_seed(_pass_seed(seed, key))
            return iter(torch.utils.data.DataLoader(x, batch_size=batch_size or 32, shuffle=shuffle,
                                                    generator=generator))
        batches = -(-len(x) // (batch_size or 32))
        return loader, _steps(steps, batches, name), batches
    if hasattr(x, "__getitem__") and hasattr(x, "__len__"):  # keras.utils.PyDataset: batch i is x[i]
        def indexed(key: int):
            order = np.random.default_rng(_pass_seed(seed, key)).permutation(len(x)) if shuffle else range(len(x))
            return (x[int(index)] for index in order)
        return indexed, _steps(steps, len(x), name), len(x)
    if hasattr(x, "__next__") or hasattr(x, "__iter__"):  # a generator: one stream through every epoch
        if steps is None:
            raise InputError(f"{name}: a generator has no length; give steps_per_epoch (and validation_steps for "
                             "validation data), as Keras needs for an endless generator")
        stream = iter(x)
        return lambda key: stream, _steps(steps, None, name), None
    raise InputError(f"{name}: expected arrays, a generator of (x, y) batches, a PyDataset-like object, a torch "
                     f"DataLoader or Dataset, or image_dataset_from_directory's dataset; got {type(x).__name__}")


def _pass_seed(seed: int, key: int) -> int:
    """A pass's own seed, from the run's seed and the epoch it starts in (a resumed epoch draws the same)."""
    return int(np.random.SeedSequence([seed % 2**63, key]).generate_state(1, np.uint64)[0] % 2**63)


def _steps(steps, length: int | None, name: str) -> int:
    """``steps`` given (a positive integer), else the source's ``length`` in batches."""
    if steps is None:
        steps = length
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"{name}: steps must be a positive integer (steps_per_epoch / validation_steps), "
                         f"got {steps!r}")
    return steps


def read_all(reader: SourceReader, x, steps, seed: int, batch_size) -> tuple[np.ndarray, Labels]:
    """Every batch of one pass (``steps`` of them, or the source's length) as arrays: validation data,
    evaluate's. Batches keep the order the source gives them."""
    new_pass, count, length = batch_iterator(x, steps, seed, batch_size, reader.name)
    source, count = new_pass(0), count if length is None else min(count, length)  # one pass at most, as Keras
    images, labels = [], []
    for step in range(count):
        item = next(source, None)
        if item is None:
            raise InputError(f"{reader.name}: the data ran out after {step} of {count} batches")
        batch_images, batch_labels, _ = reader.batch(item, step)
        images.append(batch_images)
        labels.append(batch_labels)
    widths = {label.one_hot_width for label in labels}
    return np.concatenate(images), Labels(np.concatenate([label.indices for label in labels]), widths.pop())


def training_stream(reader: SourceReader, x, steps, seed: int, batch_size, class_weight, outputs,
                    shuffle: bool = True) -> tuple[BatchStream, Labels]:
    """A :class:`BatchStream` over ``x`` (its first batch read: it sizes the network) and that batch's labels.

    Each later batch is checked on the host as it comes, against the model's ``outputs()`` too."""
    new_pass, count, length = batch_iterator(x, steps, seed, batch_size, reader.name, shuffle)
    first_pass = new_pass(0)
    item = next(first_pass, None)
    if item is None:
        raise InputError(f"{reader.name}: the source gave no batch")
    images, labels, weights = reader.batch(item, 0, class_weight)

    def checked(source, start: int) -> Iterator:
        for step, batch in enumerate(source, start=start):
            batch_images, batch_labels, batch_weights = reader.batch(batch, step, class_weight)
            outputs(batch_labels, f"{reader.name} (batch {step + 1})")  # the labels against the model's outputs
            yield batch_images, batch_labels.indices, batch_weights

    end = getattr(x, "on_epoch_end", None)  # a PyDataset's: called after each epoch, as Keras calls it
    # Keras keeps a pass going into the next epoch where steps_per_epoch is given (a generator needs it)
    stream = BatchStream(lambda key: checked(new_pass(key), 0), count, (images, labels.indices, weights),
                         checked(first_pass, 1), reader.name, length, steps is not None, end if callable(end) else None)
    return stream, labels


def fit_data(model, x, y, batch_size, class_weight, sample_weight, steps_per_epoch, seed: int,
             shuffle: bool = True) -> FitData:
    """fit's ``x`` (and ``y``, weights) as :class:`FitData`: arrays checked as before, a folder's dataset as
    its arrays, any other source as a stream of checked batches (``shuffle``: see :func:`batch_iterator`)."""
    from cnnlab.net.kinds.core import expects_raw_pixels

    if x is None:
        raise InputError("fit: give the training data x: images with their labels y, or a source of batches")
    if is_array(x):
        if y is None:
            raise InputError("fit: give the labels y with the images x")
        if steps_per_epoch is not None:
            raise InputError("fit: steps_per_epoch applies to generators and datasets; with arrays an epoch "
                             "is every image once")
        images = model._images(_host(x), "x")
        labels = check_labels(_host(y), len(images), "y")
        model._compiled.check_labels(labels, "y")
        return FitData(images, labels, weights_for(labels.indices, class_weight, sample_weight))
    if y is not None:
        raise InputError(f"fit: y must not be given when x is a source of batches ({type(x).__name__}): "
                         "the labels come with the batches, as in Keras")
    if is_folder_dataset(x):
        if steps_per_epoch is not None:
            raise InputError("fit: steps_per_epoch is not supported for image_dataset_from_directory's dataset "
                             "(an epoch is every image once, shuffled by cnnlab)")
        images, labels = folder_arrays(x, model._spec is not None and expects_raw_pixels(model.spec))
        images = model._images(images, "x")
        model._compiled.check_labels(labels, "x (its label_mode)")
        return FitData(images, labels, weights_for(labels.indices, class_weight, sample_weight), x.batch_size, True)
    if sample_weight is not None:
        raise InputError("fit: sample_weight cannot be given with a source of batches; yield (x, y, sample_weight)")
    reader = SourceReader(lambda images, labels, name: checked_batch(model, images, labels, name), "x")
    stream, labels = training_stream(reader, x, steps_per_epoch, seed, batch_size, class_weight,
                                     lambda labels, name: model._compiled.check_classes(labels, model._outputs(), name),
                                     shuffle)
    width = labels.one_hot_width or (len(x.class_names) if hasattr(x, "class_names") else None)
    return FitData(stream, Labels(labels.indices, width))


def checked_batch(model, images, labels, name: str) -> tuple[np.ndarray, Labels]:
    """One batch checked as fit checks arrays: the images for this model, the labels paired and in the loss's format."""
    images = model._images(images, name)
    checked = check_labels(labels, len(images), f"{name} labels")
    model._compiled.check_labels(checked, f"{name} labels")
    return images, checked


def evaluation_arrays(model, x, y, steps, seed: int, batch_size, name: str = "x") -> tuple[np.ndarray, Labels]:
    """Images and labels to score: arrays checked, or every batch of one pass of a source (``steps`` of them)."""
    from cnnlab.net.kinds.core import expects_raw_pixels

    if is_array(x):
        if y is None:
            raise InputError(f"{name}: give the labels with the images")
        images = model._images(_host(x), name)
        labels = check_labels(_host(y), len(images), f"{name} labels" if name != "x" else "y")
        model._compiled.check_labels(labels, name)
        return images, labels
    if y is not None:
        raise InputError(f"{name}: no separate labels when the data is a source of batches ({type(x).__name__})")
    if is_folder_dataset(x):
        images, labels = folder_arrays(x, model._spec is not None and expects_raw_pixels(model.spec))
        model._compiled.check_labels(labels, name)
        return model._images(images, name), labels
    reader = SourceReader(lambda images, labels, where: checked_batch(model, images, labels, where), name)
    return read_all(reader, x, steps, seed, batch_size)


def prediction_images(model, x, steps, seed: int, batch_size) -> np.ndarray:
    """predict's images: arrays as they are, or every batch of one pass of a source, in its order (batches
    of images, or ``(x, y)`` pairs whose labels are left); a folder dataset's batches as fit sees its pixels."""
    from cnnlab.net.kinds.core import expects_raw_pixels

    if is_array(x):
        return _host(x)
    raw = model._spec is not None and expects_raw_pixels(model.spec)
    if is_folder_dataset(x):  # its own order (it may shuffle), as Keras predicts on it
        parts = [batch[0] if isinstance(batch, tuple) else batch for batch in x]
        return np.concatenate(parts if raw else [part.astype(np.uint8) for part in parts])  # whole 0..255 values
    new_pass, count, length = batch_iterator(x, steps, seed, batch_size, "x")
    source, parts = new_pass(0), []
    count = count if length is None else min(count, length)
    for step in range(count):
        item = next(source, None)
        if item is None:
            raise InputError(f"x: the data ran out after {step} of {count} batches")
        images = _host(item[0] if isinstance(item, (tuple, list)) else item)
        parts.append(model._images(images, f"x (batch {step + 1})"))
    return np.concatenate(parts)
