"""CPU threads: --threads, the thread share of concurrent jobs, and how idle OpenMP threads wait."""

import json
import os
import subprocess
import sys

import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.engine.threads import (
    WAIT_VARIABLES,
    ThreadsError,
    available_cores,
    check_count,
    describe_wait,
    environment,
    prefer_short_spin,
    threads_per_job,
    using_threads,
    worker_environment,
)

from fixtures import assert_error_line

FAST = ["--dataset", "digits", "--epochs", "1", "--quiet"]


@pytest.mark.parametrize(("jobs", "cores", "threads"), [(1, 8, 8), (2, 8, 4), (3, 8, 2), (2, 2, 1), (3, 2, 1)])
def test_jobs_share_the_cores(jobs, cores, threads):
    assert threads_per_job(jobs, cores) == threads


def test_available_cores_follow_the_affinity():
    assert available_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", [0, -1, True, "2", 1.5])
def test_counts_must_be_positive_integers(value):
    with pytest.raises(ThreadsError, match="--jobs must be a positive integer"):
        check_count(value, "--jobs")


def test_short_spin_unless_the_user_chose_how_threads_wait():
    environ = {}
    assert prefer_short_spin("cpu", environ) and environ == {"GOMP_SPINCOUNT": "3000"}
    assert describe_wait(environ) == "GOMP_SPINCOUNT=3000" and describe_wait({}) == "default"
    for name, value in (("OMP_WAIT_POLICY", "PASSIVE"), ("GOMP_SPINCOUNT", "0"), ("KMP_BLOCKTIME", "0")):
        chosen = {name: value}
        assert not prefer_short_spin("auto", chosen) and chosen == {name: value}
    on_gpu = {}
    assert not prefer_short_spin("cuda", on_gpu) and on_gpu == {}


def test_worker_environment_gives_the_share_and_keeps_a_chosen_wait():
    assert worker_environment(3, "cpu", {}) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3",
                                                 "OPENBLAS_NUM_THREADS": "3", "GOMP_SPINCOUNT": "3000"}
    chosen = worker_environment(1, "cpu", {"OMP_WAIT_POLICY": "ACTIVE", "HOME": "/x"})
    assert chosen["OMP_WAIT_POLICY"] == "ACTIVE" and "GOMP_SPINCOUNT" not in chosen and "HOME" not in chosen
    assert not set(WAIT_VARIABLES) & set(worker_environment(1, "cuda", {}))


def test_environment_is_restored(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with environment({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}):
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ


def test_using_threads_sets_and_restores_torch():
    before = torch.get_num_threads()
    with using_threads(1) as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with using_threads(None) as threads:
        assert threads == before


def test_threads_zero_is_one_error_line(tmp_path, capsys):
    assert main(["train", "mlp", *FAST, "--threads", "0", "--out", str(tmp_path)]) == 2
    assert_error_line(capsys.readouterr().err, "--threads must be a positive integer")
    assert not any(tmp_path.iterdir())


def _train_in_a_new_process(out, env_policy: str | None, *options: str) -> tuple[dict, str]:
    """``cnnlab train`` in a fresh process that has OpenMP print its settings as it loads: (manifest, stderr)."""
    env = {key: value for key, value in os.environ.items() if key not in WAIT_VARIABLES}
    # libgomp prints its settings as torch loads it, among them the spin count it uses (0 for PASSIVE,
    # 300000 when nothing is set); its OMP_WAIT_POLICY line says PASSIVE for anything but ACTIVE
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    if env_policy:
        env["OMP_WAIT_POLICY"] = env_policy
    done = subprocess.run([sys.executable, "-m", "cnnlab", "train", "mlp", *FAST, "--out", str(out), "--name", "run",
                           *options], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "run" / "manifest.json").read_text()), done.stderr


def test_cli_starts_openmp_with_a_short_spin_and_the_threads_asked(tmp_path):
    manifest, err = _train_in_a_new_process(tmp_path, None, "--threads", "1", "--device", "cpu")
    assert "GOMP_SPINCOUNT = '3000'" in err and "GOMP_SPINCOUNT = '300000'" not in err, err
    assert manifest["threads"] == 1


def test_cli_keeps_the_users_wait_policy(tmp_path):
    manifest, err = _train_in_a_new_process(tmp_path, "PASSIVE")
    assert "GOMP_SPINCOUNT = '0'" in err and "GOMP_SPINCOUNT = '3000'" not in err, err  # PASSIVE: no spin
    fresh = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True)
    assert manifest["threads"] == int(fresh.stdout)  # the cores torch sees, unchanged


def test_threads_beyond_four_per_core_are_refused_saying_the_cap(tmp_path, capsys):
    from cnnlab.engine.threads import THREADS_PER_CORE, ThreadsError, available_cores, check_threads, set_threads
    from cnnlab.experiment.executor import ExecutorOptions

    cap = THREADS_PER_CORE * available_cores()
    assert check_threads(8, "--threads", cores=2) == 8
    with pytest.raises(ThreadsError, match=r"--threads 9: at most 8 here \(4 per core, on the 2 core\(s\)"):
        check_threads(9, "--threads", cores=2)
    assert main(["train", "mlp", *FAST, "--threads", "9999", "--out", str(tmp_path)]) == 2
    assert_error_line(capsys.readouterr().err, f"--threads 9999: at most {cap} here")
    assert not any(tmp_path.iterdir())
    before = torch.get_num_threads()
    with pytest.raises(ThreadsError, match=f"threads {cap + 1}: at most {cap} here"):
        set_threads(cap + 1)
    assert torch.get_num_threads() == before
    with pytest.raises(ThreadsError, match="--threads 9999: at most"):
        ExecutorOptions("local", jobs=1, threads=9999).validate()
