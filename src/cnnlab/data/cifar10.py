"""CIFAR-10 from the official release: download, verify, extract safely, convert once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.data import cache as cache_mod
from cnnlab.data import limits
from cnnlab.data.archive import safe_extract
from cnnlab.data.dataset import Dataset, DatasetError
from cnnlab.data.download import DownloadError, download
from cnnlab.data.unpickle import restricted_loads
from cnnlab.errors import describe

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"


@dataclass(frozen=True)
class Release:
    """What the official archive is: where it lives and the hashes that prove it."""

    url: str
    filename: str
    size: int
    sha256: str
    md5s: dict[str, str] = field(hash=False)  # member file name -> md5
    folder: str = "cifar-10-batches-py"
    extras: tuple[str, ...] = ("readme.html",)


OFFICIAL = Release(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    filename="cifar-10-python.tar.gz",
    size=170_498_071,
    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    md5s={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
)


def load_cifar10(source: str | Path | None = None, cache: str | Path | None = None,
                 release: Release = OFFICIAL, allow_download: bool = True,
                 progress: bool = True) -> Dataset:
    """CIFAR-10 as a :class:`Dataset`, from ``source`` (archive or extracted folder) or the cache.

    With no ``source``, the archive is taken from the cache (re-verified) or
    downloaded into it. The converted arrays are cached by the archive's sha256.
    """
    home = cache_mod.cache_dir(cache) / "cifar10"
    source = Path(source).expanduser() if source is not None else None
    if source is not None and source.is_dir():
        return _from_folder(_batches_folder(source, release), release, home, str(source))
    converted = home / f"cifar10-{release.sha256[:16]}.npz"
    if source is None and (arrays := cache_mod.load_arrays(converted)) is not None:
        return _dataset(arrays, release, home / release.filename, "cached arrays")
    archive = _verified_archive(source, release, home, allow_download, progress)
    if (arrays := cache_mod.load_arrays(converted)) is None:
        folder = safe_extract(archive, home / "extracted", _accepts(release)) / release.folder
        arrays = _read_folder(folder, release)
        cache_mod.save_arrays(converted, arrays)
    return _dataset(arrays, release, archive, "sha256 verified")


def _accepts(release: Release):
    names = {release.folder, *(f"{release.folder}/{name}" for name in (*release.md5s, *release.extras))}
    return lambda path: str(path) in names


def _batches_folder(folder: Path, release: Release) -> Path:
    return folder / release.folder if (folder / release.folder).is_dir() else folder


def _from_folder(folder: Path, release: Release, home: Path, shown: str) -> Dataset:
    # Every member's md5 matches the release, so the arrays equal the archive's.
    converted = home / f"cifar10-{release.sha256[:16]}.npz"
    arrays = _read_folder(folder, release)
    if cache_mod.load_arrays(converted) is None:
        cache_mod.save_arrays(converted, arrays)
    return _dataset(arrays, release, folder, "md5 of every batch verified")


def _verified_archive(source, release, home, allow_download, progress) -> Path:
    if source is not None:
        if not source.exists():
            raise DatasetError(f"{source}: no such file or folder")
        digest = cache_mod.sha256_file(source)
        if digest != release.sha256:
            raise DatasetError(f"{source}: not the official CIFAR-10 archive "
                               f"(sha256 {digest}, expected {release.sha256})")
        return source
    archive = home / release.filename
    if archive.exists() and cache_mod.sha256_file(archive) != release.sha256:
        archive.unlink()  # a damaged cached archive is replaced, never used
    if not archive.exists():
        _download(release, archive, allow_download, progress)
    return archive


def _download(release: Release, archive: Path, allow_download: bool, progress: bool) -> None:
    help_text = (f"Without network, download {release.filename} elsewhere and put it at {archive}, "
                 f"or pass its path (or the extracted {release.folder} folder) as the dataset. "
                 "'--dataset digits' works offline.")
    if not allow_download:
        raise DatasetError(f"CIFAR-10 is not in the cache and downloads are off. {help_text}")
    try:
        download(release.url, archive, release.sha256, release.size, progress=progress)
    except DownloadError as exc:
        raise DatasetError(f"{exc}. {help_text}") from None


def _read_member(folder: Path, name: str, release: Release):
    path = folder / name
    if not os.path.lexists(path):
        raise DatasetError(f"{path}: missing CIFAR-10 batch file")
    data = limits.read_regular_file(path, limits.MAX_BATCH_FILE_BYTES, "CIFAR-10 batch file")
    if cache_mod.md5_bytes(data) != release.md5s[name]:
        raise DatasetError(f"{path}: md5 mismatch: not the official {name}")
    return restricted_loads(data, str(path))


def _read_batch(folder: Path, name: str, release: Release) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_member(folder, name, release)
    try:
        data, labels = batch[b"data"], np.asarray(batch[b"labels"], dtype=np.int64)
        images = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)  # (N, C, H, W) rows
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{folder / name}: not a CIFAR-10 batch ({describe(exc)})") from None
    if len(images) != len(labels):
        raise DatasetError(f"{folder / name}: {len(images)} images but {len(labels)} labels")
    return images.transpose(0, 2, 3, 1), labels  # (N, H, W, C)


def _read_folder(folder: Path, release: Release) -> dict[str, np.ndarray]:
    meta = _read_member(folder, META, release)
    names = [name.decode() if isinstance(name, bytes) else str(name) for name in meta[b"label_names"]]
    train = [_read_batch(folder, name, release) for name in TRAIN_BATCHES]
    x_test, y_test = _read_batch(folder, TEST_BATCH, release)
    return {
        "x_train": np.ascontiguousarray(np.concatenate([x for x, _ in train])),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": np.ascontiguousarray(x_test),
        "y_test": y_test,
        "class_names": np.array(names),
    }


def _dataset(arrays: dict[str, np.ndarray], release: Release, location: Path, status: str) -> Dataset:
    identity = {"source": "cifar10 (official release)", "location": str(location),
                "sha256": release.sha256, "verified": status}
    return Dataset("cifar10", [str(n) for n in arrays["class_names"]], arrays["x_train"],
                   arrays["y_train"], arrays["x_test"], arrays["y_test"], identity)
