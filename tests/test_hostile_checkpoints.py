"""Damaged, truncated and crafted checkpoints, weights and records: one error line, nothing saved lost."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from cnnlab.cli.main import main

from fixtures import assert_error_line


class Gadget:
    """A class a crafted pickle names; weights_only=True refuses to build it."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    assert main(["train", "mlp", "--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--quiet",
                 "--out", str(out), "--name", "run"]) == 0
    return out / "run"


@pytest.fixture
def run(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / "run"))


def snapshot(run: Path) -> dict:
    return {path.name: path.read_bytes() for path in run.iterdir()}


def first_key(table: dict):
    return next(iter(table))


MUTATIONS = {
    "a weight missing": lambda p: p["model"].pop(first_key(p["model"])),
    "a weight of another shape": lambda p: p["model"].__setitem__(first_key(p["model"]), torch.zeros(3)),
    "an extra weight": lambda p: p["model"].__setitem__("extra.weight", torch.zeros(3)),
    "the epoch a string": lambda p: p.__setitem__("epoch", "1"),
    "the epoch a bool": lambda p: p.__setitem__("epoch", True),
    "the epoch beyond the run": lambda p: p.__setitem__("epoch", 10**9),
    "the history short": lambda p: p.__setitem__("history", []),
    "a history record damaged": lambda p: p["history"][0].__setitem__("loss", "low"),
    "torch's RNG state short": lambda p: p["rng"].__setitem__("torch", torch.zeros(5, dtype=torch.uint8)),
    "numpy's RNG state damaged": lambda p: p["rng"].__setitem__("numpy", [1, 2]),
    "python's RNG state damaged": lambda p: p["rng"].__setitem__("python", [3, [1, 2], None]),
    "the shuffle state a list": lambda p: p["rng"].__setitem__("shuffle", [1]),
    "no RNG state": lambda p: p.pop("rng"),
    "Adam's moments of another shape": lambda p: p["optimizer"]["state"][0].__setitem__("exp_avg", torch.zeros(2)),
    "the learning rate a string": lambda p: p["optimizer"]["param_groups"][0].__setitem__("lr", "fast"),
    "a schedule that the run has not": lambda p: p.__setitem__("scheduler", {"T_max": 3}),
    "early stopping damaged": lambda p: p.__setitem__("early_stopping", {"best": "x"}),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_a_checkpoint_that_unpickles_safely_but_does_not_fit(run, capsys, mutation):
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    MUTATIONS[mutation](payload)
    torch.save(payload, run / "checkpoint.pt")
    before = snapshot(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert_error_line(capsys.readouterr().err, f"{run / 'checkpoint.pt'}: ")
    assert snapshot(run) == before  # nothing saved is lost or rewritten


@pytest.mark.parametrize("content", ["garbage", "truncated", "a list", "a gadget", "damaged weights", "a pickle"])
def test_a_checkpoint_that_is_not_one(run, capsys, content):
    data = (run / "checkpoint.pt").read_bytes()
    if content == "garbage":
        (run / "checkpoint.pt").write_bytes(b"\x00garbage" * 100)
    elif content == "truncated":
        (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    elif content == "damaged weights":  # flipped bytes inside a tensor: torch.load would take them
        weights = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
        tensor = next(iter(weights.values())).numpy().tobytes()
        at = data.find(tensor[:64])
        assert at > 0
        (run / "checkpoint.pt").write_bytes(data[:at] + b"\xff" * 16 + data[at + 16:])
    elif content == "a pickle":
        import pickle

        (run / "checkpoint.pt").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    else:
        torch.save([1, 2] if content == "a list" else {"model": Gadget()}, run / "checkpoint.pt")
    (run / "model.safetensors").unlink()  # evaluate then reads the checkpoint too
    before = snapshot(run)
    for command in (["train", "--resume", str(run), "--quiet"], ["evaluate", str(run)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert_error_line(err, "checkpoint.pt: ")  # one line: no torch warning before it
        if content in ("garbage", "truncated", "a pickle"):
            assert "not a readable checkpoint" in err
        if content == "damaged weights":
            assert "fails its CRC check" in err
    assert snapshot(run) == before


@pytest.mark.parametrize("content", ["garbage", "truncated", "another network"])
def test_weights_that_are_not_the_runs(run, capsys, content):
    from safetensors.torch import save

    data = (run / "model.safetensors").read_bytes()
    replacement = {"garbage": b"\xff" * 64, "truncated": data[: len(data) // 3],
                   "another network": save({"dense.weight": torch.zeros(2, 2)})}[content]
    (run / "model.safetensors").write_bytes(replacement)
    assert main(["evaluate", str(run)]) == 2
    assert_error_line(capsys.readouterr().err, "model.safetensors: ")
    assert (run / "model.safetensors").read_bytes() == replacement


@pytest.mark.parametrize("damage,message", [
    (lambda c: c.pop("train"), "no 'train' entry"),
    (lambda c: c.pop("spec"), "no 'spec' entry"),
    (lambda c: c.pop("dataset"), "no 'dataset' entry"),
    (lambda c: c["train"].pop("epochs"), "'train' lacks epochs"),
    (lambda c: c["train"].__setitem__("val_split", "lots"), "val_split must be int or float, got 'lots'"),
    (lambda c: c["dataset_options"].__setitem__("colour", True), "unknown dataset option 'colour'"),
    (lambda c: c.__setitem__("spec", []), "'spec' must be a mapping"),
])
def test_a_damaged_config(run, capsys, damage, message):
    config = json.loads((run / "config.json").read_text())
    damage(config)
    (run / "config.json").write_text(json.dumps(config))
    before = snapshot(run)
    for command in (["evaluate", str(run)], ["train", "--resume", str(run), "--quiet"],
                    ["predict", str(run), str(run / "config.json")]):
        assert main(command) == 2
        assert_error_line(capsys.readouterr().err, "config.json: ", message)
    assert snapshot(run) == before


def test_config_that_is_not_json(run, capsys):
    (run / "config.json").write_bytes(b"\xff\xfe{")
    assert main(["evaluate", str(run)]) == 2
    assert_error_line(capsys.readouterr().err, "config.json: ")
