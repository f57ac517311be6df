"""Hostile and broken image datasets: bounded reads, bombs refused, odd files named, no traceback."""

import io
import os
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import Dataset, DatasetError, limits, load_dataset
from cnnlab.data.archive import UnsafeArchiveError

BOMB_BYTES = 200 * 1024**2  # inflates to 200 MB from an archive of about 200 KB
MEMORY_BOUND = 48 * 1024**2  # what loading a bomb archive may allocate at its peak
READ_BOUND = 16 * 1024**2  # what it may read (the archives are a few hundred KB; an image member's limit is 32 MiB)


def png_bytes(color=(200, 10, 10), size=(6, 5), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_tree(root: Path) -> Path:
    for split in ("train", "test"):
        for cls, color in (("cat", (200, 10, 10)), ("dog", (10, 200, 10))):
            for i in range(2):
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                (root / split / cls / f"{i}.png").write_bytes(png_bytes(color))
    return root


class Zeros(io.RawIOBase):
    """``count`` zero bytes, streamed, so building a bomb never holds it in memory."""

    def __init__(self, count: int):
        self.left = count

    def readable(self):
        return True

    def readinto(self, buffer):
        size = min(len(buffer), self.left)
        buffer[:size] = bytes(size)
        self.left -= size
        return size


def zip_bomb(path: Path, member: str, size: int = BOMB_BYTES) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(p for p in make_tree(path.parent / "tree").rglob("*.png")):
            zf.write(rel, rel.relative_to(path.parent / "tree").as_posix())
        with zf.open(member, "w") as out:
            for _ in range(size >> 20):
                out.write(bytes(1 << 20))
    return path


def tar_bomb(path: Path, member: str, size: int = BOMB_BYTES) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        tar.add(make_tree(path.parent / "tree"), arcname=".")
        info = tarfile.TarInfo(member)
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(size)))
    return path


def bytes_read() -> int:
    """What this process has read through read() calls so far (Linux's rchar; 0 elsewhere)."""
    io_counts = Path("/proc/self/io")
    if not io_counts.exists():
        return 0
    return int(next(line for line in io_counts.read_text().splitlines() if line.startswith("rchar:")).split()[1])


def load_measured(path, **options):
    """``(dataset or the DatasetError, peak bytes allocated, bytes read)``: work counted in bytes, which a
    busy machine does not change, rather than in seconds, which it does."""
    tracemalloc.start()
    before = bytes_read()
    try:
        result = load_dataset(path, **options)
    except DatasetError as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak, bytes_read() - before


@pytest.mark.parametrize("make", [zip_bomb, tar_bomb], ids=["zip", "tar.gz"])
def test_an_image_member_that_inflates_to_200_mb_is_never_read(tmp_path, make):
    archive = make(tmp_path / f"bomb.{'zip' if make is zip_bomb else 'tar.gz'}", "train/cat/bomb.png")
    error, peak, read = load_measured(archive, cache=tmp_path / "c")
    assert isinstance(error, DatasetError) and "train/cat/bomb.png" in str(error)
    assert "too large (200.0 MiB, more than the 32.0 MiB cnnlab reads)" in str(error)  # its header's size
    assert peak < MEMORY_BOUND and read < READ_BOUND
    data, peak, _ = load_measured(archive, cache=tmp_path / "c", skip_bad=True)
    assert data.x_train.shape == (4, 5, 6, 3) and any("skipped 1 unreadable" in n for n in data.notes)
    assert peak < MEMORY_BOUND


def test_a_member_that_is_not_an_image_is_skipped_unread(tmp_path):
    archive = tar_bomb(tmp_path / "notes.tar.gz", "train/cat/notes.txt")
    data, peak, _ = load_measured(archive, cache=tmp_path / "c")
    assert data.x_train.shape == (4, 5, 6, 3) and any("ignored 1 files" in n for n in data.notes)
    assert peak < MEMORY_BOUND


@pytest.mark.parametrize("make", [zip_bomb, tar_bomb], ids=["zip", "tar.gz"])
def test_an_archive_inflating_past_its_budget_is_refused(tmp_path, make, monkeypatch):
    monkeypatch.setattr(limits, "ARCHIVE_MIN_BUDGET", 1024**2)
    archive = make(tmp_path / "many.archive", "train/cat/padding.bin", size=4 * 1024**2)
    with pytest.raises(UnsafeArchiveError, match=r"inflates to more than 1.0 MiB .*20x.*decompression bomb"):
        load_dataset(archive, cache=tmp_path / "c")


def test_a_huge_tar_extended_header_is_refused(tmp_path):
    archive = tmp_path / "pax.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("train/cat/a.png")
        info.pax_headers = {"comment": "x" * (2 * limits.MAX_TAR_HEADER_BYTES)}
        data = png_bytes()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UnsafeArchiveError, match="a tar header asks to read 2.0 MiB at once"):
        load_dataset(archive, cache=tmp_path / "c")


