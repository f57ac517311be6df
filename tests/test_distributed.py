"""Training over several processes (torchrun, gloo on the CPU): the same model as one process, exact resume,
rank 0 alone writing, and a lost process stopping the others with one error line instead of a hang."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cnnlab.engine import distributed
from cnnlab.engine.config import ConfigError
from cnnlab.engine.data_parallel import rank_seed, shard
from cnnlab.runs.directory import read_metrics

DENSE = "name: tiny_dense\nlayers:\n  - {kind: flatten}\n  - {kind: dense, units: 32, activation: relu}\n" \
        "  - {kind: dense, units: 10, activation: softmax}\n"
CONV = "name: tiny_conv\nlayers:\n  - {kind: conv2d, filters: 4, kernel: 3, padding: same, activation: relu}\n" \
       "  - {kind: maxpool2d, pool: 2}\n  - {kind: flatten}\n  - {kind: dense, units: 10, activation: softmax}\n"
DROPOUT = DENSE.replace("relu}\n", "relu}\n  - {kind: dropout, rate: 0.5}\n")
# Measured max abs weight difference after 2 epochs: 6.0e-8 (dense, adam, batch 32) and 4.8e-7 (conv, sgd,
# batch 4: 1,150 steps, weights up to 2.07): float32 summation order. The bound leaves room for other BLAS.
WEIGHT_TOLERANCE = 5e-6
FLAGS = ["--dataset", "digits", "--device", "cpu", "--quiet"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(rank: int = 0, world: int = 1, port: int = 0, **extra) -> dict:
    tests = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": tests, **extra}  # scripts import kill_at
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    if world > 1:  # what torchrun gives each process
        env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return env


def launch(args: list[str], cwd: Path, world: int = 2, **extra) -> list[subprocess.Popen]:
    """``world`` processes of ``python ARGS`` joined as torchrun joins them (env://, rank 0 hosting the store)."""
    port = _free_port()
    return [subprocess.Popen([sys.executable, *args], cwd=cwd, env=_env(rank, world, port, **extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(world)]


def finish(processes: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str, str]]:
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        results.append((process.returncode, out, err))
    return results


def torchrun(args: list[str], cwd: Path, world: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
               "-m", "cnnlab", *args]
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def single(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=300)


def max_weight_difference(a: Path, b: Path) -> float:
    first, second = load_file(a), load_file(b)
    assert first.keys() == second.keys()
    return max(float((first[key] - second[key]).abs().max()) for key in first)


def strip_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("time", "train_time", "images_per_second")} for row in rows]


@pytest.mark.parametrize("count", [0, 1, 5, 29, 32, 61])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_cover_every_item_once_as_evenly_as_possible(count, world):
    parts = [shard(count, rank, world) for rank in range(world)]
    assert [i for lo, hi in parts for i in range(lo, hi)] == list(range(count))
    sizes = [hi - lo for lo, hi in parts]
    assert max(sizes) - min(sizes) <= 1


def test_ranks_draw_dropout_from_seeds_of_their_own():
    seeds = {rank_seed(seed, rank, epoch) for seed in (0, 1) for rank in range(4) for epoch in (0, 3)}
    assert len(seeds) == 16 and all(0 <= s < 2**63 for s in seeds)


def test_a_batch_that_does_not_split_is_refused_naming_the_multiples():
    distributed.check_batch(32, processes=4)
    with pytest.raises(ConfigError, match=r"--batch-size 30 does not split among 4 processes.*28 or 32"):
        distributed.check_batch(30, processes=4)


