"""The report's "Where each network looks" section: the maps are cnnlab.explain's, on the images the
disagreement grids show, and the report says their sanity checks and concentration in words."""

from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab import explain
from cnnlab.experiment.explanations import (
    NO_CONVOLUTION,
    PER_SIDE,
    Explanations,
    MapReading,
    disagreements,
    explain_disagreements,
    half_mass,
)
from cnnlab.experiment.results import DeepAnalysis, ModelResult, RunOutcome
from cnnlab.explain import DeletionResult, Explanation, RandomisationResult, RandomisationStep
from cnnlab.report import write_report
from test_report import comparison, predictions, run


def test_half_mass_is_the_smallest_share_of_pixels_holding_half_the_mass():
    even = np.ones((1, 4, 4))
    one = np.zeros((1, 4, 4))
    one[0, 1, 2] = 0.7
    steps = np.array([[[4.0, 3.0], [2.0, 1.0]]])  # 4 of 10 is not half; 4 + 3 is: two of the four pixels
    assert half_mass(even) == 0.5
    assert half_mass(one) == 1 / 16
    assert half_mass(steps) == 0.5
    assert half_mass(np.concatenate([one, np.zeros((1, 4, 4))])) == 1 / 16  # a blank map is left out
    assert half_mass(np.zeros((2, 4, 4))) is None


def outcome(spec: str, predicted: np.ndarray, filters) -> RunOutcome:
    deep = DeepAnalysis([[0]], {}, [], {0: 1.0}, predicted, filters, [])
    return RunOutcome(Path(f"/nowhere/{spec}"), "trained", 0, 0.5, 1.0, 0.5, 0.5, 1.0, [], 1, 1, "", "cpu", deep,
                      predicted)


@pytest.fixture(scope="module")
def trained():
    """An MLP and a CNN trained for one epoch on digits, and the dataset."""
    data = cnnlab.load_data("digits")
    networks = {}
    for spec in ("mlp", "cnn"):
        networks[spec] = cnnlab.Model(spec, device="cpu", seed=0)
        networks[spec].fit(data.x_train, data.y_train, epochs=1, verbose=0)
    return networks, data


def test_the_maps_are_cnnlab_explains_on_the_images_the_grids_show(trained):
    networks, data = trained
    said = {spec: networks[spec].predict(data.x_test, verbose=0).argmax(1) for spec in networks}
    models = [ModelResult(spec, [outcome(spec, said[spec], None if spec == "mlp" else np.ones((4, 3, 3, 1)))])
              for spec in ("mlp", "cnn")]
    found = explain_disagreements(models, networks, data)
    truth = data.y_test
    cnn_wrong = np.flatnonzero((said["cnn"] != truth) & (said["mlp"] == truth))
    mlp_wrong = np.flatnonzero((said["mlp"] != truth) & (said["cnn"] == truth))
    assert len(cnn_wrong) >= PER_SIDE and len(mlp_wrong) >= PER_SIDE  # one epoch leaves both some errors
    assert found.images.tolist() == [*cnn_wrong[:PER_SIDE], *mlp_wrong[:PER_SIDE]]
    assert found.right == ["mlp"] * PER_SIDE + ["cnn"] * PER_SIDE
    grid = disagreements(*models, truth)  # what the report's grids show: the same images, in the same order
    assert grid.second_wrong.tolist() == cnn_wrong.tolist() and grid.first_wrong.tolist() == mlp_wrong.tolist()
    assert [(r.spec, r.method) for r in found.readings] == [("cnn", "gradcam"), ("mlp", "gradient"),
                                                            ("cnn", "gradient")]
    assert found.skipped == [("mlp", "gradcam", NO_CONVOLUTION)]
    images = data.x_test[found.images]
    expected = {("cnn", "gradcam"): explain.grad_cam(networks["cnn"], images),
                ("mlp", "gradient"): explain.saliency(networks["mlp"], images),
                ("cnn", "gradient"): explain.saliency(networks["cnn"], images)}
    for reading in found.readings:
        network, method = networks[reading.spec], reading.method
        np.testing.assert_allclose(reading.explanation.maps, expected[reading.spec, method], atol=1e-6)
        classes = said[reading.spec][found.images]
        assert reading.explanation.predicted == [data.class_names[c] for c in classes]
        oracle = explain.randomisation_test(network, images, method, classes, cascade=False)
        assert reading.explanation.randomisation.spearman == pytest.approx(oracle.spearman)
        deleted = explain.deletion_score(network, images, method, classes, maps=expected[reading.spec, method])
        assert reading.explanation.deletion.salient_drop == pytest.approx(deleted.salient_drop)
        assert reading.half_mass == pytest.approx(half_mass(expected[reading.spec, method]))
    assert found.to_dict()["readings"][0]["randomisation"]["spearman"] == pytest.approx(
        found.readings[0].explanation.randomisation.spearman)


