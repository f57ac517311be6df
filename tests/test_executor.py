"""Many runs at once: a comparison's runs in a process pool or on a Dask LocalCluster, resumable.

Every comparison here trains with one torch thread per run: torch's CPU results depend on
the thread count (it splits the sums differently), so the sequential run and the
concurrent ones get the same count, and then the same numbers.
"""

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.engine.checkpoint import WEIGHTS
from cnnlab.engine.threads import WAIT_VARIABLES, threads_per_job
from cnnlab.experiment.executor import ExecutorError, ExecutorOptions, RunJob, run_jobs
from cnnlab.net.resolve import resolve_spec
from cnnlab.runs.directory import create_marked
from cnnlab.runs.records import read_config, spec_digest

from fixtures import assert_error_line

COMMON = ["--dataset", "digits", "--epochs", "1", "--seeds", "2", "--threads", "1", "--quiet"]
FOLDER = "compare-mlp-cnn-digits"


def compare_cli(out: Path, *options: str) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["compare", *COMMON, "--out", str(out), *options])
    return code, buffer.getvalue()


def table(printed: str) -> list[list[str]]:
    """The printed results without the s/epoch cells (times differ between any two runs) or the report's paths."""
    lines = printed.split("\nreport:")[0].strip().splitlines()
    return [line.split()[:3] + line.split()[6:] if line.startswith(("mlp ", "cnn ")) else line.split()
            for line in lines]


def numbers(folder: Path) -> dict:
    """Each run's results in comparison.json, less the times."""
    record = json.loads((folder / "comparison.json").read_text())
    timing = ("time", "train_time", "images_per_second", "seconds_per_epoch")
    return {Path(run["run_dir"]).name: {key: value for key, value in run.items()
                                        if key not in (*timing, "history", "run_dir", "status")}
            | {"history": [{k: v for k, v in row.items() if k not in timing} for row in run["history"]]}
            for model in record["models"] for run in model["runs"]}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequential")
    code, printed = compare_cli(out)
    assert code == 0
    return out / FOLDER, printed


@pytest.mark.slow
@pytest.mark.parametrize("options", [["--executor", "dask", "--jobs", "2"], ["--executor", "local", "--jobs", "2"]])
def test_concurrent_runs_give_the_sequential_table(sequential, tmp_path, options):
    folder, printed = sequential
    code, concurrent = compare_cli(tmp_path, *options)
    assert code == 0
    assert table(concurrent) == table(printed)
    assert len(table(printed)) >= 5 and numbers(tmp_path / FOLDER) == numbers(folder)
    for run in (tmp_path / FOLDER / "runs").iterdir():
        assert json.loads((run / "manifest.json").read_text())["threads"] == 1


@pytest.mark.slow
def test_partial_failure_then_rerun_trains_only_the_missing_runs(sequential, tmp_path, capsys):
    folder = tmp_path / FOLDER
    create_marked(folder, "comparison")
    blocker = folder / "runs" / f"cnn-{spec_digest(resolve_spec('cnn'))[:10]}-seed1"
    blocker.mkdir(parents=True)  # not a run cnnlab made: that run fails, the three others finish
    code, _ = compare_cli(tmp_path, "--executor", "local", "--jobs", "2")
    assert code == 2
    assert_error_line(capsys.readouterr().err, "1 of 4 runs failed (cnn seed 1: ", "run the same command again")
    finished = sorted(run.name for run in (folder / "runs").iterdir() if (run / WEIGHTS).exists())
    assert finished == sorted(run.name for run in (folder / "runs").iterdir() if run != blocker)
    assert len(finished) == 3
    blocker.rmdir()
    mlp1 = next((folder / "runs").glob("mlp-*-seed1"))
    (mlp1 / WEIGHTS).unlink()  # stopped after its last checkpoint: resumed, not retrained
    kept = {name: (folder / "runs" / name / WEIGHTS).stat().st_mtime_ns for name in finished if name != mlp1.name}
    code, printed = compare_cli(tmp_path, "--executor", "dask", "--jobs", "2", "--json")
    assert code == 0
    statuses = {Path(run["run_dir"]).name: run["status"] for model in json.loads(printed)["models"]
                for run in model["runs"]}
    assert statuses == {**dict.fromkeys(kept, "reused"), mlp1.name: "resumed", blocker.name: "trained"}
    assert {name: (folder / "runs" / name / WEIGHTS).stat().st_mtime_ns for name in kept} == kept
    assert numbers(folder) == numbers(sequential[0])


def jobs_on(folder: Path) -> list[RunJob]:
    """Jobs for the finished runs of a comparison (each worker then loads the data and reuses its run)."""
    jobs = []
    for run in sorted((folder / "runs").iterdir()):
        saved = read_config(run)
        jobs.append(RunJob(str(run), run.name, saved["spec"], saved["train"]["seed"], saved["dataset"],
                           saved["dataset_options"], saved["train"], None))
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "dask"])
def test_workers_start_with_their_thread_share_and_short_spin(sequential, monkeypatch, kind):
    for name in WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    notes = []
    results = run_jobs(jobs_on(sequential[0]), ExecutorOptions(kind, jobs=2).validate(), notes.append)
    assert [result.status for result in results] == ["reused"] * 4 and len(notes) == 4
    assert {(result.threads, result.wait) for result in results} == {(threads_per_job(2), "GOMP_SPINCOUNT=3000")}
    assert dict(os.environ) == before  # what the pool or the cluster set for its workers is undone


@pytest.mark.slow
def test_a_wait_policy_the_user_set_is_kept(sequential, monkeypatch):
    for name in WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    results = run_jobs(jobs_on(sequential[0])[:1], ExecutorOptions("local", jobs=1, threads=1), lambda _: None)
    assert (results[0].status, results[0].threads, results[0].wait) == ("reused", 1, "OMP_WAIT_POLICY=PASSIVE")


def test_an_unreachable_scheduler_is_one_error_line(tmp_path, capsys):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code, _ = compare_cli(tmp_path, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert code == 2
    assert_error_line(capsys.readouterr().err, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")


@pytest.mark.parametrize(("options", "message"), [
    (["--jobs", "2"], "--jobs needs --executor local or dask"),
    (["--scheduler", "tcp://h:1"], "--scheduler needs --executor dask"),
    (["--executor", "dask", "--jobs", "2", "--scheduler", "tcp://h:1"], "a --scheduler's cluster has its own"),
    (["--executor", "local", "--jobs", "0"], "--jobs must be a positive integer"),
])
def test_executor_options_that_contradict_are_refused_before_any_folder(tmp_path, capsys, options, message):
    code, _ = compare_cli(tmp_path / "out", *options)
    assert code == 2
    assert_error_line(capsys.readouterr().err, message)
    assert not (tmp_path / "out").exists()


def test_executor_is_refused_under_torchrun(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _ = compare_cli(tmp_path / "out", "--executor", "local")
    assert code == 2
    assert_error_line(capsys.readouterr().err, "under torchrun", "use one or the other")
    assert not (tmp_path / "out").exists()


def test_executor_options_validate():
    assert ExecutorOptions().validate().kind == "sequential"
    assert ExecutorOptions("local").jobs_for(1) == 1
    with pytest.raises(ExecutorError, match="unknown executor 'ray'"):
        ExecutorOptions("ray").validate()


def test_without_dask_the_error_says_what_to_install(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    code, _ = compare_cli(tmp_path / "out", "--executor", "dask")
    assert code == 2
    assert_error_line(capsys.readouterr().err, "pip install 'cnnlab[dask]'")
    assert not (tmp_path / "out").exists()
