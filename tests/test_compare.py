"""``cnnlab compare`` end to end on digits: numbers from the runs, resumption, the report."""

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from cnnlab import runs
from cnnlab.cli.main import main
from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.engine.config import TrainConfig
from cnnlab.experiment import compare
from cnnlab.runs.directory import RunError, read_metrics

from browser import CSP, _run, chromium, inspect_page, screenshot

# Injected into a copy of the report: where the answer, the table and the sample grids stand in the
# page, every figure's images, and whether each image decodes to something other than one flat colour.
REPORT_PROBE = """<script>
window.addEventListener('load', function () {
  var all = Array.prototype.slice.call(document.getElementsByTagName('*'));
  var at = function (selector) { var e = document.querySelector(selector); return e ? all.indexOf(e) : -1; };
  var images = Array.prototype.map.call(document.images, function (img) {
    var canvas = document.createElement('canvas'), flat = true;
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    var context = canvas.getContext('2d'); context.drawImage(img, 0, 0);
    var d = canvas.width ? context.getImageData(0, 0, canvas.width, canvas.height).data : [];
    for (var i = 4; i < d.length && flat; i += 4) { flat = d[i] === d[0] && d[i + 1] === d[1] && d[i + 2] === d[2]; }
    return {alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, complete: img.complete, flat: flat};
  });
  var figures = Array.prototype.map.call(document.querySelectorAll('figure'), function (f) {
    return f.getElementsByTagName('img').length; });
  var out = document.createElement('pre'); out.id = 'report-probe';
  out.textContent = JSON.stringify({headline: at('.headline'), table: at('table'), curves: at('#curves'),
    samples: at('figure.samples'), convolutions: at('#convolutions'), looking: at('#where-they-look'),
    dataset: at('#dataset'), images: images, figures: figures});
  document.body.appendChild(out);
});
</script>"""


