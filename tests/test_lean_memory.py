"""Lean memory: uint8 pixels converted batch by batch, memory-mapped image caches, the fit memory check."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.data import load_dataset, to_float
from cnnlab.data.mapped import IMAGES_SUFFIX, META_SUFFIX, MappedPages, load_image_cache, save_arrays_as_image_cache
from cnnlab.engine import memory
from cnnlab.engine.batches import MappedImages, _pixel_values, image_batches, to_network_input
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.evaluation import evaluation_sums
from cnnlab.engine.session import prepare
from cnnlab.errors import CnnlabError

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def bits(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float32).view(np.uint32)


def digits_cache(tmp_path: Path):
    data = load_dataset("digits")
    arrays = {"x_train": data.x_train, "x_test": data.x_test, "y_train": data.y_train, "y_test": data.y_test,
              "class_names": np.array(data.class_names), "notes": np.array(["note"])}
    save_arrays_as_image_cache(tmp_path / "digits", arrays)
    return data, tmp_path / "digits"


def test_batches_get_exactly_the_float32_division_of_numpy():
    pixels = np.random.default_rng(0).integers(0, 256, (40, 5, 6, 3), dtype=np.uint8)
    pixels[0].flat[:256] = np.arange(256)  # every value once
    batch = to_network_input(torch.from_numpy(pixels))
    assert batch.shape == (40, 3, 5, 6) and batch.is_contiguous(memory_format=torch.channels_last)
    assert np.array_equal(bits(batch.permute(0, 2, 3, 1)), bits(to_float(pixels)))
    # The table other devices look values up in holds the same floats, not a reciprocal's.
    assert np.array_equal(bits(_pixel_values(CPU)), bits(to_float(np.arange(256, dtype=np.uint8))))


def test_uint8_stays_uint8_shared_and_floats_stay_float():
    pixels = np.random.default_rng(1).integers(0, 256, (30, 4, 4, 1), dtype=np.uint8)
    config = TrainConfig(device="cpu", val_split=0.2, batch_size=8)
    _, data, split = prepare(torch.nn.Linear(1, 1), pixels, np.arange(30) % 3, config)
    assert data.x_train.pixels.dtype == torch.uint8  # a quarter of float32's memory
    assert np.shares_memory(data.x_train.pixels.numpy(), pixels)  # neither the split nor the device copies
    assert np.array_equal(data.x_val.slice(0, 6).permute(0, 2, 3, 1).numpy(), to_float(pixels[split.val_idx]))
    floats = image_batches(to_float(pixels).astype(np.float64), CPU)
    assert floats.pixels.dtype == torch.float32 and floats.take(torch.tensor([2])).dtype == torch.float32


def test_uint8_and_float_inputs_train_identically():
    data = cnnlab.load_data("digits")
    runs = [cnnlab.Model("mlp", device="cpu", seed=0).fit(x, data.y_train, epochs=1, verbose=0).history
            for x in (data.x_train, to_float(data.x_train))]
    assert runs[0] == runs[1]


def test_a_mapped_cache_trains_as_the_arrays_in_memory(tmp_path):
    data, stem = digits_cache(tmp_path)
    arrays = load_image_cache(stem)
    assert isinstance(arrays["x_train"], np.memmap) and np.array_equal(arrays["x_train"], data.x_train)
    _, tensors, _ = prepare(torch.nn.Linear(1, 1), arrays["x_train"], data.y_train, TrainConfig(device="cpu"))
    assert isinstance(tensors.x_train, MappedImages) and isinstance(tensors.x_val, MappedImages)
    runs = [cnnlab.Model("mlp", device="cpu", seed=0).fit(x, data.y_train, epochs=1, verbose=0).history
            for x in (data.x_train, arrays["x_train"])]
    assert runs[0] == runs[1]


def test_content_hash_of_a_mapped_dataset_equals_the_in_memory_one(tmp_path):
    data, stem = digits_cache(tmp_path)
    arrays = load_image_cache(stem)
    mapped = cnnlab.data.Dataset("digits", data.class_names, arrays["x_train"], arrays["y_train"],
                                 arrays["x_test"], arrays["y_test"])
    assert mapped.content_sha256() == data.content_sha256()


@pytest.mark.parametrize("damage", ["truncate", "shape", "no meta", "garbage meta"])
def test_a_damaged_cache_is_refused_and_removed(tmp_path, damage):
    _, stem = digits_cache(tmp_path)
    images, meta = stem.with_name(stem.name + IMAGES_SUFFIX), stem.with_name(stem.name + META_SUFFIX)
    if damage == "truncate":
        os.truncate(images, images.stat().st_size - 64)
    elif damage == "shape":  # same size, another shape: the header says otherwise than the meta
        np.save(images, np.zeros((images.stat().st_size - 128,), np.uint8))
    elif damage == "no meta":
        meta.unlink()
    else:
        meta.write_bytes(b"not a zip")
    assert load_image_cache(stem) is None
    assert not images.exists() and not meta.exists()


def test_an_image_folder_is_cached_mapped_and_rebuilt_when_truncated(tmp_path):
    for part in ("train", "test"):
        for cls, color in (("cat", (200, 10, 10)), ("dog", (10, 200, 10))):
            for i in range(3):
                (tmp_path / "pets" / part / cls).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (6, 5), color).save(tmp_path / "pets" / part / cls / f"{i}.png")
    first = load_dataset(tmp_path / "pets", cache=tmp_path / "c")
    assert isinstance(first.x_train, np.memmap) and tuple(first.x_train[0, 0, 0]) == (200, 10, 10)
    expected, size = np.array(first.x_train), None
    del first  # its map reads the file truncated below
    [images] = (tmp_path / "c" / "folders").glob(f"*{IMAGES_SUFFIX}")
    size = images.stat().st_size
    os.truncate(images, 200)
    again = load_dataset(tmp_path / "pets", cache=tmp_path / "c")
    assert np.array_equal(again.x_train, expected) and images.stat().st_size == size


def test_a_link_at_the_cache_path_is_never_written_through(tmp_path):
    _, stem = digits_cache(tmp_path)
    images = stem.with_name(stem.name + IMAGES_SUFFIX)
    outside = tmp_path / "precious"
    outside.write_bytes(b"keep me")
    images.unlink()
    images.symlink_to(outside)
    assert load_image_cache(stem) is None
    with pytest.raises(CnnlabError, match="digits.npy"):
        save_arrays_as_image_cache(stem, {"x_train": np.zeros((2, 1, 1, 1), np.uint8), "x_test": np.zeros(
            (0, 1, 1, 1), np.uint8), "y_train": np.zeros(2, np.int64), "y_test": np.zeros(0, np.int64),
            "class_names": np.array(["a", "b"]), "notes": np.array([], dtype=str)})
    assert outside.read_bytes() == b"keep me" and images.is_symlink()


def rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.parametrize("released", [True, False])
def test_pages_read_through_the_map_are_handed_back(tmp_path, released):
    size = 48 * 2**20
    np.save(tmp_path / "big.npy", np.ones((size // 3072, 32, 32, 3), np.uint8))
    pixels = np.load(tmp_path / "big.npy", mmap_mode="r")
    every = 4 * 2**20 if released else 2**40
    source = MappedImages(pixels, CPU, pages=MappedPages(pixels, every=every))
    before = rss_file_kib()
    for start in range(0, len(source), 512):
        source.slice(start, start + 512)
    grown = (rss_file_kib() - before) * 1024
    assert grown < 16 * 2**20 if released else grown > 32 * 2**20


def test_evaluation_in_chunks_sums_as_one_forward_pass():
    model = cnnlab.Model("cnn", device="cpu")
    model.build((32, 32, 3), 10)
    module = model.module.to(memory_format=torch.channels_last).eval()
    assert memory.evaluation_chunk(module.info, 1024) < 300  # the CNN's 1024 images are forwarded in parts
    pixels = np.random.default_rng(2).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    labels = torch.from_numpy(np.random.default_rng(3).integers(0, 10, 300))
    loss_sum, correct = evaluation_sums(module, image_batches(pixels, CPU), labels, batch_size=300)
    with torch.no_grad():
        logits = module(to_network_input(torch.from_numpy(pixels))).float()
    expected = torch.nn.functional.cross_entropy(logits, labels, reduction="sum").double()
    assert float(loss_sum) == float(expected) and int(correct) == int((logits.argmax(1) == labels).sum())


def test_fit_refuses_a_network_that_cannot_fit_before_building_it(monkeypatch):
    monkeypatch.setattr(memory, "available", lambda device: memory.Available(10**6, "a test's 1 MB"))
    model = cnnlab.Model("cnn", device="cpu")
    pixels = np.zeros((20, 8, 8, 1), np.uint8)
    with pytest.raises(memory.MemoryCheckError, match="training 'cnn' with batch size 32 needs about .* 1.0 MB"):
        model.fit(pixels, np.arange(20) % 2, epochs=1, verbose=0)
    assert model.module is None


def test_fit_counts_uint8_pixels_at_one_byte_and_mapped_ones_at_none(tmp_path):
    data, stem = digits_cache(tmp_path)
    assert memory.stored_bytes(data.x_train) == 1 and memory.stored_bytes(to_float(data.x_train)) == 4
    assert memory.stored_bytes(load_image_cache(stem)["x_train"]) == 0
    labels = cnnlab.engine.inputs.check_labels(data.y_train, len(data.y_train))
    needed = memory.check_fit_memory(cnnlab.Model("mlp").spec, None, data.x_train, labels, TrainConfig(device="cpu"))
    assert needed.data == len(data.y_train) * 64


def test_memory_benchmark_quick_mode_runs(tmp_path):
    out = tmp_path / "memory.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory.py"), "--quick", "--threads", "1",
                             "--workdir", str(tmp_path), "--json", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [r["name"] for r in report["rows"]] == ["cifar10-uint8", "cifar10-float32", "large-uint8"]
    assert all(r["peak_rss_bytes"] > 50e6 and r["train_seconds"] > 0 for r in report["records"])
    assert report["time_ratio_uint8_over_float32"] > 0 and "peak RSS" in result.stdout


def test_a_shuffled_batch_of_scattered_rows_is_released_within_the_batch(tmp_path):
    """A fault may map a whole 2 MiB folio per scattered row (Linux 6.18): 32 rows of 12 KiB must
    count as enough to release, or a 2.4 GB cache ends up resident between releases."""
    from cnnlab.data.mapped import MappedPages

    array = np.lib.format.open_memmap(tmp_path / "rows.npy", mode="w+", dtype=np.uint8, shape=(64, 64, 64, 3))
    pages = MappedPages(np.load(tmp_path / "rows.npy", mmap_mode="r"))
    pages.read(32, array[:1].nbytes)
    assert pages.since == 0  # released
    pages.read(32, array[:1].nbytes, contiguous=True)  # one contiguous run: a few faults, no release yet
    assert 0 < pages.since < 64 * 2**20
