"""Splits, helpers, digits, and the data commands."""

import json

import numpy as np
import pytest

from cnnlab.cli.main import main
from cnnlab.data import Dataset, DatasetError, load_dataset, one_hot, to_float, validation_split
from cnnlab.data.split import format_audit


def sorted_dataset(per_class=10, classes=4):
    y = np.repeat(np.arange(classes), per_class)
    x = np.zeros((len(y), 2, 2, 1), np.uint8)
    return Dataset("toy", [f"c{i}" for i in range(classes)], x, y, x[:4], y[:4])


def test_stratified_split_keeps_class_balance_and_is_seeded():
    data = sorted_dataset()
    split = validation_split(data, 0.2, seed=3)
    assert np.bincount(data.y_train[split.val_idx]).tolist() == [2, 2, 2, 2]
    assert set(split.train_idx) | set(split.val_idx) == set(range(40))
    again = validation_split(data, 0.2, seed=3)
    assert np.array_equal(split.val_idx, again.val_idx)
    assert not np.array_equal(split.val_idx, validation_split(data, 0.2, seed=4).val_idx)
    assert split.warnings == []


def test_keras_tail_split_warns_on_class_sorted_data():
    data = sorted_dataset()
    split = validation_split(data, 0.25, method="keras")
    assert split.val_idx.tolist() == list(range(30, 40))
    assert "classes missing from training after the split: c3" in split.warnings[0]
    audit = split.audit(data)
    assert audit["validation"] == {"c0": 0, "c1": 0, "c2": 0, "c3": 10}
    assert "warning: classes missing" in format_audit(audit)


def test_bad_split_arguments():
    with pytest.raises(DatasetError, match="unknown split method 'random'"):
        validation_split(sorted_dataset(), method="random")
    with pytest.raises(DatasetError, match=r"must be in \[0, 1\)"):
        validation_split(sorted_dataset(), 1.0)


def test_helpers():
    assert to_float(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert one_hot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(DatasetError, match="labels must lie in"):
        one_hot(np.array([3]), 3)


def test_digits_is_offline_and_fixed():
    data = load_dataset("digits")
    assert data.x_train.shape == (1437, 8, 8, 1) and data.x_test.shape == (360, 8, 8, 1)
    assert data.x_train.max() == 255 and data.x_train.dtype == np.uint8
    assert set(np.unique(data.y_test)) == set(range(10))


def test_unknown_dataset_name():
    with pytest.raises(DatasetError, match="neither a dataset name"):
        load_dataset("mnist")


def test_data_info_json(capsys):
    assert main(["data", "info", "digits", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "digits" and info["image_shape"] == [8, 8, 1]
    assert info["train"]["count"] == 1437 and sum(info["test"]["per_class"].values()) == 360


def test_data_show_writes_png(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "show", "digits", "--n", "6", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_error_is_a_message(capsys):
    assert main(["data", "info", "/nonexistent/dir"]) == 2
    assert "neither a dataset name" in capsys.readouterr().err


@pytest.mark.parametrize("argv,names", [
    (["--n", "0"], "--n"),
    (["--n", "-3"], "--n"),
    (["--n", "100000"], "--n"),
    (["--seed", "-1"], "--seed"),
    (["-o", "{tmp}/out.xyz"], "out.xyz: '.xyz' is not an image format"),
    (["-o", "{tmp}/out"], "out: no suffix is not an image format"),
])
def test_data_show_bad_options_are_one_error_line(tmp_path, capsys, argv, names):
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    options = {"-o": str(tmp_path / "grid.png")} | dict(zip(argv[::2], argv[1::2]))
    code = main(["data", "show", "digits", *(item for pair in options.items() for item in pair)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("cnnlab: error: ") and names in err
    assert not list(tmp_path.iterdir())


def test_class_names_with_dollars_are_drawn_as_text(tmp_path, capsys):
    from PIL import Image

    from cnnlab.presenters.plots import confusion_figure, save_figure
    from cnnlab.report import figures

    for split in ("train", "test"):
        for name in ("$^$", "a$b$c"):
            (tmp_path / "odd" / split / name).mkdir(parents=True)
            Image.new("RGB", (4, 4)).save(tmp_path / "odd" / split / name / "0.png")
    out = tmp_path / "grid.png"
    assert main(["data", "show", str(tmp_path / "odd"), "--cache-dir", str(tmp_path / "c"), "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    names = ["$^$", "a$b$c"]
    audit = {part: dict.fromkeys(names, 1) for part in ("train", "validation", "test")}
    for fig in (confusion_figure(np.eye(2, dtype=int), names, title="$^$"), figures.class_counts(audit),
                figures.disagreement_grid(np.zeros((1, 4, 4, 3), np.uint8), [0], [1], names, "$^$ vs $")):
        save_figure(fig, tmp_path / "figure.png")
