"""The time-per-epoch estimate: measured past the warm-up, corrected after the first epoch."""

import io
import math
import re
from types import SimpleNamespace

import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.engine import estimate, session
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.loop import TensorData
from cnnlab.engine.records import EpochRecord, TrainingFacts
from cnnlab.presenters import progress
from cnnlab.presenters.progress import ProgressPrinter, format_seconds


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


def test_the_estimate_leaves_out_slow_first_steps(monkeypatch):
    clock = FakeClock()
    # 2 warm-up steps, then a window of steps still slow from first calls, then the steady pace.
    durations = iter([2.0, 2.0, 0.5, 0.5, 0.5] + [0.01] * 9)

    def fake_step(*args):
        clock.now += next(durations)

    monkeypatch.setattr(estimate, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(estimate, "train_step", fake_step)
    config = TrainConfig(batch_size=10)
    model = torch.nn.Linear(4, 3)
    data = TensorData(torch.zeros(95, 4), torch.zeros(95, dtype=torch.int64), torch.zeros(30, 4),
                      torch.zeros(30, dtype=torch.int64))
    seconds = estimate.estimate_epoch_seconds(session.new_state(model, config, 10), data, config)
    # steady: 10 steps of 0.01 s, plus validation (30 images, forward only: a third of a step's work each)
    assert seconds == pytest.approx(0.01 * math.ceil(95 / 10) + 0.01 / 10 * 30 / 3)
    assert next(durations, None) is None  # every planned step ran: 2 warm-up, 4 windows of 3


AUDIT = {"description": "stratified: a seeded shuffle (seed 0) holding out 20% of each class",
         "train": {"a": 8, "b": 8}, "validation": {"a": 2, "b": 2}, "test": {"a": 5, "b": 5}, "warnings": []}


def facts(audit: dict) -> TrainingFacts:
    return TrainingFacts(train_count=16, batch_size=4, epochs=5, run_dir="runs/x", split_audit=audit,
                         estimate_seconds=2.0)


def record(epoch: int, time: float, train_time: float) -> EpochRecord:
    return EpochRecord(epoch, 1.0, 0.5, None, None, time, train_time, 10.0, 0.001)


def test_a_comparison_prints_the_split_table_once():
    stream = io.StringIO()
    printer = ProgressPrinter(stream, bars=False)
    printer.on_train_begin(facts(AUDIT))
    printer.on_train_begin(facts({**AUDIT, "description": AUDIT["description"].replace("seed 0", "seed 1")}))
    assert stream.getvalue().count("split: ") == 1 and stream.getvalue().count("estimated time per epoch") == 2
    printer.on_train_begin(facts({**AUDIT, "validation": {"a": 3, "b": 1}}))  # another split: shown
    assert stream.getvalue().count("split: ") == 2


def test_after_the_first_epoch_the_remaining_time_is_measured_past_the_warm_up(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    stream = io.StringIO()
    printer = ProgressPrinter(stream, bars=False)
    printer.on_train_begin(facts(AUDIT))
    for epoch in (1, 2):
        printer.on_epoch_begin(epoch, 5, 100)
        for step, seconds in ((25, 10.0), (50, 1.0), (75, 1.0), (100, 1.0)):  # the first 25 steps warm up
            clock.now += seconds
            printer.on_progress(step, 100, 1.0, 0.5)
        printer.on_epoch_end(record(epoch, 15.0, 13.0), None)
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("estimated time for")]
    # 3 s for the 75 steps after the first report: 4 s for 100 steps, plus 2 s of validation
    assert lines == ["estimated time for the remaining 4 epochs: 24s (6.0s per epoch, measured on epoch 1)"]


def test_one_epoch_runs_print_no_remaining_time():
    stream = io.StringIO()
    printer = ProgressPrinter(stream, bars=False)
    printer.on_train_begin(facts(AUDIT))
    printer.on_epoch_begin(1, 1, 10)
    printer.on_progress(10, 10, 1.0, 0.5)
    printer.on_epoch_end(record(1, 1.0, 1.0), None)
    assert "remaining" not in stream.getvalue()


@pytest.mark.parametrize("seconds,text", [(0.061, "0.06s"), (1.84, "1.8s"), (66.4, "66s"), (334, "5m 34s"),
                                          (3599.6, "1h 00m"), (3900, "1h 05m")])
def test_durations_read_as_people_read_them(seconds, text):
    assert format_seconds(seconds) == text


def seconds_of(text: str) -> float:
    """``0.06s``, ``1.8s``, ``66s``, ``5m 34s``, ``1h 05m`` -> seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(value) * units[unit] for value, unit in re.findall(r"([\d.]+)([hms])", text))


@pytest.mark.slow
def test_the_printed_estimates_match_the_epochs_on_digits(tmp_path, capsys):
    threads = torch.get_num_threads()
    # One thread: on a loaded machine, two threads waiting on each other make single steps 10x slower at
    # random moments, which no estimate can foresee; the test is about what the estimate measures.
    torch.set_num_threads(1)
    try:
        assert main(["train", "cnn", "--dataset", "digits", "--epochs", "2", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    estimate = seconds_of(re.search(r"estimated time per epoch: (\S+)", err).group(1))
    first, second = (float(t) for t in re.findall(r"epoch \d/2 .* time ([\d.]+)s", err))
    remaining = seconds_of(re.search(r"estimated time for the remaining 1 epoch: (\S+)", err).group(1))
    assert first / 3 <= estimate <= first * 3, err
    assert second / 3 <= remaining <= second * 3, err
