"""The command line on real runs (digits, one epoch): --json results, predict --top, compare's reruns."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cnnlab.cli.main import main
from cnnlab.data import load_dataset
from cnnlab.experiment.option_changes import changed_options

from fixtures import assert_error_line

FAST = ["--dataset", "digits", "--epochs", "1", "--quiet"]
TINY_CNN = str(Path(__file__).parent / "golden" / "tiny_cnn.yaml")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch MLP run on digits."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "mlp", *FAST, "--out", str(out), "--name", "mlp"]) == 0
    return out / "mlp"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Three digits test images as 8x8 grayscale PNG files."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    data = load_dataset("digits")
    paths = []
    for index in range(3):
        path = folder / f"digit{index}.png"
        Image.fromarray(data.x_test[index][:, :, 0], "L").save(path)
        paths.append(str(path))
    return paths


def test_train_json_is_the_run_result(tmp_path, capsys):
    assert main(["train", "mlp", *FAST, "--out", str(tmp_path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert Path(record["run_dir"]).parent == tmp_path
    assert [row["epoch"] for row in record["history"]] == [1] and 0 <= record["history"][0]["val_accuracy"] <= 1
    assert sum(record["split_audit"]["validation"].values()) > 0


def test_evaluate_json_holds_the_evaluation_alone(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["split"] == "test" and record["count"] == 360 and 0 <= record["accuracy"] <= 1
    assert np.asarray(record["confusion_matrix"]).sum() == 360
    assert set(record["per_class_accuracy"]) == set(record["class_names"])
    assert "saved" in captured.err and (run_dir / "confusion_test.csv").exists()


@pytest.mark.parametrize("top", [1, 5, 10])
def test_predict_top_k(run_dir, images, capsys, top):
    assert main(["predict", str(run_dir), *images, "--top", str(top), "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert [item["image"] for item in predictions] == images
    for item in predictions:
        probabilities = [entry["probability"] for entry in item["top"]]
        assert len(probabilities) == top and probabilities == sorted(probabilities, reverse=True)
        assert len({entry["class"] for entry in item["top"]}) == top and sum(probabilities) <= 1 + 1e-6
        if top == 10:  # every class: the probabilities sum to one
            assert sum(probabilities) == pytest.approx(1, abs=1e-5)


def test_predict_prints_three_classes_by_default(run_dir, images, capsys):
    assert main(["predict", str(run_dir), images[0]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == images[0] and len(lines) == 4 and all(re.search(r"\d+\.\d+%$", line) for line in lines[1:])


@pytest.mark.parametrize("top", ["0", "-2", "11"])
def test_predict_top_out_of_range_is_one_error(run_dir, images, capsys, top):
    assert main(["predict", str(run_dir), images[0], "--top", top]) == 2
    assert_error_line(capsys.readouterr().err, "--top must be a whole number from 1 to 10 (the model's classes)",
                      f"got {top}")


def test_changed_options_names_each_option_and_both_values():
    before = {"specs": ["mlp", "cnn"], "seeds": 1, "base_seed": 0, "train": {"lr": 0.001, "epochs": 5},
              "dataset_options": {}}
    now = {"specs": ["mlp", "cnn"], "seeds": 1, "base_seed": 3, "train": {"lr": 0.01, "epochs": 5},
           "dataset_options": {"channels": 1}}
    assert changed_options(before, now) == ["--seed (base_seed): 0 before, 3 now",
                                            "--lr (train.lr): 0.001 before, 0.01 now",
                                            "--channels (dataset_options.channels): not given before, 1 now"]
    assert changed_options(before, json.loads(json.dumps(before))) == []


def test_compare_json_audit_once_and_a_changed_rerun(tmp_path, capsys):
    argv = ["compare", "mlp", TINY_CNN, "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path),
            "--name", "c"]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert [model["spec"] for model in record["models"]] == ["mlp", TINY_CNN]
    assert Path(record["report"]["html"]).exists() and record["dataset"]["name"] == "digits"
    assert captured.err.count("== ") == 2  # two runs trained, each announced
    assert captured.err.count("split: stratified") == 1  # but the split's table is printed once
    assert main([*argv, "--lr", "0.01", "--epochs", "2"]) == 2
    assert_error_line(capsys.readouterr().err, "a comparison with other options is there",
                      "--lr (train.lr): 0.001 before, 0.01 now", "--epochs (train.epochs): 1 before, 2 now",
                      "pass --name")
