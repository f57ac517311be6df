"""Random files thrown at the image-folder loader: whatever they are, only CnnlabErrors escape."""

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlab.data import load_dataset
from cnnlab.errors import CnnlabError

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


RGB = Image.new("RGB", (4, 4), (9, 99, 199))
REAL = [encoded(RGB, "PNG"), encoded(RGB, "JPEG"), encoded(RGB, "BMP"), encoded(RGB, "WEBP"),
        encoded(RGB.convert("L"), "PNG"), encoded(Image.fromarray(np.full((4, 4), 999, np.uint16)), "PNG"),
        encoded(RGB, "GIF"), encoded(RGB, "TIFF")]
NAMES = ["train", "test", "cat", "dog", "$^$", "a.png", "b.jpg", "c.JPEG", "d.bmp", "e.webp", "f.txt",
         "1.png", "2.png", "x", ".hidden.png"]
KINDS = ["file", "file", "file", "dir", "link-entry", "link-up", "link-dev", "link-dangling", "fifo"]

contents = st.one_of(
    st.binary(max_size=48),
    st.sampled_from(REAL),
    st.tuples(st.sampled_from(REAL), st.integers(0, 120)).map(lambda cut: cut[0][: cut[1]]),
)
entries = st.lists(st.tuples(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4),
                             st.sampled_from(KINDS), contents), max_size=14)


def seed_tree(root: Path) -> None:
    """A valid two-class tree, so the random entries also reach decoding and stacking."""
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            (root / split / cls / "0.png").write_bytes(REAL[0])


def create(root: Path, parts: list[str], kind: str, content: bytes, made: list[Path]) -> None:
    path = root.joinpath(*parts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            return
        if kind == "file":
            path.write_bytes(content)
        elif kind == "dir":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            target = {"link-entry": made[len(content) % len(made)] if made else root, "link-up": root,
                      "link-dev": Path("/dev/zero"), "link-dangling": root / "nowhere"}[kind]
            path.symlink_to(target)
    except OSError:  # a parent that is a file, a name taken: this entry just is not made
        return
    made.append(path)


def build(root: Path, seeded: bool, spec) -> Path:
    root.mkdir(parents=True)
    if seeded:
        seed_tree(root)
    made: list[Path] = []
    for parts, kind, content in spec:
        create(root, parts, kind, content, made)
    return root


def only_cnnlab_errors(source: Path, cache: Path) -> None:
    for skip_bad in (False, True):
        try:
            data = load_dataset(source, cache=cache, skip_bad=skip_bad)
        except CnnlabError:
            continue
        assert data.x_train.dtype == np.uint8 and len(data.x_train) == len(data.y_train)
        assert data.num_classes >= 2


@SETTINGS
@given(seeded=st.booleans(), spec=entries)
def test_random_folders_raise_only_cnnlab_errors(seeded, spec):
    work = Path(tempfile.mkdtemp(prefix="cnnlab-hostile-"))
    try:
        only_cnnlab_errors(build(work / "data", seeded, spec), work / "cache")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@SETTINGS
@given(seeded=st.booleans(), spec=entries, damage=st.one_of(st.none(), st.tuples(st.integers(0, 4000),
                                                                                  st.integers(1, 255))))
def test_random_archives_raise_only_cnnlab_errors(seeded, spec, damage):
    work = Path(tempfile.mkdtemp(prefix="cnnlab-hostile-"))
    try:
        archive = work / "data.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:  # links, FIFOs and folders go in as they are
            tar.add(build(work / "data", seeded, spec), arcname="data")
        if damage is not None:  # one byte changed, or the archive cut short there
            raw = bytearray(archive.read_bytes())
            at = damage[0] % len(raw)
            raw = raw[:at] if damage[1] == 255 else raw[:at] + bytes([raw[at] ^ damage[1]]) + raw[at + 1:]
            archive.write_bytes(bytes(raw))
        only_cnnlab_errors(archive, work / "cache")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@SETTINGS
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".zip", ".tar.gz", ".tar", ".png"]))
def test_random_bytes_as_an_archive_raise_only_cnnlab_errors(raw, suffix):
    work = Path(tempfile.mkdtemp(prefix="cnnlab-hostile-"))
    try:
        path = work / f"data{suffix}"
        path.write_bytes(raw)
        only_cnnlab_errors(path, work / "cache")
    finally:
        shutil.rmtree(work, ignore_errors=True)
