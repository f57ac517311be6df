"""The comparison report from hand-built results: what it says, in which order, escaped how.

Every number here is fixed, so the printed table is pinned by golden files and the report's
sentences can be checked word for word; no network is trained.
"""

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import markdown
import numpy as np
import pytest
from scipy import stats

from cnnlab.data.dataset import Dataset
from cnnlab.experiment.findings import contrast
from cnnlab.experiment.results import Comparison, DatasetFacts, DeepAnalysis, ModelResult, RunOutcome
from cnnlab.presenters.comparison import format_comparison
from cnnlab.report import write_report
from cnnlab.report.document import md_escape

HOSTILE = "a|b<script>"
TEST_LABELS = np.arange(60) % 3


def dataset(classes=(HOSTILE, "x*y", "plain"), side=8) -> Dataset:
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, size=(n, side, side, 1), dtype=np.uint8)  # noqa: E731
    return Dataset("toy", list(classes), images(90), np.arange(90) % 3, images(60), TEST_LABELS.copy(),
                   identity={"source": "hand-made", "location": "tests", "sha256": "0" * 64, "verified": "no"})


def predictions(wrong: int, guess_offset: int = 1, start: int = 0) -> np.ndarray:
    """The test labels with ``wrong`` of them (from ``start``) replaced by another class."""
    out = TEST_LABELS.copy()
    out[start:start + wrong] = (out[start:start + wrong] + guess_offset) % 3
    return out


def run(spec: str, seed: int, predicted: np.ndarray, *, loss=0.5, seconds=0.25, filters=None, deep=True,
        versions=None, drop=None) -> RunOutcome:
    """``drop``: the accuracy lost on images shifted by 1 pixel (by default 0.05 with filters, 0.3 without)."""
    accuracy = float(np.mean(predicted == TEST_LABELS))
    history = [{"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + 0.1 * e, "val_loss": 1.2 / e,
                "val_accuracy": 0.45 + 0.1 * e, "time": seconds} for e in (1, 2, 3)]
    drop = (0.05 if filters is not None else 0.3) if drop is None else drop
    analysis = DeepAnalysis([[0]], {}, [], {0: accuracy, 1: accuracy - drop},
                            predicted, filters, [("dense", 1234), ("dropout", 0)]) if deep else None
    return RunOutcome(Path(f"/nowhere/{spec}-seed{seed}"), "trained", seed, accuracy, loss, 0.8, 0.75, seconds,
                      history, 178_058 if spec == "mlp" else 357_610, 177_152 if spec == "mlp" else 2_448_384,
                      f"Model: {spec}", "cpu: test", analysis, predicted,
                      versions or {"cnnlab": "0.0.9", "torch": "9.9.9", "numpy": "1.0", "python": "3.0"}, 2,
                      f"stratified: a seeded shuffle (seed {seed}) holding out 20% of each class")


def comparison(folder: Path, models: dict[str, list[RunOutcome]], data: Dataset | None = None) -> Comparison:
    data = data or dataset()
    folder.mkdir(exist_ok=True)
    split = {"description": "x", "train": {c: 24 for c in data.class_names},
             "validation": {c: 6 for c in data.class_names}, "test": {c: 20 for c in data.class_names}}
    return Comparison(folder, [ModelResult(spec, runs) for spec, runs in models.items()],
                      DatasetFacts.of(data, split), data)


