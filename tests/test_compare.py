"""``cnnlab compare`` end to end on digits: numbers from the runs, resumption, the report."""

import json
import re
from pathlib import Path

import pytest

from cnnlab import runs
from cnnlab.cli.main import main
from cnnlab.engine.config import TrainConfig
from cnnlab.experiment import compare
from cnnlab.runs.directory import RunError, read_metrics

from browser import chromium, inspect_page, screenshot


def run_of(folder: Path, spec: str, seed: int = 0) -> Path:
    """A model's run folder: named by the spec, a hash of its content, and the seed."""
    (found,) = (folder / "runs").glob(f"{spec}-*-seed{seed}")
    return found


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    import contextlib
    import io
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["compare", "--dataset", "digits", "--epochs", "3", "--out", str(out), "--quiet"])
    assert code == 0
    return out / "compare-mlp-cnn-digits", buffer.getvalue()


def test_table_numbers_come_from_the_runs(finished):
    folder, printed = finished
    table = {line.split()[0]: line.split() for line in printed.splitlines() if line.startswith(("mlp ", "cnn "))}
    for spec in ("mlp", "cnn"):
        run = run_of(folder, spec)
        rows = read_metrics(run)
        cells = table[spec]
        # model params MACs s/epoch best-val final-val test-acc test-loss
        assert cells[4] == f"{max(r['val_accuracy'] for r in rows):.4f}"
        assert cells[5] == f"{rows[-1]['val_accuracy']:.4f}"
        assert cells[3] == f"{sum(r['time'] for r in rows) / len(rows):.2f}"
        evaluated = runs.evaluate(run)
        assert cells[6] == f"{evaluated.accuracy:.4f}"
        assert cells[7] == f"{evaluated.loss:.4f}"
    assert "one seed per model" in printed


def test_comparison_json_holds_the_results_not_the_arrays(finished):
    folder, printed = finished
    record = json.loads((folder / "comparison.json").read_text())
    assert [m["spec"] for m in record["models"]] == ["mlp", "cnn"]
    for model in record["models"]:
        run = model["runs"][0]
        assert model["test_accuracy"] == {"mean": run["test_accuracy"], "std": None,
                                          "values": [run["test_accuracy"]]}
        assert run["status"] == "trained" and run["seed"] == 0
        assert run["run_dir"] == str(run_of(folder, model["spec"]))
        assert f"-{model['spec_sha256'][:10]}-seed0" in run["run_dir"]
        assert sum(map(sum, run["confusion_matrix"])) == 360  # the digits test part
        assert set(run["shift_accuracy"]) == {"0", "1", "2", "3", "4"}
        assert not {"predictions", "filters", "layer_params", "deep"} & set(run)
    assert record["dataset"]["name"] == "digits" and record["dataset"]["split"]["validation"]["0"] == 29
    assert "data" not in record


def test_report_files_and_sections(finished):
    folder, _ = finished
    markdown = (folder / "report.md").read_text()
    for heading in ("The dataset", "The models", "Learning curves", "Test results", "Why convolutions",
                    "Reproducibility"):
        assert f"## {heading}" in markdown
    assert "3*3*1*32 + 32" in markdown  # the CNN's summary with formulas
    for image in re.findall(r"\]\((figures/[^)]+)\)", markdown):
        assert (folder / image).read_bytes()[:4] == b"\x89PNG"
    page = (folder / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert all(alt for alt in re.findall(r'<img [^>]*alt="([^"]*)"', page))


def test_same_command_reuses_and_resumes(tmp_path, monkeypatch):
    from cnnlab import data as data_module

    class StopInSecondModel:
        def note(self, text):
            self.current = text

        def on_train_begin(self, facts): pass
        def on_epoch_begin(self, epoch, epochs, steps): self.epoch = epoch
        def on_progress(self, step, steps, loss, accuracy):
            if self.current.startswith("== cnn") and self.epoch == 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the CNN's second epoch
        def on_epoch_end(self, record): pass

    config = TrainConfig(epochs=3)
    with pytest.raises(KeyboardInterrupt):
        compare(["mlp", "cnn"], "digits", config, out=tmp_path, callback=StopInSecondModel())
    folder = tmp_path / "compare-mlp-cnn-digits"
    mlp_weights = (run_of(folder, "mlp") / "model.safetensors").stat().st_mtime_ns
    loads = []
    real_load = data_module.load_dataset
    monkeypatch.setattr(data_module, "load_dataset", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    result = compare(["mlp", "cnn"], "digits", config, out=tmp_path)
    assert loads == [("digits",)]  # once, for the resumed training and every analysis alike
    statuses = {m.spec: m.first.status for m in result.models}
    assert statuses == {"mlp": "reused", "cnn": "resumed"}
    assert (run_of(folder, "mlp") / "model.safetensors").stat().st_mtime_ns == mlp_weights
    assert [r["epoch"] for r in read_metrics(run_of(folder, "cnn"))] == [1, 2, 3]
    with pytest.raises(RunError, match="the same spec twice"):
        compare(["mlp", "mlp"], "digits", config, out=tmp_path)
    with pytest.raises(RunError, match="a comparison with other options is there"):
        compare(["mlp", "cnn"], "digits", TrainConfig(epochs=2), out=tmp_path)


def test_several_seeds(tmp_path, capsys):
    spec = str(Path(__file__).parent / "golden" / "tiny_cnn.yaml")
    assert main(["compare", "mlp", spec, "--dataset", "digits", "--epochs", "1", "--seeds", "2",
                 "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"mlp .* 0\.\d{4} ± 0\.\d{4}", out)
    assert "Welch's t-test over 2 and 2 seeds" in out
    assert (run_of(tmp_path / "compare-mlp-tiny_cnn-digits", "tiny_cnn", 1) / "model.safetensors").exists()


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_html_report_in_a_real_browser(finished, tmp_path):
    folder, _ = finished
    seen = inspect_page(folder / "report.html", tmp_path)
    assert len(seen["images"]) >= 12
    assert all(image["complete"] and image["width"] > 0 for image in seen["images"]), seen["images"]
    assert seen["fetched"] == [] and seen["violations"] == []
    for width, height in ((1280, 900), (390, 844)):  # laptop and phone
        shot = screenshot(folder / "report.html", tmp_path / f"report-{width}.png", width, height)
        assert shot.stat().st_size > 10_000
