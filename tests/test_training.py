"""The engine, runs on disk, resume exactness, and the train / evaluate / predict commands."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab import runs
from cnnlab.cli.main import main
from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.engine.steps import NonFiniteLossError
from cnnlab.runs.directory import RunError, read_metrics

from fixtures import assert_error_line

FAST = dict(epochs=2, batch_size=64)
TESTS = str(Path(__file__).parent)  # the scripts run in subprocesses import kill_at from here


def run_script(code: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


TRAIN_SCRIPT = """
    import torch
    from cnnlab import runs
    from cnnlab.engine.config import TrainConfig
    from kill_at import KillAt  # tests/kill_at.py
    torch.set_num_threads(1)

    config = TrainConfig(epochs=3, batch_size=32, seed=7)
    callback = {callback}
    runs.train("cnn", "digits", config, out="runs", name="{name}", callback=callback)
"""


def strip_times(rows):
    return [{k: v for k, v in row.items() if k not in ("time", "train_time", "images_per_second")}
            for row in rows]


def assert_killed_run_resumes_exactly(script: str, tmp_path) -> None:
    """``script`` (with ``{name}`` and ``{callback}`` to fill) run whole, then killed in epoch 2 and
    resumed: the same weights, bit for bit, and the same metrics."""
    whole = run_script(script.replace("{name}", "whole").replace("{callback}", "None"), tmp_path)
    assert whole.returncode == 0, whole.stderr
    killed = run_script(script.replace("{name}", "killed").replace("{callback}", "KillAt(2, 25)"), tmp_path)
    assert killed.returncode == -9
    resumed = run_script("import torch; torch.set_num_threads(1); from cnnlab import runs; runs.resume('runs/killed')",
                         tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole, again = tmp_path / "runs/whole", tmp_path / "runs/killed"
    assert (whole / "model.safetensors").read_bytes() == (again / "model.safetensors").read_bytes()
    assert strip_times(read_metrics(whole)) == strip_times(read_metrics(again))


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(tmp_path):
    whole = run_script(TRAIN_SCRIPT.format(callback="None", name="whole"), tmp_path)
    assert whole.returncode == 0, whole.stderr
    killed = run_script(TRAIN_SCRIPT.format(callback="KillAt(2, 25)", name="killed"), tmp_path)
    assert killed.returncode == -9
    assert json.loads((tmp_path / "runs/killed/history.json").read_text())[-1]["epoch"] == 1
    resumed = run_script("""
        import torch
        torch.set_num_threads(1)
        from cnnlab import runs
        runs.resume("runs/killed")
    """, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a = (tmp_path / "runs/whole/model.safetensors").read_bytes()
    b = (tmp_path / "runs/killed/model.safetensors").read_bytes()
    assert a == b  # bitwise-identical weights
    assert strip_times(read_metrics(tmp_path / "runs/whole")) == strip_times(read_metrics(tmp_path / "runs/killed"))


@pytest.mark.slow
def test_kill_during_save_keeps_previous_checkpoint(tmp_path):
    crash = run_script("""
        import os, signal, torch
        from cnnlab import runs
        from cnnlab.engine import checkpoint
        from cnnlab.engine.config import TrainConfig
        real_save, calls = torch.save, []
        def dying_save(obj, handle):
            calls.append(1)
            if len(calls) == 2:  # the second epoch's checkpoint: half written, then killed
                handle.write(b"partial checkpoint bytes")
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            real_save(obj, handle)
        checkpoint.torch.save = dying_save
        runs.train("mlp", "digits", TrainConfig(epochs=3, batch_size=64), out="runs", name="r")
    """, tmp_path)
    assert crash.returncode == -9
    state = torch.load(tmp_path / "runs/r/checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert runs.resume(tmp_path / "runs/r").history[-1].epoch == 3


class PoisonAfterFirstEpoch(TrainingCallback):
    """A callback that turns the weights to NaN once epoch 1 is checkpointed."""

    model = None

    def on_epoch_end(self, record, state):
        if record.epoch == 1:
            for parameter in self.model.parameters():
                parameter.data.fill_(float("nan"))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from cnnlab.engine import session

    poison, real_prepare = PoisonAfterFirstEpoch(), session.prepare

    def capture(model, *args, **kwargs):
        poison.model = model
        return real_prepare(model, *args, **kwargs)

    monkeypatch.setattr(session, "prepare", capture)
    with pytest.raises(NonFiniteLossError, match="at epoch 2, step 1"):
        runs.train("mlp", "digits", TrainConfig(epochs=3, batch_size=64), out=tmp_path, name="nan",
                   callback=poison)
    state = torch.load(tmp_path / "nan/checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(t).all() for t in state["model"].values())
    assert len(read_metrics(tmp_path / "nan")) == 1


def test_run_directory_is_never_overwritten(tmp_path, capsys):
    args = ["train", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0 and main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp-digits", "mlp-digits-1"]
    before = (tmp_path / "mlp-digits" / "model.safetensors").read_bytes()
    assert main([*args, "--name", "mlp-digits"]) == 2
    assert "run directory exists" in capsys.readouterr().err
    assert (tmp_path / "mlp-digits" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("flags,message", [
    (["--epochs", "-1"], "epochs must be a positive integer, got -1"),
    (["--batch-size", "5000"], "batch_size 5000 is larger than the training data"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--val-split", "1.5"], r"val_split must be in \[0, 1\)"),
    (["--early-stopping", "val_acc"], "cannot monitor 'val_acc'"),
])
def test_bad_arguments_are_clear_errors(tmp_path, capsys, flags, message):
    assert main(["train", "mlp", "--dataset", "digits", "--out", str(tmp_path), *flags]) == 2
    import re
    assert re.search(message, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []  # nothing written for a refused run


def test_unknown_optimizer_is_refused(capsys):
    assert main(["train", "mlp", "--dataset", "digits", "--optimizer", "adagrad"]) == 2
    assert_error_line(capsys.readouterr().err, "invalid choice: 'adagrad'")
    with pytest.raises(ConfigError, match="unknown optimizer 'adagrad'"):
        TrainConfig(optimizer="adagrad").validate()


def test_train_writes_records_and_reaches_sensible_accuracy(tmp_path, capsys):
    assert main(["train", "cnn", "--dataset", "digits", "--epochs", "3", "--out", str(tmp_path)]) == 0
    run = tmp_path / "cnn-digits"
    err = capsys.readouterr().err
    assert "estimated time per epoch" in err and "epoch 3/3" in err and "img/s" in err
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["val_accuracy"] > 0.8
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["dataset"]["sha256"] and manifest["threads"] >= 1
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["split"]["validation"]["0"] == 29
    assert (run / "summary.txt").read_text().startswith('Model: "cnn"')
    assert json.loads((run / "config.json").read_text())["train"]["batch_size"] == 32


def test_evaluate_and_predict(tmp_path, capsys):
    runs.train("mlp", "digits", TrainConfig(**FAST), out=tmp_path, name="m")
    assert main(["evaluate", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "test: 360 images" in out and "confusion matrix" in out
    matrix = np.loadtxt(tmp_path / "m/confusion_test.csv", delimiter=",", skiprows=1, usecols=range(1, 11))
    assert matrix.sum() == 360
    assert (tmp_path / "m/confusion_test.png").read_bytes()[:4] == b"\x89PNG"
    digit = cnnlab.load_data("digits").x_test[0, :, :, 0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    Image.new("L", (9, 9)).save(tmp_path / "big.png")
    (tmp_path / "junk.png").write_bytes(b"nope")
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "digit.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("digit.png") and len(lines) == 4 and "%" in lines[1]
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "big.png")]) == 2
    assert "big.png: image is 9x9, the model was trained on 8x8 images" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "junk.png")]) == 2
    assert "junk.png: not a readable image" in capsys.readouterr().err


def test_api_fit_evaluate_predict_with_one_hot_labels():
    data = cnnlab.load_data("digits")
    model = cnnlab.Model("mlp", seed=1)
    y = np.eye(10, dtype=np.float32)[data.y_train]
    history = model.fit(data.x_train, y, epochs=2, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]  # Keras' keys
    assert list(history.records[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "time", "train_time",
                                        "images_per_second", "lr"]
    assert len(history.history["val_accuracy"]) == 2
    loss, accuracy = model.evaluate(data.x_test, data.y_test)  # a list, as Keras returns
    assert 0.5 < accuracy <= 1 and loss > 0
    assert model.evaluate(data.x_test, data.y_test, return_dict=True) == {"loss": loss, "accuracy": accuracy}
    probs = model.predict(data.x_test[:5])
    assert probs.shape == (5, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_fit_again_trains_on_with_the_same_optimizer_moments():
    data = cnnlab.load_data("digits")
    x, y = data.x_train[:600], data.y_train[:600]
    model = cnnlab.Model("mlp")
    model.fit(x, y, epochs=1, batch_size=64, validation_split=0, verbose=0)
    first = [p.clone() for p in model.module.parameters()]
    model.fit(x, y, epochs=1, batch_size=64, validation_split=0, verbose=0)
    adam = model._state.optimizer.state[next(model.module.parameters())]
    assert int(adam["step"]) == 2 * 10  # 10 steps a fit: Adam's step count and moments carried over, as in Keras
    assert any(not torch.equal(a, b) for a, b in zip(first, model.module.parameters()))


def test_api_and_run_directory_train_alike(tmp_path):
    # One engine sequence (seed, build, prepare, run) behind both: same seed, same numbers and weights.
    from safetensors.torch import load_file

    data = cnnlab.load_data("digits")
    run = runs.train("cnn", "digits", TrainConfig(**FAST, seed=4), out=tmp_path, name="r")
    model = cnnlab.Model("cnn", seed=4)
    history = model.fit(data.x_train, data.y_train, verbose=0, **FAST)
    assert strip_times(history.records) == strip_times([row.to_dict() for row in run.history])
    saved = load_file(str(tmp_path / "r" / "model.safetensors"))
    assert all(torch.equal(saved[name], value) for name, value in model.module.state_dict().items())


def test_epoch_loss_is_the_batch_size_weighted_mean():
    # With a vanishing learning rate the weights stay put, so the epoch's training loss
    # must equal the loss evaluated over the same images (Keras' weighted average).
    data = cnnlab.load_data("digits")
    model = cnnlab.Model([{"kind": "flatten"}, {"kind": "dense", "units": 10}])
    history = model.fit(data.x_train[:100], data.y_train[:100], epochs=1, batch_size=32, lr=1e-12,
                        optimizer="sgd", validation_split=0, verbose=0)
    full = model.evaluate(data.x_train[:100], data.y_train[:100], return_dict=True)
    assert history.history["loss"][0] == pytest.approx(full["loss"], rel=1e-5)
    assert history.history["accuracy"][0] == pytest.approx(full["accuracy"])


def test_same_seed_same_result_and_early_stopping():
    data = cnnlab.load_data("digits")
    histories = [cnnlab.Model("mlp", seed=3).fit(data.x_train, data.y_train, epochs=2, verbose=0) for _ in range(2)]
    assert histories[0].history["val_loss"] == histories[1].history["val_loss"]
    stopped = cnnlab.Model("mlp").fit(data.x_train, data.y_train, epochs=30, verbose=0, lr=0.05,
                                      early_stopping="val_loss", patience=0)
    assert len(stopped.records) < 30


def test_schedules_and_optimizers_run():
    data = cnnlab.load_data("digits")
    for options in ({"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "schedule": "cosine"},
                    {"optimizer": "adamw", "schedule": "onecycle"}):
        history = cnnlab.Model("mlp").fit(data.x_train, data.y_train, epochs=1, verbose=0, **options)
        assert history.history["val_accuracy"][0] > 0.3


def test_resume_of_unknown_directory(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a cnnlab run directory" in capsys.readouterr().err


def test_user_spec_with_wrong_head_is_refused(tmp_path):
    spec = [{"kind": "flatten"}, {"kind": "dense", "units": 4}]
    with pytest.raises(cnnlab.SpecError, match="last dense layer has 4 units but the data has 10 classes"):
        runs.train(spec, "digits", TrainConfig(epochs=1), out=tmp_path)
    with pytest.raises(RunError):
        runs.resume(tmp_path / "missing")


def test_deterministic_refusal_names_the_operation():
    from torch import nn

    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.loop import TensorData, run_epochs
    from cnnlab.engine.session import new_state
    from cnnlab.engine.steps import DeterminismError

    class Refuses(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, x):
            raise RuntimeError("scatter_add_cuda_kernel does not have a deterministic implementation, but you "
                               "set 'torch.use_deterministic_algorithms(True)'.")

    config = TrainConfig(epochs=1, batch_size=2, deterministic=True)
    state = new_state(Refuses(), config, 1)
    data = TensorData(torch.zeros(2, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(DeterminismError, match="refused an operation: scatter_add_cuda_kernel"):
        run_epochs(state, data, config)
