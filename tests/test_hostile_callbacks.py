"""Issue 32: the callbacks write as model.save writes (never through a link, never onto a FIFO, device or
folder), a checkpoint's filename template is checked before training, and nothing waits on a FIFO."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap

import pytest

import cnnlab
from cnnlab import callbacks as cb
from cnnlab.engine.config import ConfigError
from cnnlab.errors import CnnlabError
from cnnlab.files import WriteError
from test_callbacks import model_for

HANG_GUARD_S = 120  # only so that a regression fails instead of hanging the suite; the assertions are the messages


@pytest.fixture(scope="module")
def digits():
    return cnnlab.load_data("digits")


def fit_one_epoch(data, *callbacks):
    return model_for(data).fit(data.x_train[:64], data.y_train[:64], epochs=1, verbose=0, callbacks=list(callbacks))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs need a POSIX system")
def test_saving_onto_a_fifo_is_refused_without_opening_it(tmp_path):
    """model.save, ModelCheckpoint and save_weights onto a FIFO: one error naming it (opening it would wait
    for a writer for ever), run in a child process so that a regression fails instead of hanging."""
    fifo = tmp_path / "x.cnnlab"
    os.mkfifo(fifo)
    code = f'''
        import cnnlab
        from cnnlab import callbacks as cb
        from cnnlab.errors import CnnlabError
        from cnnlab.layers import Dense, Flatten, Input
        data = cnnlab.load_data("digits")
        inp = Input(shape=data.image_shape)
        model = cnnlab.Model(inputs=inp, outputs=Dense(10, activation="softmax")(Flatten()(inp)))
        attempts = {{"save": lambda: model.save({str(fifo)!r}),
                     "checkpoint": lambda: model.fit(data.x_train[:64], data.y_train[:64], epochs=1, verbose=0,
                                                     callbacks=[cb.ModelCheckpoint({str(fifo)!r})]),
                     "weights": lambda: model.fit(data.x_train[:64], data.y_train[:64], epochs=1, verbose=0,
                                                  callbacks=[cb.ModelCheckpoint({str(fifo)!r},
                                                                                save_weights_only=True)])}}
        for name, attempt in attempts.items():
            try:
                attempt()
                print(name, "wrote")
            except CnnlabError as exc:
                print(name, exc)
    '''
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["save", "checkpoint", "weights"], done.stderr[-2000:]
    for line in lines:
        assert f"{fifo}: exists and is not a regular file (a FIFO); left as it is" in line, line
    assert fifo.exists() and not fifo.is_file()


def test_a_checkpoint_template_naming_an_unlogged_key_is_refused_before_training():
    with pytest.raises(ConfigError, match=r"filepath 'ck-\{nope\}.cnnlab' names 'nope', which is not logged; "
                                          r"it may name \{epoch\} and \{loss\}"):
        cb.ModelCheckpoint("ck-{nope}.cnnlab")
    for bad in ("ck-{}.cnnlab", "ck-{epoch:zz}.cnnlab", "ck-{loss[0]}.cnnlab", "ck-{epoch"):
        with pytest.raises(ConfigError, match="cannot be filled in"):
            cb.ModelCheckpoint(bad)
    cb.ModelCheckpoint("ck-{epoch:02d}-{val_loss:.3f}-{learning_rate}.cnnlab")  # Keras' own templates pass


def test_a_checkpoint_naming_val_loss_without_validation_says_so(tmp_path):
    saver = cb.ModelCheckpoint(str(tmp_path / "ck-{val_loss:.2f}.cnnlab"))
    with pytest.raises(ConfigError, match=r"names 'val_loss', which this training does not log \(it logs loss\)"):
        saver.on_epoch_end(0, {"loss": 1.0})
    assert list(tmp_path.iterdir()) == []


def test_csv_logger_refuses_a_link_to_a_users_file_and_leaves_it(tmp_path, digits):
    users = tmp_path / "thesis.txt"
    users.write_text("my thesis\n")
    (tmp_path / "log.csv").symlink_to(users)
    with pytest.raises(WriteError, match="log.csv: is a symbolic link; cnnlab never writes through links"):
        fit_one_epoch(digits, cb.CSVLogger(tmp_path / "log.csv"))
    assert users.read_text() == "my thesis\n" and (tmp_path / "log.csv").is_symlink()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs need a POSIX system")
def test_csv_logger_refuses_a_fifo_before_training(tmp_path, digits):
    os.mkfifo(tmp_path / "log.csv")
    with pytest.raises(WriteError, match=r"log.csv: exists and is not a regular file \(a FIFO\)"):
        fit_one_epoch(digits, cb.CSVLogger(tmp_path / "log.csv", append=True))


def test_csv_logger_appends_rows_under_one_header(tmp_path, digits):
    log = tmp_path / "log.csv"
    fit_one_epoch(digits, cb.CSVLogger(log))
    fit_one_epoch(digits, cb.CSVLogger(log, append=True))
    rows = list(csv.reader(log.open(newline="")))
    assert rows[0][0] == "epoch" and "loss" in rows[0] and [row[0] for row in rows[1:]] == ["0", "0"]
    fit_one_epoch(digits, cb.CSVLogger(log))  # without append: a new log
    assert len(list(csv.reader(log.open(newline="")))) == 2


@pytest.mark.parametrize("planted", ["file", "dangling link"])
def test_tensorboard_log_dir_that_is_a_file_or_a_dangling_link_is_one_error(tmp_path, digits, planted):
    log_dir = tmp_path / "logs"
    if planted == "file":
        log_dir.write_text("not a folder")
    else:
        log_dir.symlink_to(tmp_path / "nowhere")
    with pytest.raises(CnnlabError, match="logs: is a symbolic link or not a folder; cnnlab never writes through"):
        fit_one_epoch(digits, cb.TensorBoard(log_dir=log_dir))
    assert log_dir.is_symlink() if planted != "file" else log_dir.read_text() == "not a folder"
    assert not (tmp_path / "nowhere").exists()


def test_csv_logger_into_a_missing_folder_is_refused_before_training(tmp_path, digits):
    with pytest.raises(WriteError, match="log.csv: the folder .*nowhere does not exist"):
        fit_one_epoch(digits, cb.CSVLogger(tmp_path / "nowhere" / "log.csv"))