def filters_like(smooth: bool, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if not smooth:
        return rng.uniform(-1, 1, size=(16, 3, 3, 1)).astype(np.float32)
    ramp = np.linspace(-1, 1, 3)
    return np.stack([np.outer(ramp, np.ones(3)) * rng.choice([-1, 1]) for _ in range(16)])[..., None]


def one_seed(tmp_path, **kwargs) -> Comparison:
    return comparison(tmp_path / "one", {"mlp": [run("mlp", 0, predictions(18), loss=1.25, seconds=0.06)],
                                         "cnn": [run("cnn", 0, predictions(6, start=20), loss=0.3125,
                                                     seconds=1.5, filters=filters_like(True))]}, **kwargs)


def three_seeds(tmp_path) -> Comparison:
    return comparison(tmp_path / "three", {
        "mlp": [run("mlp", s, predictions(w), loss=loss) for s, w, loss in ((0, 18, 1.2), (1, 15, 1.1), (2, 21, 1.3))],
        "cnn": [run("cnn", s, predictions(w, start=20), loss=loss, filters=filters_like(True, s), drop=drop)
                for s, w, loss, drop in ((0, 6, 0.4, 0.05), (1, 9, 0.5, 0.1), (2, 3, 0.3, 0.0))]})


class Tables(HTMLParser):
    """Each table's rows, as the text of their cells."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell, self.scripts = [], None, 0

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts += 1
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def parsed(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    return parser


def test_printed_table_is_pinned(tmp_path, golden):
    for name, built in (("compare_one_seed.txt", one_seed(tmp_path)), ("compare_three_seeds.txt",
                                                                        three_seeds(tmp_path))):
        golden.check(name, format_comparison(built, contrast(*built.models)) + "\n")


def test_a_class_name_cannot_break_a_table_or_inject_html(tmp_path):
    built = one_seed(tmp_path)
    markdown_path, html_path = write_report(built, ["cnnlab", "compare", HOSTILE])
    text, page = markdown_path.read_text(), html_path.read_text()
    for source in (markdown.markdown(text, extensions=["tables"]), page):
        found = parsed(source)
        assert found.scripts == 0 and "<script" not in source
        per_class = next(table for table in found.tables if table[0][0] == "class")
        assert [row[0] for row in per_class[1:]] == [HOSTILE, "x*y", "plain"]  # shown as it is, in its cell
        for table in found.tables:
            assert {len(row) for row in table} == {len(table[0])}, table
    assert "a\\|b&lt;script&gt;" in text and "a|b&lt;script&gt;" in page


@pytest.mark.parametrize(("value", "escaped"), [
    ("a|b<script>", "a\\|b&lt;script&gt;"), ("**x**", "\\*\\*x\\*\\*"), ("1. item", "1\\. item"),
    ("- item", "\\- item"), ("[link](x)", "\\[link\\](x)"), ("line\nbreak", "line break"), ("&amp;", "&amp;amp;"),
])
def test_markdown_escaping(value, escaped):
    assert md_escape(value) == escaped
    rendered = markdown.markdown(md_escape(value), extensions=["tables"])  # as the report renders prose
    assert rendered == f"<p>{html.escape(' '.join(value.split()), quote=False)}</p>"


def test_one_seed_opens_with_the_answer_and_says_noise_is_not_measured(tmp_path):
    text = write_report(one_seed(tmp_path), ["cnnlab"])[0].read_text()
    opening = text.split("## ")[0]
    assert "**cnn beats mlp by 20.0 points of test accuracy** (90.0% against 70.0%, one seed each)." in opening
    assert "the seed-to-seed noise" not in opening and "is not measured" in opening
    order = [text.index(marker) for marker in ("beats", "| model |", "learning-curves", "confusion-",
                                               "Why convolutions", "samples-train", "## Reproducibility")]
    assert order == sorted(order)


def test_several_seeds_give_the_interval_and_welch_p(tmp_path):
    built = three_seeds(tmp_path)
    a, b = (np.asarray(m.test_accuracy.values) for m in built.models)
    se2 = a.var(ddof=1) / 3 + b.var(ddof=1) / 3
    dof = se2**2 / ((a.var(ddof=1) / 3) ** 2 / 2 + (b.var(ddof=1) / 3) ** 2 / 2)
    half = stats.t.ppf(0.975, dof) * np.sqrt(se2)
    found = contrast(*built.models)
    assert found.interval == pytest.approx((b.mean() - a.mean() - half, b.mean() - a.mean() + half))
    assert found.p_value == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    text = write_report(built, ["cnnlab"])[0].read_text()
    low, high = (f"{v * 100:.1f}" for v in found.interval)
    assert (f"**cnn beats mlp by 20.0 points of test accuracy** (90.0% against 70.0%; 95% CI {low} to {high} "
            f"points, 3 seeds each, Welch p = {found.p_value:.2g})") in text
    # per-class results and confusion matrices cover every seed and say so; the split names each seed's
    assert "summed over seeds 0, 1 and 2: 180 test predictions" in text
    assert re.search(r"seed 0: stratified: a seeded shuffle \(seed 0\).*seed 2: .*\(seed 2\)", text)
    assert "cnn (seeds 0, 1 and 2, mean): " in text  # the shift curve says which seeds it was measured on


def test_the_shift_claim_in_numbers(tmp_path):
    text = write_report(one_seed(tmp_path), ["cnnlab"])[0].read_text()
    assert ("up to 1 pixel, 1/8 of the 8-pixel side (the border filled with black; 60 test images, both "
            "directions averaged; always answering the commonest class would score 33.3%)") in text
    # 70% -> 40%: 30 points of a 36.7-point margin over guessing; 90% -> 85%: 5 of 56.7
    assert "mlp (seed 0): 70.0% unshifted, 40.0% at 1 pixel. At 1 pixel it loses 30.0 points, 81.8% of" in text
    assert "cnn (seed 0): 90.0% unshifted, 85.0% at 1 pixel." in text
    # one seed: the difference is not judged against a seed-to-seed spread nobody measured
    assert ("Of the margin over guessing, cnn (convolutional) loses 8.8% at 1 pixel and mlp 81.8%: the "
            "convolutional network loses less on these runs, but with one seed per model the seed-to-seed spread "
            "is not measured: **not shown**") in text
    assert "holds" not in text and "is shown" not in text


def lost_shares(model) -> np.ndarray:
    """Each seed's accuracy lost at 1 pixel as a share of its margin over guessing (a third here)."""
    return np.array([(r.deep.shift_accuracy[0] - r.deep.shift_accuracy[1]) / (r.deep.shift_accuracy[0] - 1 / 3)
                     for r in model.runs])


def test_the_shift_claim_over_every_seed(tmp_path):
    built = three_seeds(tmp_path)
    mlp, cnn = (lost_shares(model) for model in built.models)
    welch = stats.ttest_ind(mlp, cnn, equal_var=False)
    interval = welch.confidence_interval()
    text = write_report(built, ["cnnlab"])[0].read_text()
    spread = lambda v: f"{v.mean() * 100:.1f} ± {v.std(ddof=1) * 100:.1f}%"  # noqa: E731
    assert f"cnn (seeds 0, 1 and 2, mean): 90.0% unshifted, 85.0% at 1 pixel. At 1 pixel it loses 5.0 ± 5.0 " \
           f"points, {spread(cnn)} of its margin over guessing (mean ± sd over the seeds)." in text
    assert (f"Of the margin over guessing, cnn (convolutional) loses {spread(cnn)} at 1 pixel and mlp {spread(mlp)}: "
            f"the convolutional network loses {(mlp.mean() - cnn.mean()) * 100:.1f} points of its margin less (95% "
            f"CI {interval.low * 100:.1f} to {interval.high * 100:.1f}, 3 seeds each, Welch p = {welch.pvalue:.2g}), "
            "beyond the seed-to-seed spread: **the claim is shown here**.") in text


def test_a_shift_difference_inside_the_seed_spread_is_not_shown(tmp_path):
    built = comparison(tmp_path / "noisy", {
        "mlp": [run("mlp", s, predictions(18), drop=d) for s, d in ((0, 0.3), (1, 0.05), (2, 0.2))],
        "cnn": [run("cnn", s, predictions(6), filters=filters_like(True, s), drop=d)
                for s, d in ((0, 0.02), (1, 0.3), (2, 0.1))]})
    mlp, cnn = (lost_shares(model) for model in built.models)
    welch = stats.ttest_ind(mlp, cnn, equal_var=False)
    assert welch.pvalue > 0.05 and mlp.mean() - cnn.mean() > 0.05  # ahead, but not beyond the noise
    text = write_report(built, ["cnnlab"])[0].read_text()
    claim = text[text.index("**Claim 1"):text.index("**Claim 2")]
    assert (f"the convolutional network loses {(mlp.mean() - cnn.mean()) * 100:.1f} points of its margin less "
            f"(95% CI {welch.confidence_interval().low * 100:.1f} to").replace("-", "−") in claim
    assert f"Welch p = {welch.pvalue:.2g}), a difference inside the seed-to-seed spread: **not shown** here." in claim
    assert "is shown" not in claim and "holds" not in claim


def test_shares_about_the_same_are_not_shown(tmp_path):
    built = comparison(tmp_path / "same", {
        "mlp": [run("mlp", s, predictions(18), drop=d) for s, d in ((0, 0.3), (1, 0.31), (2, 0.29))],
        "cnn": [run("cnn", s, predictions(6), filters=filters_like(True, s), drop=d)
                for s, d in ((0, 0.45), (1, 0.46), (2, 0.47))]})
    mlp, cnn = (lost_shares(model) for model in built.models)
    assert abs(mlp.mean() - cnn.mean()) < 0.05  # under 5 points of the margin apart: too close to matter
    text = write_report(built, ["cnnlab"])[0].read_text()
    assert re.search(r"about the same \(\d\.\d points of the margin apart; 95% CI −?\d+\.\d to −?\d+\.\d, 3 seeds "
                     r"each, Welch p = [0-9.e-]+\): the claim is \*\*not shown\*\* here\.", text)


def test_filters_are_read_over_every_seed(tmp_path):
    from cnnlab.experiment.findings import read_filters

    kernels = [filters_like(True, 0), filters_like(True, 1), filters_like(False, 2)]  # one seed's look random
    built = comparison(tmp_path / "filters", {
        "mlp": [run("mlp", s, predictions(18)) for s in range(3)],
        "cnn": [run("cnn", s, predictions(6), filters=kernels[s]) for s in range(3)]})
    values = np.array([read_filters(k).neighbour_correlation for k in kernels])
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert values.mean() > 3 / np.sqrt(192) > values.mean() - half  # above random weights' on average only
    text = write_report(built, ["cnnlab"])[0].read_text()
    claim = text[text.index("**Claim 2"):]
    assert "cnn (seeds 0, 1 and 2) has 16 first-layer filters of 3x3 pixels over 1 channel." in claim
    assert (f"agree on average (correlation {values.mean():.2f} ± {values.std(ddof=1):.2f} over the seeds, 95% CI "
            f"{values.mean() - half:.2f} to {values.mean() + half:.2f}), but the interval over the seeds reaches "
            "down to what random weights give (0 ± 0.07; below 0.22 is within 3 spreads of it)").replace("-", "−") \
        in claim
    assert "the seeds differ too much to tell smooth patterns from noise: **not shown**." in claim
    smooth = write_report(three_seeds(tmp_path), ["cnnlab"])[0].read_text()
    assert "the filters of every seed hold smooth patterns rather than noise, beyond the seed-to-seed spread: " \
           "**the claim is shown here**." in smooth


def test_runs_at_chance_are_flagged_and_left_out_of_the_shift_claim(tmp_path):
    constant = np.zeros(60, dtype=np.int64)  # always class 0: a third right
    built = comparison(tmp_path / "chance", {"mlp": [run("mlp", 0, constant)],
                                             "cnn": [run("cnn", 0, predictions(3), filters=filters_like(False))]})
    text = write_report(built, ["cnnlab"])[0].read_text()
    opening = text.split("## ")[0]
    assert "> **Warning: mlp (seed 0) is at chance level: 33.3% test accuracy" in opening
    assert "answers “a\\|b&lt;script&gt;” for 100.0% of the test images" in opening
    assert "mlp is left out: it is at chance level" in text and "Skipped: fewer than two models" in text
    assert "about as unrelated as random weights'" in text  # random filters are not sold as edges


def test_no_empty_figure_when_no_image_separates_the_models(tmp_path):
    same = predictions(6)
    built = comparison(tmp_path / "same", {"mlp": [run("mlp", 0, same)], "cnn": [run("cnn", 0, same.copy())]})
    text = write_report(built, ["cnnlab"])[0].read_text()
    assert "cnn gets 0 of the 60 wrong that mlp gets right, and mlp 0" in text
    assert "wrong-" not in text and not list((tmp_path / "same" / "figures").glob("wrong-*"))


def test_claims_skip_with_a_reason_on_tiny_images(tmp_path):
    text = write_report(one_seed(tmp_path, data=dataset(side=4)), ["cnnlab"])[0].read_text()
    assert "Skipped: the images are 4 pixels wide" in text and "shift-robustness" not in text
    assert "mlp has no convolutional layer" in text
    assert "Neighbouring weights within a filter agree" in text  # the smooth ramps read as patterns


def test_versions_are_the_runs_own(tmp_path):
    import torch

    built = one_seed(tmp_path)
    built.models[1].runs[0].versions = {"cnnlab": "0.0.8", "torch": "8.8.8"}
    text = write_report(built, ["cnnlab"])[0].read_text()
    assert "Versions, mlp seed 0: cnnlab 0.0.9, torch 9.9.9, numpy 1.0, python 3.0" in text
    assert "Versions, cnn seed 0: cnnlab 0.0.8, torch 8.8.8" in text
    assert torch.__version__ not in text
    assert "Device (recorded by every run): cpu: test, 2 threads" in text


def test_figures_are_made_without_pyplot_and_none_is_blank(tmp_path):
    from matplotlib._pylab_helpers import Gcf
    from PIL import Image

    before = Gcf.get_num_fig_managers()
    write_report(three_seeds(tmp_path), ["cnnlab"])
    assert Gcf.get_num_fig_managers() == before
    pictures = list((tmp_path / "three" / "figures").glob("*.png"))
    assert len(pictures) >= 10
    for picture in pictures:
        low, high = Image.open(picture).convert("L").getextrema()
        assert high - low > 100, picture  # something is drawn on it


def test_code_blocks_hold_any_text(tmp_path):
    built = one_seed(tmp_path)
    built.models[0].runs[0].summary = "Model: ```\n<script>alert(1)</script> | x"
    markdown_path, html_path = write_report(built, ["cnnlab"])
    text = markdown_path.read_text()
    assert "<script" not in html_path.read_text()
    assert "````\nModel: ```\n<script>alert(1)</script> | x\n````" in text  # a longer fence than inside
    rendered = markdown.markdown(text, extensions=["fenced_code", "tables"])
    assert "<script" not in rendered and "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
