"""Hostile bytes inside the formats cnnlab reads and writes, found by a red team after issue 32's fixes:
zip bombs in checkpoints and caches, JSON nested past Python's parser, CSV cells past the csv module's
limit, an address-space limit, a user's files at save_weights and CSVLogger targets, file-name templates
that format gigabytes, non-finite exports and model files of another format version."""

import io
import json
import subprocess
import sys
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save

import cnnlab
from cnnlab import callbacks as cb
from cnnlab.cli.main import main
from cnnlab.data.cache import load_arrays
from cnnlab.engine.checkpoint import read_checkpoint
from cnnlab.engine.config import ConfigError
from cnnlab.engine.restore import CheckpointError
from cnnlab.errors import CnnlabError
from cnnlab.export.network import ExportError, check_agreement
from cnnlab.files import WriteError
from cnnlab.runs.directory import RunError, read_json, read_metrics
from cnnlab.runs.model_file import FORMAT, ModelFileError

from fixtures import assert_error_line

DEEP = "[" * 100_000 + "]" * 100_000  # past Python's JSON parser's recursion limit


def deflated_zip(path, member_bytes: int) -> None:
    """A zip whose one member inflates to ``member_bytes`` zeros: a few KB on disk."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data/0", b"\0" * member_bytes)


def test_a_compressed_checkpoint_is_refused_before_anything_inflates(tmp_path):
    path = tmp_path / "checkpoint.pt"
    deflated_zip(path, 50 * 2**20)
    assert path.stat().st_size < 200_000
    with pytest.raises(CheckpointError, match="compressed"):
        read_checkpoint(path)


def test_a_real_checkpoint_is_stored_uncompressed(tmp_path):
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(1000)}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        assert {m.compress_type for m in archive.infolist()} == {zipfile.ZIP_STORED}


def test_a_compressed_cache_is_a_rebuild_and_never_inflates(tmp_path):
    path = tmp_path / "cache.npz"
    np.savez_compressed(path, x_train=np.zeros((200, 1024, 256), np.uint8))  # 50 MB of zeros in a few KB
    tracemalloc.start()
    try:
        assert load_arrays(path, required=("x_train",)) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20 and not path.exists()  # rebuilt, as a damaged cache is


def test_deeply_nested_json_is_one_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text(DEEP)
    with pytest.raises(RunError, match="nested too deeply"):
        read_json(tmp_path / "config.json")
    path = tmp_path / "deep.cnnlab"
    metadata = {"format": FORMAT, "spec": DEEP, "class_names": "null"}
    path.write_bytes(save({"w": torch.zeros(2)}, metadata=metadata))
    with pytest.raises(ModelFileError, match="nested too deeply"):
        cnnlab.load_model(path)
    assert main(["export", str(path), "--to", "pytorch", "-o", str(tmp_path / "out.py")]) != 0
    assert_error_line(capsys.readouterr().err, "deep.cnnlab")


def test_a_cell_past_the_csv_field_limit_is_a_damaged_record(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy,time,train_time,"
                                          "images_per_second,lr\n1," + "9" * 200_000 + ",0,0,0,0,0,0,0\n")
    with pytest.raises(RunError, match="metrics.csv: damaged"):
        read_metrics(tmp_path)


def test_the_memory_check_sees_an_address_space_limit():
    script = ("import resource; from cnnlab.engine.memory import available_ram\n"
              "resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, resource.RLIM_INFINITY))\n"
              "room = available_ram(); print(room.bytes, room.source)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    room, source = done.stdout.split(" ", 1)
    assert int(room) < 6 * 2**30 and "ulimit -v" in source


@pytest.fixture(scope="module")
def digits():
    return cnnlab.load_data("digits")


@pytest.fixture
def trained(digits):
    model = cnnlab.Model("mlp")
    model.fit(digits.x_train[:64], digits.y_train[:64], epochs=1, verbose=0, validation_split=0)
    return model


def test_save_weights_never_replaces_a_users_file(tmp_path, trained):
    precious = tmp_path / "user.txt"
    precious.write_text("precious")
    with pytest.raises(ModelFileError, match="not a weights file cnnlab wrote"):
        trained.save_weights(precious)
    assert precious.read_text() == "precious"
    trained.save_weights(tmp_path / "w.safetensors")
    trained.save_weights(tmp_path / "w.safetensors")  # its own weights file: replaced


def test_csv_logger_never_replaces_a_users_file(tmp_path, trained, digits):
    precious = tmp_path / "user.txt"
    precious.write_text("precious")
    with pytest.raises(WriteError, match="not a CSV log"):
        trained.fit(digits.x_train[:64], digits.y_train[:64], epochs=1, verbose=0, callbacks=[cb.CSVLogger(precious)])
    assert precious.read_text() == "precious"
    log = tmp_path / "log.csv"
    for _ in range(2):  # a notebook cell run twice: its own log is written again
        trained.fit(digits.x_train[:64], digits.y_train[:64], epochs=1, verbose=0, callbacks=[cb.CSVLogger(log)])
    assert log.read_text().startswith("epoch,")


@pytest.mark.parametrize("separator", ["", ";;", "\n", 3])
def test_a_csv_separator_is_checked_before_training(separator):
    with pytest.raises(ConfigError, match="separator"):
        cb.CSVLogger("log.csv", separator=separator)


@pytest.mark.parametrize("filepath", ["ck-{epoch:>3000000000}.cnnlab", "ck-{loss:.99999999f}.cnnlab",
                                      b"ck.cnnlab"])
def test_a_checkpoint_name_template_cannot_ask_for_gigabytes(filepath):
    with pytest.raises(ConfigError, match="ModelCheckpoint: filepath"):
        cb.ModelCheckpoint(filepath)


def test_non_finite_export_probabilities_are_one_error_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ExportError, match="not finite"):
            check_agreement("pytorch", np.full((2, 3), np.nan, np.float32), np.full((2, 3), np.nan), 1e-5)


def test_a_model_file_of_another_format_version_says_so(tmp_path, capsys):
    path = tmp_path / "future.cnnlab"
    metadata = {"format": "cnnlab-model/2", "spec": json.dumps({"input": [4], "layers": []})}
    path.write_bytes(save({"w": torch.zeros(2)}, metadata=metadata))
    with pytest.raises(ModelFileError, match="format 'cnnlab-model/2'"):
        cnnlab.load_model(path)
    assert main(["export", str(path), "--to", "pytorch", "-o", str(tmp_path / "out.py")]) != 0
    assert_error_line(capsys.readouterr().err, "cnnlab-model/2")


def test_class_names_must_match_the_outputs(tmp_path, trained):
    path = trained.save(tmp_path / "m.cnnlab")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
        metadata = {**handle.metadata(), "class_names": json.dumps(["a", "b", "c"])}
    path.write_bytes(save(tensors, metadata=metadata))
    with pytest.raises(CnnlabError, match="3 class names for the network's 10 outputs"):
        cnnlab.load_model(path)


def test_a_folder_resized_past_the_dataset_cap_is_refused_before_decoding(tmp_path, capsys):
    from fixtures import image_folder

    folder = image_folder(tmp_path / "ds", per_class=20)  # 40 files of 8x8: 5.9 GB at 7000x7000
    assert main(["data", "info", str(folder), "--size", "7000x7000"]) != 0
    assert_error_line(capsys.readouterr().err, "would take", "--size")


def test_a_model_file_given_for_a_run_says_what_takes_it(tmp_path, trained, capsys):
    path = trained.save(tmp_path / "m.cnnlab")
    assert main(["evaluate", str(path)]) != 0
    assert_error_line(capsys.readouterr().err, "a file, not a folder", "cnnlab.load_model")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="FIFOs need a POSIX system")
def test_a_fifo_planted_in_the_cache_says_the_way_out(tmp_path, monkeypatch):
    import os

    from cnnlab.data.dataset import DatasetError

    path = tmp_path / "cache.npz"
    os.mkfifo(path)
    with pytest.raises(DatasetError, match=r"remove it, or use another cache folder \(--cache-dir"):
        load_arrays(path)
    assert path.exists()  # left as it is
