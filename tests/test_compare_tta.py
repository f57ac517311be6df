"""``cnnlab compare --tta``: every run also scored with test-time augmentation, in a column of its own."""

import contextlib
import io
import json
import re

import pytest

from cnnlab import runs
from cnnlab.cli.main import main
from cnnlab.engine.tta import AugmentationError
from cnnlab.experiment import compare
from cnnlab.experiment.results import RunMeasurements
from test_compare import run_of


def _compare(out, *extra):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["compare", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--quiet", *extra])
    assert code == 0
    return out / "compare-mlp-cnn-digits", buffer.getvalue().split("\n\nreport:")[0]


@pytest.fixture(scope="module")
def plain_then_flipped(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp-tta")
    _, plain = _compare(out)
    folder, flipped = _compare(out, "--tta", "flip")  # the same runs, reused: scored again
    return folder, plain, flipped


def test_the_column_holds_each_run_scored_as_evaluate_tta_scores_it(plain_then_flipped):
    folder, plain, flipped = plain_then_flipped
    assert "test acc (flip)" not in plain and "test acc (flip)" in flipped
    header, _, *rows = flipped.splitlines()
    assert re.search(r"final val acc +test acc +test acc \(flip\) +test loss$", header)
    table = {row.split()[0]: row.split() for row in rows if row.startswith(("mlp ", "cnn "))}
    for spec in ("mlp", "cnn"):
        run = run_of(folder, spec)
        assert table[spec][7] == f"{runs.evaluate(run, tta='flip').accuracy:.4f}"
        assert table[spec][6] == f"{runs.evaluate(run).accuracy:.4f}"  # the plain column is unchanged
    assert "(test-time augmentation, --tta flip); the other columns are without it" in flipped


def test_the_record_and_report_say_so(plain_then_flipped):
    folder, plain, flipped = plain_then_flipped
    record = json.loads((folder / "comparison.json").read_text())
    for model in record["models"]:
        (run,) = model["runs"]
        assert run["status"] == "reused" and run["tta"] == "flip"
        assert model["tta_accuracy"] == {"mean": run["tta_accuracy"], "std": None, "values": [run["tta_accuracy"]]}
    markdown = (folder / "report.md").read_text()
    assert "| model | test acc | test acc (flip) | test loss |" in markdown
    assert "the other columns, and everything below, are without it" in markdown


def test_a_rerun_without_tta_drops_the_column(plain_then_flipped):
    folder, plain, _ = plain_then_flipped
    _, again = _compare(folder.parent)
    assert again == plain
    record = json.loads((folder / "comparison.json").read_text())
    assert all("tta_accuracy" not in model and model["runs"][0]["tta"] is None for model in record["models"])


def test_an_unknown_augmentation_is_refused_before_any_folder(tmp_path):
    with pytest.raises(AugmentationError, match="unknown tta 'mirror'"):
        compare(["mlp", "cnn"], "digits", out=tmp_path, tta="mirror")
    assert list(tmp_path.iterdir()) == []


def test_a_cache_entry_from_before_tta_reads_back_without_it():
    measured = RunMeasurements.from_dict({"test_accuracy": 0.5, "test_loss": 1.0, "predictions": [0, 1],
                                          "deep": False, "shift_accuracy": None, "filters": None}, 2, 2)
    assert measured.tta_accuracy is None


def test_a_cache_entry_keyed_for_tta_but_without_its_score_is_measured_again(plain_then_flipped, monkeypatch):
    from cnnlab.experiment import analysis

    folder, _, flipped = plain_then_flipped
    _compare(folder.parent, "--tta", "flip")  # the cache now holds the flipped measurements
    entry = folder / "analyses" / f"{run_of(folder, 'mlp').name}.json"
    record = json.loads(entry.read_text())
    record["measurements"]["tta_accuracy"] = None
    entry.write_text(json.dumps(record))
    measured = []
    real = analysis._measure
    monkeypatch.setattr(analysis, "_measure", lambda *args: measured.append(args[0].name) or real(*args))
    _, again = _compare(folder.parent, "--tta", "flip")
    assert measured == [run_of(folder, "mlp").name] and again == flipped


@pytest.mark.parametrize("planted", [5.0, -0.5, True, "0.9", float("nan"), None])
def test_a_planted_score_in_the_cache_is_measured_again(plain_then_flipped, monkeypatch, planted):
    from cnnlab.experiment import analysis

    folder, _, flipped = plain_then_flipped
    _compare(folder.parent, "--tta", "flip")
    entry = folder / "analyses" / f"{run_of(folder, 'cnn').name}.json"
    record = json.loads(entry.read_text())
    record["measurements"]["tta_accuracy"] = planted
    entry.write_text(json.dumps(record))
    measured, real = [], analysis._measure
    monkeypatch.setattr(analysis, "_measure", lambda *args: measured.append(args[0].name) or real(*args))
    _, again = _compare(folder.parent, "--tta", "flip")
    assert measured == [run_of(folder, "cnn").name] and again == flipped
    json.loads((folder / "comparison.json").read_text(), parse_constant=pytest.fail)  # no bare NaN written


def test_a_bf16_run_is_scored_in_bf16_as_cnnlab_evaluate_scores_it(tmp_path, monkeypatch):
    from test_precision import WITH_BF16, fake_cpu

    fake_cpu(monkeypatch, tmp_path, WITH_BF16)  # bf16 units, as far as cnnlab can tell, on any machine
    folder, printed = _compare(tmp_path, "--precision", "bf16", "--tta", "flip")
    table = {row.split()[0]: row.split() for row in printed.splitlines() if row.startswith(("mlp ", "cnn "))}
    for spec in ("mlp", "cnn"):
        run = run_of(folder, spec)
        plain, flipped = runs.evaluate(run), runs.evaluate(run, tta="flip")
        assert plain.precision == "bf16"
        assert table[spec][6:9] == [f"{plain.accuracy:.4f}", f"{flipped.accuracy:.4f}", f"{plain.loss:.4f}"]


def test_an_edited_accuracy_that_its_predictions_do_not_score_is_measured_again(plain_then_flipped, monkeypatch):
    from cnnlab.experiment import analysis

    folder, _, flipped = plain_then_flipped
    _compare(folder.parent, "--tta", "flip")
    entry = folder / "analyses" / f"{run_of(folder, 'mlp').name}.json"
    record = json.loads(entry.read_text())
    record["measurements"]["test_accuracy"] = 0.99 if record["measurements"]["test_accuracy"] != 0.99 else 0.5
    entry.write_text(json.dumps(record))
    measured, real = [], analysis._measure
    monkeypatch.setattr(analysis, "_measure", lambda *args: measured.append(args[0].name) or real(*args))
    _, again = _compare(folder.parent, "--tta", "flip")
    assert measured == [run_of(folder, "mlp").name] and again == flipped