def probe_report(page: Path, work: Path) -> dict:
    """Open a probed copy of the report (no network: the same policy as inspect_page) and read the probe."""
    text = page.read_text().replace("<head>", "<head>" + CSP, 1).replace("</body>", REPORT_PROBE + "</body>", 1)
    copy = work / f"report-probe-{page.name}"
    copy.write_text(text)
    result = _run(["--dump-dom", copy.as_uri()])
    match = re.search(r'<pre id="report-probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the probe did not report; chromium said: {result.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def section_page(page: Path, anchor: str, work: Path) -> Path:
    """A copy of the report holding only the section at ``anchor`` (a screenshot shows a page's top)."""
    text = page.read_text()
    start, begin = text.index("<body>") + len("<body>"), text.index(f'<h2 id="{anchor}">')
    end = text.find("<h2 id=", begin + 1)
    copy = work / f"section-{anchor}.html"
    copy.write_text(text[:start] + text[begin:end if end > 0 else len(text)] + "</body></html>")
    return copy


def drawn_share(picture: Path) -> float:
    """The share of a screenshot's pixels that are not the page's white."""
    from PIL import Image

    pixels = np.asarray(Image.open(picture).convert("L"))
    return float(np.mean(pixels < 250))


def run_of(folder: Path, spec: str, seed: int = 0) -> Path:
    """A model's run folder: named by the spec, a hash of its content, and the seed."""
    (found,) = (folder / "runs").glob(f"{spec}-*-seed{seed}")
    return found


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
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
        assert set(run["shift_accuracy"]) == {"0", "1"}  # up to an eighth of the 8-pixel side
        assert not {"predictions", "filters", "layer_params", "deep"} & set(run)
        manifest = json.loads((Path(run["run_dir"]) / "manifest.json").read_text())
        assert run["versions"] == manifest["versions"] and run["threads"] == manifest["threads"]
        assert run["split_description"] == manifest["split"]["description"]
    assert record["dataset"]["name"] == "digits" and record["dataset"]["split"]["validation"]["0"] == 29
    assert "data" not in record
    # the maps' numbers (not the maps): which test images, each map's sanity checks, what was skipped and why
    looked = record["explanations"]
    assert len(looked["images"]) == len(looked["right"]) > 0 and looked["reason"] is None
    assert [(r["spec"], r["method"]) for r in looked["readings"]] == [("cnn", "gradcam"), ("mlp", "gradient"),
                                                                     ("cnn", "gradient")]
    assert all(-1 <= r["randomisation"]["spearman"] <= 1 and "maps" not in r for r in looked["readings"])
    assert looked["skipped"] == [["mlp", "gradcam", "it has no convolution layer, and Grad-CAM weighs a "
                                  "convolution's feature maps"]]


def test_report_files_and_sections(finished):
    folder, _ = finished
    markdown = (folder / "report.md").read_text()
    headings = re.findall(r"^## (.+)$", markdown, re.M)
    assert headings == ["Results side by side", "Learning curves", "Test results by class", "Why convolutions",
                        "Where each network looks", "The dataset", "The models", "Reproducibility"]
    # the maps of the images the models disagree on, with their sanity numbers (what each says: test_report_maps)
    looking = markdown[markdown.index("## Where each network looks"):markdown.index("## The dataset")]
    assert "mlp has no Grad-CAM: it has no convolution layer" in looking and "figures/where-they-look.png" in looking
    assert re.search(r"^\| cnn Grad-CAM \| −?\d\.\d\d \| −?\d\.\d\d \| −?\d\.\d\d \| \d+\.\d% \|$", looking, re.M)
    for name in ("mlp saliency", "cnn saliency"):
        assert re.search(rf"^\| {name} \| ", looking, re.M)
    # which sentence depends on the CPU's float summation order (on some CPUs the two tie on digits)
    assert re.search(r"^\*\*((cnn|mlp) beats (mlp|cnn) by \d+\.\d points of test accuracy|"
                     r"(cnn|mlp) and (mlp|cnn) score the same test accuracy)\*\*", markdown, re.M)
    assert "One seed per model: how far the accuracy moves" in markdown
    assert "up to 1 pixel, 1/8 of the 8-pixel side" in markdown
    assert "3*3*1*32 + 32" in markdown  # the CNN's summary with formulas
    for image in re.findall(r"\]\((figures/[^)]+)\)", markdown):
        assert (folder / image).read_bytes()[:4] == b"\x89PNG"
    page = (folder / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert all(alt for alt in re.findall(r'<img [^>]*alt="([^"]*)"', page))
    import torch

    versions = json.loads((run_of(folder, "cnn") / "manifest.json").read_text())["versions"]
    assert f"Versions (recorded by every run): cnnlab {versions['cnnlab']}, torch {versions['torch']}" in markdown
    assert torch.__version__ in markdown  # the same machine here; test_report pins that the runs' own are shown


def test_rerun_reuses_the_analyses(finished, monkeypatch, capsys):
    from cnnlab.experiment import analysis

    folder, printed = finished
    cached = {path.name: path.read_bytes() for path in (folder / "analyses").iterdir()}
    assert sorted(cached) == sorted(f"{run_of(folder, spec).name}.json" for spec in ("mlp", "cnn"))

    def refuse(*args):
        raise AssertionError("measured again although the weights did not change")

    monkeypatch.setattr(analysis, "_measure", refuse)
    command = ["compare", "--dataset", "digits", "--epochs", "3", "--out", str(folder.parent), "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()) as again:
        assert main(command) == 0  # the fixture's command, run again
    assert again.getvalue().split("\n\nreport:")[0] == printed.split("\n\nreport:")[0]
    record = json.loads((folder / "comparison.json").read_text())
    assert [m["runs"][0]["status"] for m in record["models"]] == ["reused", "reused"]
    # a cache entry made on other weights is not used: it is measured again (here: refused)
    name = f"{run_of(folder, 'mlp').name}.json"
    stale = json.loads(cached[name])
    stale["key"]["weights_sha256"] = "0" * 64
    (folder / "analyses" / name).write_text(json.dumps(stale))
    with pytest.raises(AssertionError, match="measured again"), contextlib.redirect_stdout(io.StringIO()):
        main(command)
    # a link planted in its place is neither read nor written through
    target = folder.parent / "elsewhere.json"
    target.write_bytes(cached[name])
    (folder / "analyses" / name).unlink()
    (folder / "analyses" / name).symlink_to(target)
    monkeypatch.undo()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(command) == 2
    assert "symbolic link" in capsys.readouterr().err and target.read_bytes() == cached[name]
    (folder / "analyses" / name).unlink()
    (folder / "analyses" / name).write_bytes(cached[name])


def test_same_command_reuses_and_resumes(tmp_path, monkeypatch):
    from cnnlab import data as data_module

    class StopInSecondModel(TrainingCallback):
        def note(self, text):
            self.current = text

        def on_epoch_begin(self, epoch, epochs, steps): self.epoch = epoch
        def on_progress(self, step, steps, loss, accuracy):
            if self.current.startswith("== cnn") and self.epoch == 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the CNN's second epoch

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
    folder = tmp_path / "compare-mlp-tiny_cnn-digits"
    assert (run_of(folder, "tiny_cnn", 1) / "model.safetensors").exists()
    report = (folder / "report.md").read_text()
    assert re.search(r"95% CI −?\d+\.\d to −?\d+\.\d points, 2 seeds each, Welch p = ", report)
    assert "Confusion matrix of **mlp** (summed over seeds 0 and 1: 720 test predictions)" in report
    assert re.search(r"Per-class test accuracy \(mlp: seeds 0 and 1; \S*tiny\\_cnn\.yaml: seeds 0 and 1\)", report)
    assert ("Validation split, seed 0: stratified: a seeded shuffle (seed 0) holding out 20% of each class; "
            "seed 1: stratified: a seeded shuffle (seed 1) holding out 20% of each class.") in report
    assert "Test images one model gets wrong and the other right (seed 0 of each)" in report
    # the claims for convolutions are judged over every seed, with their spread, as the headline is
    assert re.search(r"mlp \(seeds 0 and 1, mean\): \d+\.\d% unshifted, .* ± ", report)
    assert re.search(r"Of the margin over guessing, .*95% CI −?\d+\.\d to −?\d+\.\d, 2 seeds each, Welch p = ", report)


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_html_report_in_a_real_browser(finished, tmp_path):
    folder, _ = finished
    seen = inspect_page(folder / "report.html", tmp_path)
    assert seen["fetched"] == [] and seen["violations"] == []
    probed = probe_report(folder / "report.html", tmp_path)
    assert 0 <= probed["headline"] < probed["table"] < probed["curves"] < probed["samples"]  # the answer first
    assert len(probed["images"]) >= 12
    for image in probed["images"]:  # every image decodes, and has something drawn on it
        assert image["complete"] and image["width"] > 0 and image["height"] > 0 and not image["flat"], image
    assert probed["figures"] and all(count == 1 for count in probed["figures"])  # no figure without its image
    assert probed["convolutions"] < probed["looking"] < probed["dataset"]  # the maps after the claims
    maps = [image for image in probed["images"] if image["alt"].startswith("Test images with each model's maps")]
    assert len(maps) == 1 and maps[0]["width"] > 300 and not maps[0]["flat"]
    for width, height in ((1280, 900), (390, 844)):  # laptop and phone
        shot = screenshot(folder / "report.html", tmp_path / f"report-{width}.png", width, height)
        assert shot.stat().st_size > 10_000
        section = screenshot(section_page(folder / "report.html", "where-they-look", tmp_path), tmp_path /
                             f"where-they-look-{width}.png", width, 2 * height)
        assert drawn_share(section) > 0.1  # the maps and the table, not a blank page
