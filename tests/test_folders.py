"""Image folders: layouts, conversions, bad files, sizes, and the shared CIFAR-10 JPEG tree."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import DatasetError, load_dataset
from cnnlab.data.archive import UnsafeArchiveError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def save(path: Path, mode="RGB", size=(6, 5), color=(200, 10, 10), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode != "L" else color[0]).save(path, format=fmt)
    return path


def make_tree(root: Path, split=True, per_class=3):
    for cls in ("cat", "dog"):
        for part in (("train", "test") if split else ("",)):
            for i in range(per_class):
                save(root / part / cls / f"{cls}{i}.png")
    return root


def test_train_test_tree(tmp_path):
    data = load_dataset(make_tree(tmp_path / "pets"), cache=tmp_path / "c")
    assert data.class_names == ["cat", "dog"]
    assert data.x_train.shape == (6, 5, 6, 3) and data.x_test.shape == (6, 5, 6, 3)
    assert data.x_train.dtype == np.uint8 and tuple(data.x_train[0, 0, 0]) == (200, 10, 10)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1]


def test_single_tree_is_split_stratified(tmp_path):
    data = load_dataset(make_tree(tmp_path / "pets", split=False, per_class=10), cache=tmp_path / "c")
    assert np.bincount(data.y_test).tolist() == [2, 2] and np.bincount(data.y_train).tolist() == [8, 8]
    assert any("held out a stratified 20%" in note for note in data.notes)


def test_modes_are_converted_and_reported(tmp_path):
    root = make_tree(tmp_path / "pets")
    save(root / "train" / "cat" / "gray.png", mode="L")
    save(root / "train" / "cat" / "alpha.png", mode="RGBA", color=(1, 2, 3, 4))
    Image.new("P", (6, 5)).save(root / "train" / "dog" / "pal.png")
    save(root / "test" / "dog" / "plain.bmp")
    save(root / "test" / "dog" / "plain.webp")
    data = load_dataset(root, cache=tmp_path / "c")
    notes = " ".join(data.notes)
    assert data.x_test.shape[0] == 8  # BMP and WebP read too
    assert "converted 1 images (L -> RGB)" in notes and "RGBA -> RGB" in notes and "P -> RGB" in notes
    gray = load_dataset(root, cache=tmp_path / "c", channels=1)
    assert gray.x_train.shape[-1] == 1 and "RGB -> L" in " ".join(gray.notes)


@pytest.mark.parametrize("content,why", [
    (b"", "empty file"),
    (b"this is not an image", "not a readable image"),
    ("truncated", "not a readable image"),
])
def test_bad_files_are_named_or_skipped(tmp_path, content, why):
    root = make_tree(tmp_path / "pets")
    if content == "truncated":
        buffer = io.BytesIO()
        Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, format="JPEG")
        content = buffer.getvalue()[:300]
    bad = root / "train" / "dog" / "bad.jpg"
    bad.write_bytes(content)
    with pytest.raises(DatasetError) as caught:
        load_dataset(root, cache=tmp_path / "c")
    assert str(bad) in str(caught.value) and why in str(caught.value)
    assert " at 0x" not in str(caught.value)  # no object reprs (Pillow's text names a BytesIO object)
    data = load_dataset(root, cache=tmp_path / "c", skip_bad=True)
    assert len(data.y_train) == 6 and any("skipped 1 unreadable files" in n for n in data.notes)


def test_different_sizes_listed_unless_resized(tmp_path):
    root = make_tree(tmp_path / "pets")
    save(root / "test" / "dog" / "big.png", size=(9, 7))
    with pytest.raises(DatasetError, match=r"2 different sizes \(6x5: .*; 9x7: test/dog/big.png\)"):
        load_dataset(root, cache=tmp_path / "c")
    data = load_dataset(root, cache=tmp_path / "c", size=(4, 4))
    assert data.x_test.shape == (7, 4, 4, 3)


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_tree(tmp_path / "pets")
    (root / "train" / "bird").mkdir()
    with pytest.raises(DatasetError, match="class folder 'bird' has no images"):
        load_dataset(root, cache=tmp_path / "c")


def test_folder_wrapping_the_tree(tmp_path):
    make_tree(tmp_path / "outer" / "pets")
    data = load_dataset(tmp_path / "outer", cache=tmp_path / "c")
    assert data.class_names == ["cat", "dog"] and data.x_train.shape[0] == 6
    (tmp_path / "outer" / "pets" / "train" / "bird").mkdir()
    with pytest.raises(DatasetError, match="class folder 'bird' has no images"):
        load_dataset(tmp_path / "outer", cache=tmp_path / "c")


def test_folder_without_classes_is_an_error(tmp_path):
    root = tmp_path / "flat"
    save(root / "a.png")
    with pytest.raises(DatasetError, match="'a.png' is not in a class folder"):
        load_dataset(root, cache=tmp_path / "c")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no class folders with images found"):
        load_dataset(empty, cache=tmp_path / "c")


def test_zip_of_a_tree_with_wrapping_folder(tmp_path):
    root = make_tree(tmp_path / "pets")
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*.png")):
            zf.write(path, f"pets/{path.relative_to(root)}")
    data = load_dataset(archive, cache=tmp_path / "c")
    assert data.x_train.shape == (6, 5, 6, 3) and data.class_names == ["cat", "dog"]


def test_zip_with_escaping_member_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.png", b"x")
    with pytest.raises(UnsafeArchiveError, match="outside the target"):
        load_dataset(archive, cache=tmp_path / "c")
    assert not (tmp_path / "outside.png").exists()


def test_numeric_names_give_numeric_order(tmp_path):
    root = tmp_path / "nums"
    for index, cls in [(2, "a"), (0, "b"), (1, "a")]:
        save(root / "train" / cls / f"{index:05d}.png")
        save(root / "test" / cls / f"{index:05d}.png")
    data = load_dataset(root, cache=tmp_path / "c")
    assert data.y_train.tolist() == [1, 0, 0]  # files 0 (b), 1 (a), 2 (a)


@pytest.mark.shared_data
def test_shared_cifar10_jpeg_tree(tmp_path):
    if not SHARED.exists():
        pytest.skip(f"shared dataset absent: {SHARED}")
    data = load_dataset(SHARED)  # the session's cache: the benchmark's smoke test reuses it
    assert data.x_train.shape == (50_000, 32, 32, 3) and data.x_test.shape == (10_000, 32, 32, 3)
    assert data.class_names[0] == "airplane" and data.class_names[-1] == "truck"
    assert np.bincount(data.y_train).tolist() == [5000] * 10
    # Numeric file names restore the official order: data_batch_1 and test_batch start so.
    assert data.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert data.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
