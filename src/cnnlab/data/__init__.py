"""The data layer: the only code in cnnlab that touches the network, the cache or archives.

Every source yields a :class:`Dataset` of uint8 images ``(N, H, W, C)``, integer
labels, class names, and a train and a test part.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.data.dataset import Dataset, DatasetError, one_hot, to_float
from cnnlab.data.split import Split, validation_split

NAMES = ("cifar10", "digits")


def load_dataset(dataset: str | Path, cache: str | Path | None = None, *, channels: int | None = None,
                 size: tuple[int, int] | None = None, skip_bad: bool = False,
                 allow_download: bool = True, progress: bool = True) -> Dataset:
    """Load a dataset by name (``cifar10``, ``digits``) or path.

    A path may be the official ``cifar-10-python.tar.gz``, its extracted
    ``cifar-10-batches-py`` folder (both read as CIFAR-10, with the same hash checks),
    or an image folder / .tar.gz / .zip of one (``channels``: 3 for RGB, the default,
    or 1; ``size``: (H, W) to resize; ``skip_bad``: skip unreadable files).
    """
    from cnnlab.data.cifar10 import OFFICIAL, load_cifar10
    from cnnlab.data.digits import load_digits
    from cnnlab.data.folders import load_image_folder

    text = str(dataset)
    if text == "digits":
        return load_digits()
    if text == "cifar10":
        return load_cifar10(cache=cache, allow_download=allow_download, progress=progress)
    path = Path(text).expanduser()
    if not path.exists():
        raise DatasetError(f"'{text}' is neither a dataset name ({', '.join(NAMES)}) nor an existing path")
    if path.name == OFFICIAL.filename or _is_batches_folder(path):
        return load_cifar10(path, cache=cache, allow_download=False, progress=progress)
    return load_image_folder(path, cache=cache, channels=channels or 3, size=size, skip_bad=skip_bad)


def _is_batches_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "data_batch_1").exists()
                              or (path / "cifar-10-batches-py" / "data_batch_1").exists())


__all__ = ["Dataset", "DatasetError", "NAMES", "Split", "load_dataset", "one_hot", "to_float",
           "validation_split"]
