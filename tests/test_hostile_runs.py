"""Hostile and broken input to runs and comparisons: nothing lost, nothing outside, no traceback."""

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from cnnlab import files, runs
from cnnlab.cli.main import main
from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.steps import NonFiniteLossError
from cnnlab.files import WriteError
from cnnlab.runs.directory import read_metrics

from fixtures import assert_error_line, image_folder

FAST = ["--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--quiet"]
TINY = "layers:\n  - {kind: flatten}\n  - {kind: dense, units: 10, activation: softmax}\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run on digits; tests work on copies of it."""
    out = tmp_path_factory.mktemp("finished")
    assert main(["train", "mlp", *FAST, "--out", str(out), "--name", "run"]) == 0
    return out / "run"


@pytest.fixture
def run(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / "run", symlinks=True))


def test_evaluate_never_writes_through_a_planted_link(run, tmp_path, capsys):
    victim = tmp_path / "victim.csv"
    victim.write_text("the user's file")
    (run / "confusion_test.csv").symlink_to(victim)
    assert main(["evaluate", str(run)]) == 2
    assert_error_line(capsys.readouterr().err, "confusion_test.csv: is a symbolic link")
    assert victim.read_text() == "the user's file"


def test_compare_never_adopts_or_empties_a_folder_it_did_not_make(tmp_path, capsys):
    users = tmp_path / "X" / "runs" / "mlp-seed0"
    users.mkdir(parents=True)
    (users / "important.txt").write_text("mine")
    assert main(["compare", "mlp", "cnn", *FAST, "--out", str(tmp_path), "--name", "X"]) == 2
    assert_error_line(capsys.readouterr().err, "is not a comparison cnnlab made")
    assert (users / "important.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["X", "important.txt", "mlp-seed0", "runs"]


def test_compare_identifies_models_by_spec_content(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "net.yaml", tmp_path / "b" / "net.yaml"
    first.write_text(TINY)
    second.write_text(TINY)
    args = ["compare", str(first), str(second), *FAST, "--out", str(tmp_path / "out"), "--name", "c"]
    assert main(args) == 2
    assert_error_line(capsys.readouterr().err, "the same spec twice")
    assert not (tmp_path / "out" / "c").exists()  # refused before anything was made
    second.write_text(TINY.replace("flatten}", "flatten}\n  - {kind: dense, units: 16, activation: relu}"))
    assert main(args) == 0  # two files of one name, two networks
    record = json.loads((tmp_path / "out" / "c" / "comparison.json").read_text())
    assert record["models"][0]["spec_sha256"] != record["models"][1]["spec_sha256"]
    first.write_text(TINY.replace("softmax", "linear"))  # an edited spec is a new run, not the old result
    assert main(args) == 0
    edited = json.loads((tmp_path / "out" / "c" / "comparison.json").read_text())["models"]
    assert [m["runs"][0]["status"] for m in edited] == ["trained", "reused"]
    assert edited[0]["spec_sha256"] != record["models"][0]["spec_sha256"]
    assert len(list((tmp_path / "out" / "c" / "runs").iterdir())) == 3  # the old run is kept
    # A link planted where the report's figures go: refused, and nothing is written through it.
    shutil.rmtree(tmp_path / "out" / "c" / "figures")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "c" / "figures").symlink_to(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(args) == 2
    assert_error_line(capsys.readouterr().err, "figures: is a symbolic link")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_relative_dataset_is_stored_absolute_and_a_changed_one_refused(tmp_path, monkeypatch, capsys):
    image_folder(tmp_path / "one" / "data")
    image_folder(tmp_path / "two" / "data", classes=("a", "b", "c"), seed=1)
    monkeypatch.chdir(tmp_path / "one")
    assert main(["train", "mlp", "--dataset", "data", "--epochs", "1", "--batch-size", "4", "--quiet",
                 "--out", str(tmp_path / "runs"), "--name", "r"]) == 0
    config = json.loads((tmp_path / "runs" / "r" / "config.json").read_text())
    assert config["dataset"] == str(tmp_path / "one" / "data")
    assert config["dataset_identity"]["classes"] == ["cat", "dog"]
    monkeypatch.chdir(tmp_path / "two")  # another directory with another 'data'
    assert main(["evaluate", str(tmp_path / "runs" / "r")]) == 0
    assert "test: 4 images" in capsys.readouterr().out
    shutil.copytree(tmp_path / "one" / "data", tmp_path / "copy")  # the same bytes, new files and dates
    shutil.rmtree(tmp_path / "one" / "data")
    (tmp_path / "copy").rename(tmp_path / "one" / "data")
    os.utime(next((tmp_path / "one" / "data").rglob("*.png")), (1, 1))
    assert main(["evaluate", str(tmp_path / "runs" / "r")]) == 0, capsys.readouterr().err
    image_folder(tmp_path / "one" / "data", classes=("eel",))
    for command in (["evaluate", str(tmp_path / "runs" / "r")], ["train", "--resume", str(tmp_path / "runs" / "r")]):
        assert main(command) == 2
        assert_error_line(capsys.readouterr().err, "is not the dataset this run was trained on",
                          "classes 3 ['cat', 'dog', 'eel'] (the run's: 2 ['cat', 'dog'])")


def test_a_run_killed_in_its_first_epoch_restarts_on_resume(run, capsys):
    # What a kill during epoch 1 leaves: the records written before training, no checkpoint.
    for name in ("checkpoint.pt", "model.safetensors", "metrics.csv", "history.json"):
        (run / name).unlink()
    (run / "notes.txt").write_text("the user's")
    assert main(["train", "mlp", *FAST, "--out", str(run.parent), "--name", "run"]) == 2
    assert_error_line(capsys.readouterr().err, f"continue it with --resume {run}")
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert [row["epoch"] for row in read_metrics(run)] == [1] and (run / "model.safetensors").exists()
    assert (run / "notes.txt").read_text() == "the user's"


def test_an_interrupted_first_epoch_leaves_no_folder_to_block_the_next_attempt(tmp_path):
    class Interrupt(TrainingCallback):
        def on_progress(self, *args): raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.train("mlp", "digits", TrainConfig(epochs=1), out=tmp_path, name="r", callback=Interrupt())
    assert list(tmp_path.iterdir()) == []
    runs.train("mlp", "digits", TrainConfig(epochs=1, batch_size=64), out=tmp_path, name="r")


def test_nan_in_the_first_epoch_claims_no_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError) as caught:
        runs.train("mlp", "digits", TrainConfig(epochs=1, optimizer="sgd", lr=1e30), out=tmp_path, name="n")
    assert "no epoch had finished, so no checkpoint was kept" in str(caught.value)
    assert "checkpoint is kept" not in str(caught.value) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags,message", [
    (["--seed", "-1"], "seed must be an integer from 0 to 2**63 - 1, got -1"),
    (["--seed", str(2**70)], "seed must be an integer from 0 to 2**63 - 1"),
    (["--optimizer", "sgd", "--momentum", "-1"], "momentum must be in [0, 1]"),
    (["--optimizer", "sgd", "--nesterov"], "nesterov needs a momentum above 0"),
    (["--momentum", "0.9"], "momentum and nesterov apply to the sgd and muon optimizers, not adam"),
    (["--lr", "inf"], "lr must be a positive number"),
    (["--name", "../escape"], "--name must be a plain folder name"),
    (["--val-split", "0", "--early-stopping", "val_loss"], "early stopping on val_loss needs validation data"),
    (["--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
    (["--optimizer", "bogus"], "argument --optimizer: invalid choice: 'bogus'"),
])
def test_bad_options_are_refused_before_anything_is_made(tmp_path, capsys, flags, message):
    assert main(["train", "mlp", *FAST, "--out", str(tmp_path / "out"), *flags]) == 2
    assert_error_line(capsys.readouterr().err, message)
    assert list(tmp_path.iterdir()) == []
    assert main(["compare", "mlp", "cnn", *FAST, "--out", str(tmp_path / "out"), *flags]) == 2
    assert_error_line(capsys.readouterr().err, message)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_spec_in_a_comparison_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("layers:\n  - {kind: dense, units: 10}\n")
    assert main(["compare", "mlp", str(tmp_path / "bad.yaml"), *FAST, "--out", str(tmp_path / "out")]) == 2
    assert_error_line(capsys.readouterr().err, "bad.yaml")
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_or_under_one(tmp_path, capsys):
    (tmp_path / "file").write_text("the user's")
    for out, message in ((tmp_path / "file", "exists and is not a folder"),
                         (tmp_path / "file" / "below", "cannot create the folder")):
        assert main(["train", "mlp", *FAST, "--out", str(out)]) == 2
        assert_error_line(capsys.readouterr().err, message)
    assert (tmp_path / "file").read_text() == "the user's"


def test_out_that_is_read_only(tmp_path, monkeypatch, capsys):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):  # as on a read-only mount (root ignores a folder's mode bits)
        if str(path).startswith(str(read_only)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    assert main(["train", "mlp", *FAST, "--out", str(read_only)]) == 2
    assert_error_line(capsys.readouterr().err, "cannot create the run directory (Read-only file system)")
    assert main(["compare", "mlp", "cnn", *FAST, "--out", str(read_only)]) == 2
    assert_error_line(capsys.readouterr().err, "cannot create the comparison folder (Read-only file system)")
    assert list(read_only.iterdir()) == []


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    full = {"on": False}
    real_fill = files._fill

    def fill(handle, data):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fill(handle, data)

    class FillDiskAfterEpoch1(TrainingCallback):
        def on_epoch_end(self, record, state): full["on"] = True

    monkeypatch.setattr(files, "_fill", fill)
    with pytest.raises(WriteError, match=r"checkpoint.pt: cannot write \(No space left on device\); the "
                                         r"previous checkpoint.pt is unchanged"):
        runs.train("mlp", "digits", TrainConfig(epochs=2, batch_size=64), out=tmp_path, name="r",
                   callback=FillDiskAfterEpoch1())
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not [p for p in os.listdir(tmp_path / "r") if p.endswith(".tmp")]
    assert main(["train", "mlp", *FAST, "--out", str(tmp_path), "--name", "full"]) == 2  # the disk is still full
    assert_error_line(capsys.readouterr().err, "No space left on device", "nothing was written")
    assert sorted(os.listdir(tmp_path)) == ["r"]  # the failed run left no folder
    full["on"] = False
    assert runs.resume(tmp_path / "r").history[-1].epoch == 2


def test_evaluate_val_of_a_run_without_a_validation_split(tmp_path, capsys):
    assert main(["train", "mlp", *FAST, "--val-split", "0", "--out", str(tmp_path), "--name", "r"]) == 0
    assert main(["evaluate", str(tmp_path / "r"), "--split", "val"]) == 2
    assert_error_line(capsys.readouterr().err, "held out no validation part (val_split 0)")


def test_predict_reads_only_regular_files(finished, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.png")
    signal.alarm(60)  # a regression would block on the FIFO forever
    try:
        for image in (tmp_path / "pipe.png", "/dev/zero", tmp_path):
            assert main(["predict", str(finished), str(image)]) == 2
            assert_error_line(capsys.readouterr().err, "not a regular file")
    finally:
        signal.alarm(0)


def test_options_given_with_resume_are_refused_not_ignored(run, capsys):
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", "--resume", str(run), "--epochs", "3", "--lr", "0.5"]) == 2
    assert_error_line(capsys.readouterr().err, "--epochs, --lr would be ignored")
    assert main(["train", "mlp", "--resume", str(run), "--dataset", "digits"]) == 2
    assert_error_line(capsys.readouterr().err, "SPEC, --dataset would be ignored")
    assert (run / "checkpoint.pt").read_bytes() == before