def test_single_process_without_torchrun(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.torchrun_env() is None and not distributed.setup()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.on_main(lambda: 7) == 7 and distributed.gather("x") == ["x"]
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node=1: still one process
    assert distributed.torchrun_env() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(distributed.DistributedError, match="RANK 5 does not fit WORLD_SIZE 2"):
        distributed.torchrun_env()


@pytest.mark.slow
@pytest.mark.parametrize("spec, options", [(DENSE, ["--batch-size", "32"]),
                                           (CONV, ["--batch-size", "4", "--optimizer", "sgd", "--lr", "0.05"])],
                         ids=["dense-adam-batch32", "conv-sgd-batch4"])
def test_two_processes_train_the_model_one_process_trains(tmp_path, spec, options):
    # 1,149 training images: batch 32 ends on 29 images (15 + 14), batch 4 on 1 (one rank takes none).
    # sgd's step is linear in the gradient: a wrongly weighted batch (the short last one too) shows at once.
    (tmp_path / "net.yaml").write_text(spec)
    options = ["train", "net.yaml", *FLAGS, "--epochs", "2", *options]
    one = single([*options, "--name", "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = torchrun([*options, "--name", "two"], tmp_path)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("run: runs/two") == 1  # rank 0 alone prints
    runs = tmp_path / "runs"
    assert max_weight_difference(runs / "one/model.safetensors", runs / "two/model.safetensors") < WEIGHT_TOLERANCE
    for a, b in zip(read_metrics(runs / "one"), read_metrics(runs / "two")):
        assert a["accuracy"] == b["accuracy"] and a["val_accuracy"] == b["val_accuracy"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5) and a["val_loss"] == pytest.approx(b["val_loss"],
                                                                                                    abs=1e-5)
    manifest = json.loads((runs / "two/manifest.json").read_text())
    assert manifest["processes"] == {"world_size": 2, "backend": "gloo"}
    assert sorted(p.name for p in runs.iterdir()) == ["one", "two"]


TRAIN_SCRIPT = """
    from cnnlab import runs
    from cnnlab.engine.config import TrainConfig
    from kill_at import KillAt  # tests/kill_at.py; rank 0 alone gets a callback, the other rank then stops

    config = TrainConfig(epochs=3, batch_size=16, seed=3, device="cpu")
    runs.train("net.yaml", "digits", config, out="runs", name="{name}", callback={callback})
"""


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_uninterrupted_weights(tmp_path):
    (tmp_path / "net.yaml").write_text(DROPOUT)  # dropout: each rank's own RNG must come back
    whole = finish(launch(["-c", textwrap.dedent(TRAIN_SCRIPT.format(name="whole", callback="None"))], tmp_path))
    assert [rc for rc, _, _ in whole] == [0, 0], whole
    killed = finish(launch(["-c", textwrap.dedent(TRAIN_SCRIPT.format(name="killed", callback="KillAt(2, 25)"))],
                           tmp_path))
    assert killed[0][0] == -signal.SIGKILL and killed[1][0] != 0
    runs = tmp_path / "runs"
    assert json.loads((runs / "killed/history.json").read_text())[-1]["epoch"] == 1
    resumed = torchrun(["train", "--resume", "runs/killed"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (runs / "whole/model.safetensors").read_bytes() == (runs / "killed/model.safetensors").read_bytes()
    assert strip_times(read_metrics(runs / "whole")) == strip_times(read_metrics(runs / "killed"))


def _start_long_run(tmp_path: Path, **extra) -> list[subprocess.Popen]:
    (tmp_path / "net.yaml").write_text(DENSE)
    processes = launch(["-m", "cnnlab", "train", "net.yaml", *FLAGS, "--epochs", "5000", "--name", "r"], tmp_path,
                       **extra)
    deadline = time.monotonic() + 120
    while not (tmp_path / "runs/r/checkpoint.pt").exists():
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), finish(processes, 5)
        time.sleep(0.05)
    return processes


@pytest.mark.slow
@pytest.mark.parametrize("victim", [0, 1])
def test_a_killed_process_stops_the_other_with_one_error_line(tmp_path, victim):
    processes = _start_long_run(tmp_path)
    try:
        processes[victim].send_signal(signal.SIGKILL)
        rc, _, err = finish([processes[1 - victim]])[0]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(f"cnnlab: error: rank {1 - victim} of 2: another process")
    assert "Timed out" not in err  # noticed by the lost connection, at once, not after the group's timeout
    assert (tmp_path / "runs/r/checkpoint.pt").exists()  # the last epoch's checkpoint stays, for --resume


def _stop_after_the_first_checkpoint(tmp_path: Path, seconds: int) -> tuple[int, str] | None:
    """A long two-process run with a ``seconds`` timeout whose rank 1 is stopped (SIGSTOP) once the first
    checkpoint is written: rank 0's status and stderr; None where a process ended before that on the timeout
    (a wait of the healthy run outlasted it: a loaded machine)."""
    tmp_path.mkdir()
    (tmp_path / "net.yaml").write_text(DENSE)
    processes = launch(["-m", "cnnlab", "train", "net.yaml", *FLAGS, "--epochs", "5000", "--name", "r"], tmp_path,
                       CNNLAB_DIST_TIMEOUT=str(seconds))
    try:
        while not (tmp_path / "runs/r/checkpoint.pt").exists():
            if any(process.poll() is not None for process in processes):
                ended = finish(processes)
                assert any(f"Timed out waiting {seconds * 1000}ms" in err for _, _, err in ended), ended
                return None
            time.sleep(0.05)
        processes[1].send_signal(signal.SIGSTOP)
        rc, _, err = finish([processes[0]], timeout=240 + 10 * seconds)[0]  # a guard against a hang, no more
        return rc, err
    finally:
        for process in processes:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_process_that_hangs_is_noticed_within_the_timeout(tmp_path):
    # 3 s; where a healthy wait outlasts that on this machine, again with twice as long as that try ran
    # (longer than any of its waits), so the test holds on a busy machine and still takes seconds on a quiet one.
    seconds, outcome = 3, None
    for attempt in range(4):
        started = time.monotonic()
        outcome = _stop_after_the_first_checkpoint(tmp_path / f"try{attempt}", seconds)
        if outcome is not None:
            break
        seconds = math.ceil(2 * (time.monotonic() - started))
    assert outcome is not None, "every try's timeout fired before a process was stopped"
    rc, err = outcome
    assert rc == 2 and "rank 0 of 2: another process of this training stopped" in err
    assert f"Timed out waiting {seconds * 1000}ms" in err, err  # the timeout set noticed it, not another one


@pytest.mark.slow
def test_rank_0s_error_stops_every_rank_and_a_bad_batch_is_refused_before_any_folder(tmp_path):
    (tmp_path / "net.yaml").write_text(DENSE)
    (tmp_path / "runs/taken").mkdir(parents=True)  # not a run: rank 0 refuses to adopt it
    refused = finish(launch(["-m", "cnnlab", "train", "net.yaml", *FLAGS, "--name", "taken"], tmp_path))
    assert [rc for rc, _, _ in refused] == [2, 2]
    assert refused[0][2].startswith("cnnlab: error: runs/taken: run directory exists")
    assert refused[1][2].rstrip().endswith("(reported by rank 0)") and refused[1][2].count("\n") == 1
    odd = finish(launch(["-m", "cnnlab", "train", "net.yaml", *FLAGS, "--batch-size", "33", "--out", "odd"],
                        tmp_path))
    for rc, _, err in odd:
        assert rc == 2 and err == ("cnnlab: error: --batch-size 33 does not split among 2 processes: it is the "
                                   "global batch (each process takes batch/2 images per step); use a multiple of "
                                   "2, such as 32 or 34\n")
    assert not (tmp_path / "odd").exists()


@pytest.mark.slow
def test_compare_under_torchrun_trains_each_run_with_both_processes(tmp_path):
    (tmp_path / "dense.yaml").write_text(DENSE)
    (tmp_path / "conv.yaml").write_text(CONV)
    options = ["compare", "dense.yaml", "conv.yaml", *FLAGS, "--epochs", "1", "--out", "cmp", "--name", "c"]
    first = torchrun(options, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("test accuracy difference") == 1  # rank 0 alone prints and reports
    folder = tmp_path / "cmp/c"
    assert (folder / "report.html").is_file() and (folder / "comparison.json").is_file()
    for run in (folder / "runs").iterdir():
        assert json.loads((run / "manifest.json").read_text())["processes"]["world_size"] == 2
    again = torchrun([*options, "--json"], tmp_path)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout[again.stdout.index("{"):])
    assert [run["status"] for model in result["models"] for run in model["runs"]] == ["reused", "reused"]
