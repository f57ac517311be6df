"""The image-folder cache is keyed and verified by content, and a cache truncated under a training is one
error line: never stale pixels, never damaged ones, never a bare SIGBUS."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.data import load_dataset
from cnnlab.data.mapped import IMAGES_SUFFIX, META_SUFFIX

from fixtures import assert_error_line

RED, GREEN, BLUE = (200, 10, 10), (10, 200, 10), (10, 10, 200)


def bmp_folder(root: Path) -> Path:
    """``train/`` and ``test/`` of two classes, BMPs of one size: a BMP's size depends on its shape only."""
    for part in ("train", "test"):
        for cls, color in (("cat", RED), ("dog", GREEN)):
            (root / part / cls).mkdir(parents=True, exist_ok=True)
            for index in range(3):
                Image.new("RGB", (6, 5), color).save(root / part / cls / f"{index}.bmp")
    return root


def rewrite_keeping_size_and_date(path: Path, color) -> None:
    """What ``cp -p``, ``rsync -t`` or a restored backup leave: new bytes, the old size and mtime."""
    before = path.stat()
    Image.new("RGB", (6, 5), color).save(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def cache_files(cache: Path) -> tuple[Path, Path]:
    [images] = (cache / "folders").glob(f"*{IMAGES_SUFFIX}")
    return images, images.with_name(images.name[:-len(IMAGES_SUFFIX)] + META_SUFFIX)


def test_an_image_rewritten_with_the_same_size_and_date_gives_its_new_pixels(tmp_path):
    root = bmp_folder(tmp_path / "pets")
    first = load_dataset(root, cache=tmp_path / "c")
    assert tuple(first.x_train[0, 0, 0]) == RED
    rewrite_keeping_size_and_date(root / "train" / "cat" / "0.bmp", BLUE)
    again = load_dataset(root, cache=tmp_path / "c")
    assert tuple(again.x_train[0, 0, 0]) == BLUE and tuple(again.x_train[1, 0, 0]) == RED
    assert again.identity["sha256"] != first.identity["sha256"]
    assert again.identity["verified"] == "sha256 of the folder's names and image files"


def test_a_run_refuses_a_folder_rewritten_with_the_same_size_and_date(tmp_path, capsys):
    root = bmp_folder(tmp_path / "pets")
    run = tmp_path / "runs" / "r"
    assert main(["train", "mlp", "--dataset", str(root), "--cache-dir", str(tmp_path / "c"), "--epochs", "1",
                 "--batch-size", "4", "--quiet", "--out", str(run.parent), "--name", "r"]) == 0
    assert main(["evaluate", str(run)]) == 0
    capsys.readouterr()
    rewrite_keeping_size_and_date(root / "test" / "dog" / "2.bmp", BLUE)
    for command in (["evaluate", str(run)], ["train", "--resume", str(run)]):
        assert main(command) == 2
        assert_error_line(capsys.readouterr().err, "is not the dataset this run was trained on",
                          "the images and labels differ")


@pytest.mark.parametrize("where", ["pixels", "header"])
def test_a_cache_damaged_in_place_is_found_and_rebuilt(tmp_path, where):
    root = bmp_folder(tmp_path / "pets")
    expected = np.array(load_dataset(root, cache=tmp_path / "c").x_train)
    images, meta = cache_files(tmp_path / "c")
    before, size, written = images.stat(), images.stat().st_size, images.read_bytes()
    with open(images, "r+b") as handle:  # same size, same date: only the bytes say it
        handle.seek(size - 7 if where == "pixels" else 20)
        handle.write(b"\x00\xff\x00" if where == "pixels" else b"(  ")
    os.utime(images, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = load_dataset(root, cache=tmp_path / "c")  # the same process: checked again, the file changed
    assert np.array_equal(again.x_train, expected) and np.array_equal(again.x_test[-1, -1, -1], GREEN)
    assert images.read_bytes() == written and meta.exists()  # written again, as a whole


def test_a_damaged_cache_is_found_on_its_first_use_in_a_new_process(tmp_path):
    root = bmp_folder(tmp_path / "pets")
    load_dataset(root, cache=tmp_path / "c")
    images, _ = cache_files(tmp_path / "c")
    written = images.read_bytes()
    with open(images, "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        handle.write(b"\x01")
    check = (f"from cnnlab.data import load_dataset; d = load_dataset({str(root)!r}, cache={str(tmp_path / 'c')!r});"
             "print(tuple(int(v) for v in d.x_test[-1, -1, -1]))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == str(GREEN), done.stderr
    assert images.read_bytes() == written


def test_a_folder_changed_while_it_is_converted_is_not_cached_under_its_old_key(tmp_path, monkeypatch):
    from cnnlab.data import folders

    root = bmp_folder(tmp_path / "pets")
    convert = folders._convert

    def convert_while_an_image_is_rewritten(*args, **kwargs):
        converted = convert(*args, **kwargs)
        rewrite_keeping_size_and_date(root / "train" / "dog" / "1.bmp", BLUE)
        return converted

    monkeypatch.setattr(folders, "_convert", convert_while_an_image_is_rewritten)
    with pytest.raises(folders.DatasetError, match="files changed while they were being converted; load it again"):
        load_dataset(root, cache=tmp_path / "c")
    assert not (tmp_path / "c" / "folders").exists() or not list((tmp_path / "c" / "folders").iterdir())
    monkeypatch.undo()
    assert tuple(load_dataset(root, cache=tmp_path / "c").x_train[4, 0, 0]) == BLUE


# A training that truncates its own cache after its first epoch: the second epoch reads the map past its end.
TRUNCATED_UNDER_TRAINING = """
import os, sys
from pathlib import Path
import cnnlab
from cnnlab.callbacks import Callback

data = cnnlab.load_data(sys.argv[1], cache=sys.argv[2])
[images] = Path(sys.argv[2], "folders").glob("*.npy")

class Truncate(Callback):
    def on_epoch_end(self, epoch, logs=None):
        os.truncate(images, 0)  # (a map reads zeros past the end within the last page: none is left)

cnnlab.Model("mlp", device="cpu").fit(data.x_train, data.y_train, epochs=3, batch_size=2, verbose=0,
                                      validation_split=0, callbacks=[Truncate()])
print("trained from a truncated cache")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cnnlab's SIGBUS handler is Linux's")
def test_a_cache_truncated_while_a_training_maps_it_is_one_error_line(tmp_path):
    root = bmp_folder(tmp_path / "pets")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONFAULTHANDLER"}
    script = [sys.executable, "-c", textwrap.dedent(TRUNCATED_UNDER_TRAINING), str(root), str(tmp_path / "c")]
    done = subprocess.run(script, capture_output=True, text=True, env=env)
    images, _ = cache_files(tmp_path / "c")
    assert done.returncode == 2 and "trained from" not in done.stdout, done.stderr
    assert_error_line(done.stderr, str(images.resolve()), "the image cache shrank while it was being read")
    # Someone else's SIGBUS handler (here Python's faulthandler) is left in place.
    done = subprocess.run([sys.executable, "-X", "faulthandler", *script[1:]], capture_output=True, text=True,
                          env=env)
    assert done.returncode == -signal.SIGBUS and "Bus error" in done.stderr and "cnnlab: error" not in done.stderr
    again = load_dataset(root, cache=tmp_path / "c")  # the next load rebuilds it
    assert tuple(again.x_train[0, 0, 0]) == RED
