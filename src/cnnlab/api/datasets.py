"""Loading a dataset and looking at it from Python."""

from __future__ import annotations


def load_data(dataset: str = "cifar10", **options):
    """A :class:`cnnlab.data.Dataset` by name or path (see :func:`cnnlab.data.load_dataset`)."""
    from cnnlab.data import load_dataset

    return load_dataset(dataset, **options)


def show_samples(dataset, split: str = "train", n: int = 10, seed: int = 0):
    """A matplotlib Figure of ``n`` random labelled images: shown once in a notebook as a cell's value,
    and, where you imported pyplot, one of its figures, so ``plt.show()`` draws it (pyplot is never
    imported here: your backend is left alone)."""
    from cnnlab.presenters.plots import sample_grid

    images, labels = dataset.split(split)
    return sample_grid(images, labels, dataset.class_names, n, seed, title=f"{dataset.name} ({split})",
                       pyplot=True)