def test_no_disagreement_no_maps(trained):
    networks, data = trained
    same = networks["cnn"].predict(data.x_test, verbose=0).argmax(1)
    models = [ModelResult(spec, [outcome(spec, same, None)]) for spec in ("mlp", "cnn")]
    found = explain_disagreements(models, networks, data)
    assert found.readings == [] and found.reason == "no test image is right for one model and wrong for the other"


def reading(spec: str, method: str, spearman, salient_fall: float, mass: float) -> MapReading:
    maps = np.zeros((2, 8, 8), dtype=np.float32)
    maps[:, 2:4, 3:6] = 1.0
    randomised = RandomisationResult(method=method, images=2, steps=[RandomisationStep("dense", spearman)],
                                     weighted_layers=3)
    deleted = DeletionResult(method=method, images=2, fractions=[0.0, 0.1, 0.5], salient=[0.9, 0.9 - salient_fall,
                             0.9 - salient_fall], random=[0.9, 0.8, 0.8])
    explained = Explanation(method, "conv2d_1" if method == "gradcam" else None, ["x*y", "plain"], [0.9, 0.8],
                            ["x*y", "plain"], maps, randomised, deleted)
    return MapReading(spec, 0, explained, mass)


def hand_built(tmp_path, explanations):
    built = comparison(tmp_path / "maps", {"mlp": [run("mlp", 0, predictions(18))],
                                           "cnn": [run("cnn", 0, predictions(6, start=20), filters=np.ones((4, 3, 3,
                                                                                                            1)))]})
    built.explanations = explanations
    return write_report(built, ["cnnlab"])[0].read_text()


def test_the_section_says_each_maps_checks_in_words(tmp_path):
    found = Explanations(np.array([0, 21]), ["cnn", "mlp"],
                         [reading("cnn", "gradcam", -0.12, 0.4, 0.2), reading("mlp", "gradient", 0.81, 0.05, 0.3),
                          reading("cnn", "gradient", None, 0.3, 0.1)], [("mlp", "gradcam", NO_CONVOLUTION)])
    text = hand_built(tmp_path, found)
    section = text[text.index("## Where each network looks"):text.index("## The dataset")]
    assert text.index("## Why convolutions") < text.index("## Where each network looks")
    assert "mlp has no Grad-CAM: it has no convolution layer, and Grad-CAM weighs a convolution's feature maps." \
        in section
    assert "| cnn Grad-CAM | −0.12 | 0.40 | 0.10 | 20.0% |" in section  # a minus sign, as every number here
    assert "| mlp saliency | 0.81 | 0.05 | 0.10 | 30.0% |" in section
    assert "| cnn saliency | — | 0.30 | 0.10 | 10.0% |" in section
    assert ("**cnn Grad-CAM**: the map changes when the weights are randomised (Spearman −0.12): it shows what the "
            "network learnt. Blacking out its most salient pixels first lowers the predicted class's probability by "
            "0.40 on average, against 0.10 for random pixels: it points at pixels the prediction uses.") in section
    assert ("**mlp saliency**: this map barely depends on the weights (Spearman 0.81 once they are randomised): "
            "**do not read it**.") in section
    assert "against 0.10 for random pixels: it does not single out what the prediction uses." in section
    assert "**cnn saliency**: its maps are constant, so the randomisation test has nothing to rank." in section
    assert ("On these images cnn's saliency is the more concentrated: half its mass on 10.0% of the pixels, "
            "against 30.0% for mlp's.") in section
    assert "as up to 50% of the pixels are blacked out" in section
    assert "figures/where-they-look.png" in section and (tmp_path / "maps" / "figures" / "where-they-look.png").exists()


def test_the_section_skips_with_its_reason(tmp_path):
    none = Explanations(np.zeros(0, np.int64), [], [], reason="no test image is right for one model and wrong for "
                        "the other")
    text = hand_built(tmp_path, none)
    section = text[text.index("## Where each network looks"):text.index("## The dataset")]
    assert "Skipped: no test image is right for one model and wrong for the other." in section
    assert "where-they-look.png" not in section
    assert "Not measured: these results hold no maps." in hand_built(tmp_path, None)
