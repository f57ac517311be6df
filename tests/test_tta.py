"""--tta flip / flip_translate: the mean of the probabilities over each image's views, scored as such."""

import json

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import runs
from cnnlab.cli.main import main
from cnnlab.engine.tta import AugmentationError, ViewAveraged

from fixtures import assert_error_line

FAST = ["--dataset", "digits", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def digits():
    return cnnlab.load_data("digits")


@pytest.fixture(scope="module")
def trained(digits):
    """A CNN trained one epoch on digits (an asymmetric model: a mirror changes its predictions)."""
    model = cnnlab.Model("cnn")
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    return model


def mirrored(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) images flipped left to right, by hand."""
    return np.ascontiguousarray(images[:, :, ::-1, :])


def cross_entropy(probabilities: np.ndarray, labels) -> float:
    labels = np.asarray(labels)
    return float(-np.log(probabilities[np.arange(len(labels)), labels].astype(np.float64)).mean())


def test_predict_flip_is_the_mean_of_the_two_views(trained, digits):
    x = digits.x_test
    plain, flipped = trained.predict(x), trained.predict(mirrored(x))
    averaged = trained.predict(x, tta="flip")
    assert not np.allclose(plain, flipped, atol=1e-3)  # the mirror matters, so the test can fail
    np.testing.assert_allclose(averaged, (plain + flipped) / 2, rtol=0, atol=1e-6)


def test_evaluate_flip_scores_the_mean_probabilities(trained, digits):
    x, y = digits.x_test, digits.y_test
    mean = (trained.predict(x) + trained.predict(mirrored(x))) / 2
    result = trained.evaluate(x, y, return_dict=True, tta="flip")
    assert result["loss"] == pytest.approx(cross_entropy(mean, y), rel=1e-5)
    assert result["accuracy"] == float((mean.argmax(axis=1) == np.asarray(y)).mean())


def shifted_by_hand(images: np.ndarray, d: int) -> np.ndarray:
    """(N, H, W, C) images moved d pixels down and d right, the border reflected (numpy's pad)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    height, width = images.shape[1:3]
    return np.ascontiguousarray(padded[:, 1 - d:1 - d + height, 1 - d:1 - d + width, :])


def test_predict_flip_translate_is_the_mean_of_six_views(trained, digits):
    x = digits.x_test[:200]
    flips = [x, mirrored(x)]
    views = flips + [shifted_by_hand(view, d) for d in (1, -1) for view in flips]
    predictions = [trained.predict(view) for view in views]
    assert not np.allclose(predictions[0], predictions[2], atol=1e-3)  # the shift matters
    np.testing.assert_allclose(trained.predict(x, tta="flip_translate"), sum(predictions) / 6, rtol=0, atol=1e-6)


def test_shift_moves_content_and_reflects_the_border():
    from cnnlab.engine.tta import shifted

    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    down_right = shifted(image, 1, 1)[0, 0]
    assert torch.equal(down_right[1:, 1:], image[0, 0, :3, :3])          # content moved one pixel
    assert torch.equal(down_right[0, 1:], image[0, 0, 1, :3])            # the top row is row 1 reflected
    assert torch.equal(shifted(shifted(image, 1, 1), -1, -1)[0, 0, :3, :3], image[0, 0, :3, :3])


def test_no_tta_is_unchanged(trained, digits):
    x, y = digits.x_test, digits.y_test
    assert np.array_equal(trained.predict(x, tta=None), trained.predict(x))
    assert trained.evaluate(x, y, tta=None) == trained.evaluate(x, y)


def test_a_network_ending_in_logits_averages_softmax_probabilities_for_the_loss(digits):
    model = cnnlab.Model([{"kind": "conv2d", "filters": 4, "kernel": 3, "activation": "relu"},
                          {"kind": "flatten"}, {"kind": "dense", "units": 10}])  # no softmax: logits out
    model.build(digits.image_shape)
    x, y = digits.x_test, digits.y_test
    plain, flipped = model.predict(x), model.predict(mirrored(x))  # raw outputs (logits), as Keras
    np.testing.assert_allclose(model.predict(x, tta="flip"), (plain + flipped) / 2, rtol=0, atol=1e-5)
    softmax = [torch.softmax(torch.from_numpy(view).double(), dim=1).numpy() for view in (plain, flipped)]
    loss = model.evaluate(x, y, return_dict=True, tta="flip")["loss"]
    assert loss == pytest.approx(cross_entropy((softmax[0] + softmax[1]) / 2, y), rel=1e-5)


def test_flip_averaged_log_probabilities_stay_finite_where_a_probability_underflows():
    class Fixed(torch.nn.Module):  # one view is certain of class 0, its mirror of class 1
        def forward(self, x):
            return torch.tensor([[1e4, 0.0], [0.0, 1e4]]) * (1 if x[0, 0, 0, 0] > 0 else -1)

    images = torch.zeros(2, 1, 1, 2)
    images[..., 0] = 1.0
    log_probs = ViewAveraged(Fixed())(images)
    assert torch.isfinite(log_probs).all()
    torch.testing.assert_close(log_probs.exp().sum(dim=1), torch.ones(2))


def test_flip_is_refused_for_flat_input_and_unknown_modes(digits):
    flat = cnnlab.Model({"name": "flat", "input": [64],
                         "layers": [{"kind": "dense", "units": 10, "activation": "softmax"}]})
    with pytest.raises(AugmentationError, match=r"needs a model whose input is an image .* not \(64,\)"):
        flat.predict(np.zeros((2, 64), np.float32), tta="flip")
    with pytest.raises(AugmentationError, match="unknown tta 'rotate'; expected flip, flip_translate"):
        flat.predict(np.zeros((2, 64), np.float32), tta="rotate")
    assert flat.predict(np.zeros((2, 64), np.float32)).shape == (2, 10)  # without tta it predicts


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch CNN run on digits."""
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "cnn", *FAST, "--out", str(out), "--name", "cnn"]) == 0
    return out / "cnn"


def test_cli_evaluate_flip_end_to_end(run_dir, digits, capsys):
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(run_dir), "--tta", "flip", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert plain["tta"] is None and record["tta"] == "flip" and record["count"] == 360
    model, _ = runs.load_run(run_dir)
    x = torch.from_numpy(digits.x_test.astype(np.float32) / 255).permute(0, 3, 1, 2)
    with torch.no_grad():
        mean = ((model.probabilities(x) + model.probabilities(x.flip(-1))) / 2).numpy()
    assert record["loss"] == pytest.approx(cross_entropy(mean, digits.y_test), rel=1e-5)
    assert record["accuracy"] == float((mean.argmax(axis=1) == digits.y_test).mean())
    assert (run_dir / "confusion_test_tta-flip.csv").exists() and (run_dir / "confusion_test.csv").exists()
    assert main(["evaluate", str(run_dir), "--tta", "flip"]) == 0
    assert "test-time augmentation: flip (the mean of the probabilities" in capsys.readouterr().out


def test_cli_predict_flip_end_to_end(run_dir, digits, tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "digit.png"
    Image.fromarray(digits.x_test[0][:, :, 0], "L").save(path)
    assert main(["predict", str(run_dir), str(path), "--top", "10", "--tta", "flip", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    model, saved = runs.load_run(run_dir)
    names = saved["dataset_identity"]["classes"]
    x = torch.from_numpy(digits.x_test[:1].astype(np.float32) / 255).permute(0, 3, 1, 2)
    with torch.no_grad():
        mean = ((model.probabilities(x) + model.probabilities(x.flip(-1))) / 2)[0].numpy()
    assert record["tta"] == "flip"
    for entry in record["predictions"][0]["top"]:
        assert entry["probability"] == pytest.approx(float(mean[names.index(entry["class"])]), abs=1e-6)


def test_cli_refuses_an_unknown_tta(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--tta", "rotate"]) == 2
    assert_error_line(capsys.readouterr().err, "--tta", "invalid choice: 'rotate'")


def test_runs_refuse_an_unknown_tta_before_loading_data(run_dir, monkeypatch):
    monkeypatch.setattr(runs.evaluation, "open_dataset", lambda *args: pytest.fail("loaded the data"))
    with pytest.raises(AugmentationError, match="unknown tta 'rotate'"):
        runs.evaluate(run_dir, tta="rotate")


def test_flip_translate_is_refused_for_images_too_small_to_shift():
    tiny = cnnlab.Model({"input": [1, 1, 3], "layers": [{"kind": "flatten"},
                                                        {"kind": "dense", "units": 2, "activation": "softmax"}]})
    with pytest.raises(AugmentationError, match="needs images of at least 2x2, not 1x1; use tta 'flip'"):
        tiny.predict(np.zeros((2, 1, 1, 3), np.float32), tta="flip_translate")
    assert tiny.predict(np.zeros((2, 1, 1, 3), np.float32), tta="flip").shape == (2, 2)