def test_huge_files_and_special_files_in_a_folder_are_never_read(tmp_path):
    root = make_tree(tmp_path / "pets")
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as handle:
        handle.truncate(40 * 1024**3)  # sparse: 40 GB that take no disk
    (root / "train" / "cat" / "linked.png").symlink_to(huge)
    with pytest.raises(DatasetError, match=r"linked.png: image file is too large \(40.0 GiB"):
        load_dataset(root, cache=tmp_path / "c")
    (root / "train" / "dog" / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(root / "test" / "dog" / "fifo.png")
    (root / "test" / "cat" / "dangling.png").symlink_to(tmp_path / "nowhere")
    data, peak, read = load_measured(root, cache=tmp_path / "c", skip_bad=True)
    assert data.x_train.shape == (4, 5, 6, 3) and any("skipped 4 unreadable" in n for n in data.notes)
    assert peak < MEMORY_BOUND and read < READ_BOUND  # neither the 40 GB file nor /dev/zero was read


def test_a_folder_is_read_a_chunk_at_a_time(tmp_path, monkeypatch):
    from cnnlab.data import images

    monkeypatch.setattr(images, "CHUNK_BYTES", 2 * 1024**2)
    root = make_tree(tmp_path / "pets")
    for index in range(30):  # 30 MB of files that are not images after all
        (root / "train" / "cat" / f"noise{index}.png").write_bytes(os.urandom(1024**2))
    data, peak, _ = load_measured(root, cache=tmp_path / "c", skip_bad=True)
    assert any("skipped 30 unreadable" in note for note in data.notes)
    assert peak < 12 * 1024**2


def test_special_files_are_named_as_such(tmp_path):
    root = make_tree(tmp_path / "pets")
    os.mkfifo(root / "test" / "dog" / "fifo.png")
    with pytest.raises(DatasetError, match=r"fifo.png: not a regular file \(a FIFO\); refused"):
        load_dataset(root, cache=tmp_path / "c")


def test_a_link_cycle_in_a_folder_ends(tmp_path):
    root = make_tree(tmp_path / "pets")
    (root / "train" / "cat" / "loop").symlink_to(root / "train")
    data = load_dataset(root, cache=tmp_path / "c")
    assert data.x_train.shape == (4, 5, 6, 3)


def test_a_file_holding_another_format_never_reaches_its_decoder(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    ran = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *args, **kw: ran.append(args))
    root = make_tree(tmp_path / "pets")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 6 5\nshowpage\n"  # Pillow runs Ghostscript on it
    (root / "train" / "cat" / "ghost.png").write_bytes(eps)
    tiff = io.BytesIO()
    Image.new("RGB", (6, 5)).save(tiff, format="TIFF")
    (root / "train" / "dog" / "tiff.png").write_bytes(tiff.getvalue())
    data = load_dataset(root, cache=tmp_path / "c", skip_bad=True)
    assert ran == [] and any("skipped 2 unreadable files" in note for note in data.notes)


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def test_an_image_declaring_too_many_pixels_is_not_decoded(tmp_path):
    root = make_tree(tmp_path / "pets")
    (root / "train" / "cat" / "wide.png").write_bytes(png_header_only(8000, 8000))
    with pytest.raises(DatasetError, match="wide.png: 8000x8000 pixels is more than the 50,000,000"):
        load_dataset(root, cache=tmp_path / "c")


def test_decoded_dataset_size_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_DATASET_BYTES", 500)
    with pytest.raises(DatasetError, match=r"decoded images pass 500 bytes.*--size"):
        load_dataset(make_tree(tmp_path / "pets"), cache=tmp_path / "c")


@pytest.mark.parametrize("size", [(0, 5), (-3, 4), (100_000, 100_000)])
def test_target_size_is_bounded(tmp_path, size):
    with pytest.raises(DatasetError, match=r"size \(--size\) must be HxW"):
        load_dataset(make_tree(tmp_path / "pets"), cache=tmp_path / "c", size=size)


def test_16_bit_pngs_are_scaled_not_clipped(tmp_path):
    root = make_tree(tmp_path / "pets")
    levels = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(levels)
    assert image.mode == "I;16"
    image.save(root / "train" / "cat" / "deep.png")
    data = load_dataset(root, cache=tmp_path / "c", channels=1, size=(1, 4))
    deep = data.x_train[data.y_train == 0][-1]  # class-then-name order: cat/0, cat/1, cat/deep
    assert deep[0, :, 0].tolist() == [0, 1, 128, 255]
    assert any("I;16 -> L" in note for note in data.notes)


def test_one_class_is_refused(tmp_path):
    root = tmp_path / "one"
    for split in ("train", "test"):
        (root / split / "cat").mkdir(parents=True)
        (root / split / "cat" / "a.png").write_bytes(png_bytes())
    with pytest.raises(DatasetError, match=r"one: only one class folder with images \('cat'\)"):
        load_dataset(root, cache=tmp_path / "c")
    x, y = np.zeros((2, 2, 2, 1), np.uint8), np.zeros(2, np.int64)
    with pytest.raises(DatasetError, match="dataset 'toy' has 1 class"):
        Dataset("toy", ["cat"], x, y, x, y)
    with pytest.raises(DatasetError, match="training part holds images of one class only"):
        Dataset("toy", ["cat", "dog"], x, y, x, y)


def test_a_class_whose_files_were_all_skipped_is_an_error(tmp_path):
    root = make_tree(tmp_path / "pets")
    for path in (root / "train" / "dog").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(DatasetError, match=r"every image of class 'dog' in 'train/' was skipped"):
        load_dataset(root, cache=tmp_path / "c", skip_bad=True)


def test_extraction_streams_each_member_within_its_limit(tmp_path):
    from cnnlab.data.archive import safe_extract

    archive = tar_bomb(tmp_path / "big.tar.gz", "tree/big", size=2 * 1024**2)
    with pytest.raises(DatasetError, match=r"tree/big: member is too large \(2.0 MiB, more than the 1.0 MiB"):
        safe_extract(archive, tmp_path / "out" / "target", lambda path: True, max_member=1024**2)
    assert list((tmp_path / "out").iterdir()) == []  # no target, no staging folder left behind
