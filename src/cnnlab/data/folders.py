"""Image-folder datasets: ``train/<class>/*`` + ``test/<class>/*``, or one ``<class>/*`` tree.

A folder, or a .tar.gz / .zip of one (read in memory: members are checked as in
extraction, and nothing is written but the converted cache). Files of a split are
ordered by their numeric names when every name is a number (the CIFAR-10 image
tree then comes back in the official order), else by class and name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

import numpy as np

from cnnlab.data import cache as cache_mod
from cnnlab.data.archive import regular_members
from cnnlab.data.dataset import Dataset, DatasetError
from cnnlab.data.images import IMAGE_SUFFIXES, decode_all, stack_same_size
from cnnlab.data.split import stratified_holdout

SINGLE_TREE_TEST_FRACTION = 0.2
SINGLE_TREE_SEED = 0


def load_image_folder(path: str | Path, cache: str | Path | None = None, channels: int = 3,
                      size: tuple[int, int] | None = None, skip_bad: bool = False,
                      workers: int | None = None) -> Dataset:
    """An image-folder dataset from a folder or archive, decoded once and cached."""
    path = Path(path).expanduser()
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    settings = json.dumps([channels, size, skip_bad])
    if path.is_file():  # an archive: its sha256 is the key, so a cached load reads nothing else
        files, key = None, _key(settings, cache_mod.sha256_file(path))
    else:
        files = _list_folder(path)
        folders = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_dir())
        key = _key(settings, *folders, *(_stat_line(rel, source) for rel, source in files.items()))
    cached = cache_mod.cache_dir(cache) / "folders" / f"{path.name}-{key}.npz"
    arrays = cache_mod.load_arrays(cached)
    if arrays is None:
        files = files if files is not None else _list_archive(path)
        arrays = _convert(path, files, channels, size, skip_bad, workers)
        cache_mod.save_arrays(cached, arrays)
    identity = {"source": "image folder", "location": str(path), "sha256": key, "verified": "content key"}
    return Dataset(path.name.split(".")[0], [str(n) for n in arrays["class_names"]], arrays["x_train"],
                   arrays["y_train"], arrays["x_test"], arrays["y_test"], identity,
                   [str(n) for n in arrays["notes"]])


# ------------------------------------------------------------- listing files
# A listing maps each relative path to a reader of its bytes.


def _list_folder(root: Path) -> dict[PurePosixPath, object]:
    return {PurePosixPath(p.relative_to(root).as_posix()): p
            for p in sorted(root.rglob("*")) if p.is_file()}


def _list_archive(archive: Path) -> dict[PurePosixPath, object]:
    return {path: read() for path, read in regular_members(archive)}


def _read(source) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _stat_line(rel: PurePosixPath, source: Path) -> str:
    """A folder's identity is its files' names, sizes and modification times."""
    stat = source.stat()
    return f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}"


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
    decoded = decode_all([(f"{path}/{rel}", _read(files[rel])) for rel, _, _ in items],
                         channels, size, skip_bad, workers)
    kept = [items[i] for i in decoded.keep]
    images = stack_same_size(decoded.images, [str(rel) for rel, _, _ in kept])
    labels = np.array([label for _, label, _ in kept], dtype=np.int64)
    splits = np.array([split for _, _, split in kept])
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


def _class_dirs(root: Path) -> set[str]:
    """Names of class folders on disk (to catch empty ones the file listing cannot see)."""
    bases = [root / "train", root / "test"] if (root / "train").is_dir() else [root]
    return {d.name for base in bases if base.is_dir() for d in base.iterdir() if d.is_dir()}
