"""The speed levers keep their meaning: dropout statistics, bf16 training, the benchmark's smoke run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cnnlab
from cnnlab.net.torch_ops import Dropout

ROOT = Path(__file__).resolve().parents[1]


def test_dropout_keeps_the_right_share_and_scales():
    torch.manual_seed(0)
    layer = Dropout(0.2).train()
    out = layer(torch.ones(400, 1000))
    kept = (out > 0).float().mean().item()
    assert abs(kept - 0.8) < 0.003
    assert set(torch.unique(out).tolist()) == {0.0, 1.25}
    assert torch.equal(layer.eval()(torch.ones(3, 3)), torch.ones(3, 3))


def test_dropout_gradient_follows_the_mask():
    x = torch.ones(64, 64, requires_grad=True)
    out = Dropout(0.5).train()(x)
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # gradient 2 where kept, 0 where dropped


def test_dropout_draws_from_the_seeded_generator():
    torch.manual_seed(5)
    a = Dropout(0.3).train()(torch.ones(10, 10))
    torch.manual_seed(5)
    assert torch.equal(a, Dropout(0.3).train()(torch.ones(10, 10)))


def test_bf16_precision_trains():
    data = cnnlab.load_data("digits")
    history = cnnlab.Model("cnn").fit(data.x_train, data.y_train, epochs=2, verbose=0, precision="bf16")
    assert history.history["val_accuracy"][-1] > 0.5


def test_benchmark_quick_mode_runs(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cpu.py"), "--quick", "--limit",
                             "1500", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [r["model"] for r in report["results"]] == ["mlp", "cnn"]
    for entry in report["results"]:
        assert set(entry["engines"]) == {"cnnlab", "baseline"}
        assert entry["ratios"]["cnnlab"] > 0
        assert all(0 <= e["final_val_accuracy"] <= 1 and e["gflops"] > 0 for e in entry["engines"].values())
    assert "baseline / engine" in result.stdout


def test_time_to_accuracy_quick_mode_runs(tmp_path):
    """The benchmark's whole path on a generated image folder (no timing asserted: a smoke test)."""
    out, picture = tmp_path / "tta.json", tmp_path / "tta.png"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--quick",
                             "--seeds", "1", "--json", str(out), "--plot", str(picture)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert [run["name"] for run in record["runs"]] == ["cnn-homework-seed0", "fast-fp32-seed0"]
    for run in record["runs"]:
        assert 0 <= run["test_accuracy"] <= 1 and run["seconds"] > run["train_seconds"] > 0
        assert [point["epoch"] for point in run["curve"]] == [1]
    assert record["runs"][1]["tta"] == "flip_translate" and {"cpu", "bf16_units", "torch"} <= set(record["machine"])
    assert set(record["runs"][1]["accuracy_by_tta"]) == {"None", "flip", "flip_translate"}
    assert picture.stat().st_size > 1000 and "x homework cnn" in result.stdout


PEER = ROOT.parent / "shared" / "peers" / "airbench_cpu.py"


@pytest.mark.skipif(not PEER.is_file(), reason=f"the airbench peer is not here ({PEER}); the comparison needs it")
def test_time_to_accuracy_against_airbench_quick_mode_runs(tmp_path):
    """The peer and fast alternate in fresh processes on generated images; one table, time as a ratio to the
    peer (no timing asserted: a smoke test)."""
    out, picture = tmp_path / "tta.json", tmp_path / "tta.png"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--quick",
                             "--against", "airbench", "--seeds", "1", "--json", str(out), "--plot", str(picture)],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert [run["name"] for run in record["runs"]] == ["airbench93-peer-seed0", "fast-fp32-seed0"]
    peer, fast = record["runs"]
    assert peer["peer_report"]["peer"] == "airbench-cpu" and 0 <= peer["test_accuracy"] <= 1
    assert 0 <= fast["accuracy_by_tta"]["None"] <= 1 and fast["tta"] == "flip_translate"
    assert "| run | precision | acc raw | acc TTA | seconds | x peer |" in result.stdout
    assert "| airbench93-peer-seed0 | fp32 |" in result.stdout and "1.00 |" in result.stdout
    assert "AVX2" in result.stdout and picture.stat().st_size > 1000
