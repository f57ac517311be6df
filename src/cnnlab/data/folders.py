"""Image-folder datasets: ``train/<class>/*`` + ``test/<class>/*``, or one ``<class>/*`` tree.

A folder, or a .tar.gz / .zip of one (read in memory: members are checked as in
extraction, and nothing is written but the converted cache: a memory-mapped uint8
``.npy`` and its ``.meta.npz``, see ``cnnlab.data.mapped``). The cache is keyed by
content: an archive's sha256, or for a folder the sha256 of its entries' names and its
image files' bytes (every image is read and hashed on each load: 1.1 s for CIFAR-10's
60,000 JPEGs against 0.35 s for their sizes and dates), so an image rewritten with the
same size and date is never served from the old cache. Files of a split are
ordered by their numeric names when every name is a number (the CIFAR-10 image
tree then comes back in the official order), else by class and name.

Only files named as images are ever read, each through ``limits`` (regular files of
at most ``MAX_IMAGE_FILE_BYTES``; links are followed to regular files only, and
linked folders are walked once each, so a cycle ends), and an archive within its
budget; see ``cnnlab.data.limits``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath

import numpy as np

from cnnlab.data import cache as cache_mod
from cnnlab.data import limits
from cnnlab.data.archive import read_member, regular_members
from cnnlab.data.dataset import Dataset, DatasetError
from cnnlab.data.images import IMAGE_SUFFIXES, decode_all, read_image_file, stack_same_size
from cnnlab.data.mapped import load_image_cache, save_arrays_as_image_cache
from cnnlab.data.split import stratified_holdout

SINGLE_TREE_TEST_FRACTION = 0.2
SINGLE_TREE_SEED = 0
DECODER = "decoder-2"  # part of the cache key: bump when decoding changes (2: 16-bit scaled, not clipped)


def load_image_folder(path: str | Path, cache: str | Path | None = None, channels: int = 3,
                      size: tuple[int, int] | None = None, skip_bad: bool = False,
                      workers: int | None = None) -> Dataset:
    """An image-folder dataset from a folder or archive, decoded once and cached."""
    path = Path(path).expanduser()
    _check_options(channels, size)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if not (path.is_file() or path.is_dir()):
        raise DatasetError(f"{path}: neither a regular file (an archive) nor a folder")
    settings = json.dumps([channels, size, skip_bad, DECODER])
    if path.is_file():  # an archive: its sha256 is the key, so a cached load reads nothing else
        files, digest, verified = None, cache_mod.sha256_file(path), "sha256 of the archive"
    else:
        files, folders = _list_folder(path)
        digest, verified = _folder_sha256(folders, files), "sha256 of the folder's names and image files"
    stem = cache_mod.cache_dir(cache) / "folders" / f"{path.name}-{_key(settings, digest)}"
    arrays = load_image_cache(stem)  # the images memory-mapped, read as training asks for them
    if arrays is None:
        converted = _convert(path, files if files is not None else _list_archive(path), channels, size,
                             skip_bad, workers)
        if files is not None and _folder_sha256(folders, files) != digest:
            raise DatasetError(f"{path}: files changed while they were being converted; load it again")
        save_arrays_as_image_cache(stem, converted)
        arrays = load_image_cache(stem) or converted  # mapped as a cached load is, so both behave alike
    identity = {"source": "image folder", "location": str(path), "sha256": digest, "verified": verified}
    return Dataset(path.name.split(".")[0], [str(n) for n in arrays["class_names"]], arrays["x_train"],
                   arrays["y_train"], arrays["x_test"], arrays["y_test"], identity,
                   [str(n) for n in arrays["notes"]])


def _check_options(channels: int, size) -> None:
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    if size is None:
        return
    try:
        height, width = (int(side) for side in size)
    except (TypeError, ValueError):
        raise DatasetError(f"size (--size) must be (height, width), got {size!r:.40}") from None
    if min(height, width) < 1 or height * width > limits.MAX_IMAGE_PIXELS:
        raise DatasetError(f"size (--size) must be HxW with H, W >= 1 and H*W at most "
                           f"{limits.MAX_IMAGE_PIXELS:,} pixels, got {height}x{width}")


# ------------------------------------------------------------- listing files
# A listing maps each relative path to its source: a Path (read when decoded), the
# bytes of an archive member, the FileLimitError that says why it cannot be read,
# or None for a file that is not an image (never read).


def _list_folder(root: Path) -> tuple[dict[PurePosixPath, object], list[str]]:
    """Every non-folder entry under ``root`` (files, links, special files) and every folder.

    Linked folders are walked, but each folder only once (a link cycle ends), and at
    most MAX_FILES entries in all.
    """
    files, folders, seen = {}, [], set()
    _first_visit(root, seen)  # a link back to the root is a cycle too

    def refuse(exc: OSError):
        raise DatasetError(f"{exc.filename or root}: cannot list folder ({exc.strerror or exc})")

    for top, dirs, names in os.walk(root, onerror=refuse, followlinks=True):
        dirs[:] = sorted(d for d in dirs if _first_visit(Path(top) / d, seen))
        base = PurePosixPath(Path(top).relative_to(root).as_posix())
        folders += [str(base / d) for d in dirs]
        files.update((base / name, Path(top) / name) for name in sorted(names))
        if len(files) + len(folders) > limits.MAX_FILES:
            raise DatasetError(f"{root}: more than {limits.MAX_FILES:,} files and folders; refused")
    return dict(sorted(files.items())), sorted(folders)


def _first_visit(folder: Path, seen: set) -> bool:
    try:
        info = folder.stat()
    except OSError:
        return False  # a dangling link: nothing to walk
    identity = (info.st_dev, info.st_ino)
    if identity in seen:
        return False
    seen.add(identity)
    return True


def _list_archive(archive: Path) -> dict[PurePosixPath, object]:
    """Image members read (each bounded), other members listed but never read."""
    files: dict[PurePosixPath, object] = {}
    for path, member in regular_members(archive):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            files[path] = None
            continue
        try:
            files[path] = read_member(archive, member, limits.MAX_IMAGE_FILE_BYTES, "image file")
        except limits.FileLimitError as exc:
            files[path] = exc  # a bad file: an error, or skipped with skip_bad
    return files


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _folder_sha256(folders: list[str], files: dict[PurePosixPath, Path]) -> str:
    """sha256 of the folder names, every entry's name and each image file's bytes (of a link's target).

    What decides the decoded pixels, and nothing else: files that are not images are
    never read (only their names count), and a file that cannot be read counts by why
    (too large, not a regular file, missing) -- read through ``limits``, so within its bounds."""
    digest = hashlib.sha256()
    for folder in folders:
        digest.update(f"folder\0{folder}\n".encode(errors="surrogateescape"))
    for rel, source in files.items():
        digest.update(f"file\0{rel}\0{_file_sha256(rel, source)}\n".encode(errors="surrogateescape"))
    return digest.hexdigest()


def _file_sha256(rel: PurePosixPath, source: Path) -> str:
    if rel.suffix.lower() not in IMAGE_SUFFIXES:
        return "not an image"
    try:
        return hashlib.sha256(read_image_file(source)).hexdigest()
    except limits.FileLimitError as exc:  # a bad file: an error when decoded, or skipped with skip_bad
        return f"unreadable\0{exc.reason}"


# ------------------------------------------------------------- layout


def _layout(files: dict, where: Path):
    """``({split: {class: [relative paths]}}, notes, files, wrapping folder or None)``."""
    images = [rel for rel in files if rel.suffix.lower() in IMAGE_SUFFIXES]
    notes = []
    if len(images) < len(files):
        notes.append(f"ignored {len(files) - len(images)} files that are not images "
                     f"({', '.join(IMAGE_SUFFIXES)})")
    tops = {rel.parts[0] for rel in images if len(rel.parts) > 1}
    wrapper = None
    if len(tops) == 1 and not {"train", "test"} & tops and all(len(r.parts) >= 3 for r in images):
        wrapper = tops.pop()  # one folder around the whole tree: look inside it
        images = [PurePosixPath(*rel.parts[1:]) for rel in images]
        files = {PurePosixPath(*rel.parts[1:]): src for rel, src in files.items() if len(rel.parts) > 1}
    split_mode = any(rel.parts[0] in ("train", "test") and len(rel.parts) == 3 for rel in images)
    tree: dict[str, dict[str, list]] = {}
    for rel in images:
        parts = rel.parts[1:] if split_mode else rel.parts
        if len(parts) != 2 or (split_mode and rel.parts[0] not in ("train", "test")):
            raise DatasetError(f"{where}: '{rel}' is not in a class folder; expected "
                               "train/<class>/<image> and test/<class>/<image>, or <class>/<image>")
        split = rel.parts[0] if split_mode else "all"
        tree.setdefault(split, {}).setdefault(parts[0], []).append(rel)
    return tree, notes, files, wrapper


def _check_classes(tree: dict, where: Path, class_dirs: set[str]) -> list[str]:
    if not tree:
        raise DatasetError(f"{where}: no class folders with images found; expected "
                           "train/<class>/<image> and test/<class>/<image>, or <class>/<image>")
    if "all" not in tree and set(tree) != {"train", "test"}:
        missing = ({"train", "test"} - set(tree)).pop()
        raise DatasetError(f"{where}: has no images under '{missing}/'")
    classes = sorted(set().union(*(set(split) for split in tree.values())))
    if len(classes) < 2:  # one class "trains" to perfect accuracy and means nothing
        raise DatasetError(f"{where}: only one class folder with images ('{classes[0]}'); a classifier "
                           "needs at least two classes")
    empty = sorted(class_dirs - set(classes))
    if empty:
        raise DatasetError(f"{where}: class folder '{empty[0]}' has no images")
    for split, by_class in tree.items():
        if set(by_class) != set(classes):
            lacking = sorted(set(classes) - set(by_class))
            raise DatasetError(f"{where}: split '{split}' has no images of class '{lacking[0]}'")
    return classes


def _ordered(by_class: dict[str, list], classes: list[str]) -> list[tuple[PurePosixPath, int]]:
    items = [(rel, classes.index(name)) for name, rels in by_class.items() for rel in rels]
    stems = [rel.stem for rel, _ in items]
    if all(stem.isdigit() for stem in stems) and len(set(stems)) == len(stems):
        return sorted(items, key=lambda item: int(item[0].stem))
    return sorted(items, key=lambda item: (item[1], str(item[0])))


def _convert(path: Path, files: dict, channels: int, size, skip_bad: bool, workers) -> dict:
    tree, notes, files, wrapper = _layout(files, path)
    class_dirs = _class_dirs(path / wrapper if wrapper else path) if path.is_dir() else set()
    classes = _check_classes(tree, path, class_dirs)
    parts = {split: _ordered(by_class, classes) for split, by_class in tree.items()}
    items = [(rel, label, split) for split, ordered in parts.items() for rel, label in ordered]
    decoded = decode_all([(f"{path}/{rel}", files[rel]) for rel, _, _ in items], channels, size, skip_bad,
                         workers)
    kept = [items[i] for i in decoded.keep]
    labels = np.array([label for _, label, _ in kept], dtype=np.int64)
    splits = np.array([split for _, _, split in kept])
    _check_kept(labels, splits, classes, sorted(tree), path)
    images = stack_same_size(decoded.images, [str(rel) for rel, _, _ in kept])
    notes += [f"converted {n} images ({what})" for what, n in sorted(decoded.conversions.items())]
    if decoded.bad:
        notes.append(f"skipped {len(decoded.bad)} unreadable files (e.g. {decoded.bad[0]})")
    if "all" in tree:
        train_idx, test_idx = stratified_holdout(labels, SINGLE_TREE_TEST_FRACTION, SINGLE_TREE_SEED)
        notes.append(f"no train/test folders: held out a stratified {SINGLE_TREE_TEST_FRACTION:.0%} "
                     f"as test (seed {SINGLE_TREE_SEED})")
    else:
        train_idx, test_idx = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
    return {"x_train": images[train_idx], "y_train": labels[train_idx], "x_test": images[test_idx],
            "y_test": labels[test_idx], "class_names": np.array(classes), "notes": np.array(notes, dtype=str)}


def _check_kept(labels: np.ndarray, splits: np.ndarray, classes: list[str], names: list[str],
                where: Path) -> None:
    """After skipping unreadable files, every split must still hold every class."""
    for split in names:
        present = set(labels[splits == split].tolist())
        lost = [name for index, name in enumerate(classes) if index not in present]
        if lost:
            part = "" if split == "all" else f" in '{split}/'"
            raise DatasetError(f"{where}: every image of class '{lost[0]}'{part} was skipped as unreadable")


def _class_dirs(root: Path) -> set[str]:
    """Names of class folders on disk (to catch empty ones the file listing cannot see)."""
    bases = [root / "train", root / "test"] if (root / "train").is_dir() else [root]
    return {d.name for base in bases if base.is_dir() for d in base.iterdir() if d.is_dir()}
