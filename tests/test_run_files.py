"""The one write helper, the marker, and what cnnlab removes: links refused, atomic, the umask kept."""

import errno
import json
import os
import stat

import pytest

from cnnlab import files
from cnnlab.cli.main import main
from cnnlab.data.cache import atomic_write
from cnnlab.files import WriteError, make_folder, read_regular, write_file
from cnnlab.runs.directory import MARKER, RunError, create_marked, discard_run, is_marked

from fixtures import assert_error_line

TRAIN = ["train", "mlp", "--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--quiet"]


def test_write_file_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    write_file(tmp_path / "a" / "b.txt", b"one", root=tmp_path)
    write_file(tmp_path / "a" / "b.txt", lambda handle: handle.write(b"two"), root=tmp_path)
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"two"
    assert os.listdir(tmp_path / "a") == ["b.txt"]


def test_write_file_refuses_a_link_as_target_or_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / "out.csv").symlink_to(outside / "victim.txt")
    (run / "figures").symlink_to(outside)
    with pytest.raises(WriteError, match="out.csv: is a symbolic link"):
        write_file(run / "out.csv", b"x", root=run)
    with pytest.raises(WriteError, match="figures: is a symbolic link or not a folder"):
        write_file(run / "figures" / "victim.txt", b"x", root=run)
    with pytest.raises(WriteError, match="figures: is a symbolic link"):
        make_folder(run / "figures" / "deeper", root=run)
    assert (outside / "victim.txt").read_text() == "keep me" and os.listdir(outside) == ["victim.txt"]
    assert (run / "out.csv").is_symlink()  # the link itself is not cnnlab's to remove either


def test_write_file_refuses_a_fifo_or_folder_as_target(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    for name in ("pipe", "folder"):
        with pytest.raises(WriteError, match="not a regular file"):
            write_file(tmp_path / name, b"x", root=tmp_path)


def test_full_disk_keeps_the_previous_file_and_removes_the_temporary(tmp_path, monkeypatch):
    write_file(tmp_path / "record.json", b"previous", root=tmp_path)

    def full(handle, data):
        handle.write(data[:3])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_fill", full)
    with pytest.raises(WriteError) as caught:
        write_file(tmp_path / "record.json", b"new content", root=tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'record.json'}: cannot write (No space left on device); "
                                 "the previous record.json is unchanged")
    with pytest.raises(WriteError, match="nothing was written"):
        write_file(tmp_path / "other.json", b"new", root=tmp_path)
    assert (tmp_path / "record.json").read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["record.json"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_and_folders_get_the_umask_permissions(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "cache" / "arrays.npz", lambda handle: handle.write(b"data"))
        assert main([*TRAIN, "--out", str(tmp_path / "runs"), "--name", "r"]) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "cache" / "arrays.npz").stat().st_mode) == 0o666 & ~umask
    run = tmp_path / "runs" / "r"
    assert stat.S_IMODE(run.stat().st_mode) == 0o777 & ~umask
    for path in run.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path.name


def test_a_new_run_is_marked_and_an_unmarked_folder_is_never_adopted(tmp_path, capsys):
    assert main([*TRAIN, "--out", str(tmp_path), "--name", "r"]) == 0
    marker = json.loads((tmp_path / "r" / MARKER).read_text())
    assert marker["made_by"] == "cnnlab" and marker["kind"] == "run" and is_marked(tmp_path / "r", "run")
    users = tmp_path / "users"
    users.mkdir()
    (users / "important.txt").write_text("mine")
    capsys.readouterr()
    assert main([*TRAIN, "--out", str(tmp_path), "--name", "users"]) == 2
    assert_error_line(capsys.readouterr().err, "run directory exists", "cnnlab did not make it")
    # A copy of a run's records without the marker is not cnnlab's to resume or evaluate into.
    for name in ("config.json", "manifest.json", "checkpoint.pt", "model.safetensors"):
        (users / name).write_bytes((tmp_path / "r" / name).read_bytes())
    for command in (["train", "--resume", str(users), "--quiet"], ["evaluate", str(users)]):
        assert main(command) == 2
        assert_error_line(capsys.readouterr().err, "no .cnnlab.json marker")
    assert sorted(os.listdir(users)) == ["checkpoint.pt", "config.json", "important.txt", "manifest.json",
                                         "model.safetensors"]


def test_discarding_a_run_removes_only_cnnlabs_files(tmp_path):
    run = tmp_path / "r"
    create_marked(run, "run")
    for name in ("config.json", "metrics.csv", ".metrics.csv.0123abcd.tmp"):
        (run / name).write_text("cnnlab's")
    (run / "notes.txt").write_text("the user's")
    (tmp_path / "elsewhere.json").write_text("the user's")
    (run / "manifest.json").symlink_to(tmp_path / "elsewhere.json")
    discard_run(run)
    assert sorted(os.listdir(run)) == [MARKER, "manifest.json", "notes.txt"]
    assert (tmp_path / "elsewhere.json").read_text() == "the user's"
    (run / "notes.txt").unlink()
    (run / "manifest.json").unlink()
    discard_run(run)
    assert not run.exists()  # nothing but cnnlab's files: the folder goes too


def test_read_regular_refuses_fifos_devices_and_large_files(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "big").write_bytes(b"x" * 11)
    for path in (tmp_path / "pipe", "/dev/zero", tmp_path):
        with pytest.raises(RunError, match="not a regular file"):
            read_regular(path, 10, RunError)
    with pytest.raises(RunError, match="11 bytes, more than a file may have"):
        read_regular(tmp_path / "big", 10, RunError)
