"""Small datasets the tests build themselves, in the official CIFAR-10 layout."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from cnnlab.data.cifar10 import META, TEST_BATCH, TRAIN_BATCHES, Release

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def batch_bytes(images_nchw: np.ndarray, labels: list[int], label: bytes) -> bytes:
    """A batch as the release has it: a dict with byte-string keys, rows of 3072 uint8."""
    batch = {b"batch_label": label, b"labels": labels,
             b"data": images_nchw.reshape(len(labels), 3072),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    return pickle.dumps(batch, protocol=2)


def make_cifar_folder(root: Path, per_batch: int = 6, seed: int = 0) -> tuple[Path, dict, np.ndarray]:
    """``root/cifar-10-batches-py`` with five train batches, a test batch and meta.

    Returns the folder, the members' md5s and all images (N, H, W, C) train then test.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    md5s, images = {}, []
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        nchw = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        data = batch_bytes(nchw, labels, name.encode())
        (folder / name).write_bytes(data)
        md5s[name] = hashlib.md5(data).hexdigest()
        images.append(nchw.transpose(0, 2, 3, 1))
    meta = pickle.dumps({b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": per_batch,
                         b"num_vis": 3072}, protocol=2)
    (folder / META).write_bytes(meta)
    md5s[META] = hashlib.md5(meta).hexdigest()
    (folder / "readme.html").write_text("<html>fixture</html>")
    return folder, md5s, np.concatenate(images)


def make_cifar_archive(root: Path, url: str = "http://127.0.0.1:9/none") -> tuple[Path, Release, np.ndarray]:
    """A fixture ``cifar-10-python.tar.gz`` and the Release (hashes substituted) that describes it."""
    src = root / "src"
    folder, md5s, images = make_cifar_folder(src)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    data = archive.read_bytes()
    release = Release(url=url, filename="cifar-10-python.tar.gz", size=len(data),
                      sha256=hashlib.sha256(data).hexdigest(), md5s=md5s)
    return archive, release, images


def tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def assert_error_line(err: str, *fragments: str) -> None:
    """stderr is one ``cnnlab: error:`` line holding ``fragments``: no traceback, no reprs, no unsafe advice."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), err
    assert " at 0x" not in err and "weights_only=False" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def image_folder(root: Path, classes=("cat", "dog"), per_class: int = 10, seed: int = 0) -> Path:
    """A tiny ``<class>/*.png`` dataset of random 8x8 RGB images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{index}.png")
    return root


def small_model(data, seed=0):
    """The smallest Keras-style model of a dataset: flatten, then a 10-way softmax (a graph, seeded)."""
    import cnnlab
    from cnnlab.layers import Dense, Flatten, Input

    inp = Input(shape=data.image_shape)
    return cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Flatten()(inp)), seed=seed)
