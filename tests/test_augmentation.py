"""Augmentation kinds: their training-time distributions, the identity at inference, Keras as oracle where
it has the layer, spec errors, exports, and a killed run with augmentation resuming bitwise-identically."""

import json

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.errors import SpecError
from cnnlab.net.augment_ops import RandomCrop, RandomErasing, RandomFlip, RandomTranslation, translate
from cnnlab.net.builder import build_model
from cnnlab.net.spec import parse_spec
from cnnlab.runs.directory import read_metrics
from test_training import run_script, strip_times

N = 2000  # samples for the distribution tests: a coin's share is within 0.05 of 1/2 with odds ~1e-5 of failing


def images(n=N, channels=2, height=8, width=6, seed=0):
    """Distinct positive values (0 is never an input value, so erased and filled pixels show)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, height, width, generator=generator) + 1.0


def trained(module):
    return module.train()


# ---------------------------------------------------------------- random_flip


@pytest.mark.parametrize("mode, dims", [("horizontal", (3,)), ("vertical", (2,))])
def test_flip_mirrors_about_half_of_the_images(mode, dims):
    x = images()
    out = trained(RandomFlip(mode))(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(dims)).flatten(1).all(1)
    assert (same | mirrored).all()  # each output is its input or its mirror image
    assert 0.45 < mirrored.float().mean() < 0.55


def test_both_flips_are_independent_coins():
    x = images()
    out = trained(RandomFlip("horizontal_and_vertical"))(x)
    outcomes = [x, x.flip(3), x.flip(2), x.flip(2, 3)]
    shares = [(out == y).flatten(1).all(1).float().mean().item() for y in outcomes]
    assert sum(shares) == pytest.approx(1.0)
    assert all(0.2 < share < 0.3 for share in shares), shares  # Keras 3 would give 1/2, 0, 0, 1/2


# ---------------------------------------------------------------- random_translation


def numpy_reflect_shift(image, shift_h, shift_w):
    """One (C, H, W) image shifted by whole pixels, Keras' 'reflect' fill (d c b a | a b c d | d c b a)."""
    _, height, width = image.shape
    padded = np.pad(image, ((0, 0), (height, height), (width, width)), mode="symmetric")
    return padded[:, height - shift_h:2 * height - shift_h, width - shift_w:2 * width - shift_w]


def test_reflect_fill_matches_numpy_per_image():
    x = images(6)
    shifts = [(0, 0), (2, -3), (-5, 1), (7, 5), (-8, -6), (3, 0)]  # up to a whole image away
    shift_h, shift_w = (torch.tensor(s, dtype=torch.float32) for s in zip(*shifts))
    for interpolation in ("bilinear", "nearest"):
        out = translate(x, shift_h, shift_w, "reflect", interpolation).numpy()
        for i, (dh, dw) in enumerate(shifts):
            np.testing.assert_allclose(out[i], numpy_reflect_shift(x[i].numpy(), dh, dw), atol=1e-5)


def test_translation_shifts_stay_within_the_factor():
    x = torch.ones(N, 1, 8, 8)  # constant fill 0 then shows how far each image moved
    layer = trained(RandomTranslation((-0.25, 0.25), (0.0, 0.25), "constant", "nearest", 0.0))
    out = layer(x)[:, 0]
    rows, cols = out.amax(2) > 0, out.amax(1) > 0  # (N, 8): rows and columns still holding the image
    shift_h = (~rows).long().cumprod(1).sum(1) - (~rows).long().flip(1).cumprod(1).sum(1)
    shift_w = (~cols).long().cumprod(1).sum(1) - (~cols).long().flip(1).cumprod(1).sum(1)
    assert set(shift_h.tolist()) == {-2, -1, 0, 1, 2}  # 0.25 of 8 pixels, either way
    assert set(shift_w.tolist()) == {0, 1, 2}  # width_factor [0, 0.25]: right only


def test_translation_matches_keras_affine_transform():
    keras = pytest.importorskip("keras_oracle").keras
    x = images(3)
    shift_h, shift_w = torch.tensor([1.3, -2.0, 0.5]), torch.tensor([-0.7, 2.0, 3.2])
    # Keras' transform [1, 0, -dx, 0, 1, -dy, 0, 0], as its RandomTranslation builds it.
    matrix = np.array([[1, 0, -dw, 0, 1, -dh, 0, 0] for dh, dw in zip(shift_h.tolist(), shift_w.tolist())],
                      dtype=np.float32)
    for fill_mode in ("constant", "nearest"):  # Keras' torch backend swaps 'reflect' for another mirror
        for interpolation in ("bilinear", "nearest"):
            ours = translate(x, shift_h, shift_w, fill_mode, interpolation, 0.25).permute(0, 2, 3, 1).numpy()
            theirs = keras.ops.convert_to_numpy(keras.ops.image.affine_transform(
                x.permute(0, 2, 3, 1).numpy(), matrix, interpolation=interpolation, fill_mode=fill_mode,
                fill_value=0.25))
            np.testing.assert_allclose(ours, theirs, atol=1e-5)


# ---------------------------------------------------------------- random_crop


def test_crop_windows_lie_inside_the_image_and_cover_every_offset():
    x = torch.arange(8 * 6, dtype=torch.float32).view(1, 1, 8, 6).expand(N, 1, 8, 6)
    out = trained(RandomCrop((8, 6), 5, 4))(x)
    assert out.shape == (N, 1, 5, 4)
    top, left = (out[:, 0, 0, 0] // 6).long(), (out[:, 0, 0, 0] % 6).long()
    offsets = set(zip(top.tolist(), left.tolist()))
    assert offsets == {(t, c) for t in range(4) for c in range(3)}
    for i in range(0, N, 97):
        assert torch.equal(out[i], x[i, :, top[i]:top[i] + 5, left[i]:left[i] + 4])


@pytest.mark.parametrize("target", [(4, 4), (6, 3), (8, 6), (5, 6), (2, 5)])
def test_crop_at_inference_is_keras_smart_resize(target):
    # What Keras documents for RandomCrop at inference (and Keras 2 did): smart_resize. Keras 3.15's layer
    # returns its input unchanged then (keras-team/keras#21868), against its own output shape.
    keras = pytest.importorskip("keras_oracle").keras
    x = images(4)
    ours = RandomCrop((8, 6), *target).eval()(x).permute(0, 2, 3, 1).numpy()
    theirs = np.asarray(keras.preprocessing.image.smart_resize(x.permute(0, 2, 3, 1).numpy(), target))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    layer = keras.layers.RandomCrop(*target)
    assert tuple(layer(x.permute(0, 2, 3, 1).numpy(), training=True).shape) == ours.shape


# ---------------------------------------------------------------- random_erasing


def test_erasing_sets_one_box_per_chosen_image_and_leaves_the_rest():
    x = images(height=8, width=8)
    out = trained(RandomErasing((8, 8), 0.5, 0.5, 0.0))(x)  # a 4x4 box, half the images
    erased = out == 0  # (N, C, H, W)
    assert torch.equal(out[~erased], x[~erased])
    assert (erased == erased[:, :1]).all()  # every channel alike
    area = erased[:, 0].flatten(1).sum(1)
    hit = area > 0
    assert 0.45 < hit.float().mean() < 0.55
    # A box centred anywhere: at least 2x2 of it inside (centre at a corner), at most all 4x4.
    assert area[hit].min() == 4 and area[hit].max() == 16
    rows, cols = erased[:, 0].any(2).sum(1), erased[:, 0].any(1).sum(1)
    assert torch.equal(rows * cols, area)  # a rectangle


def test_erasing_size_in_pixels_and_probability_one():
    out = trained(RandomErasing((8, 8), 3, 1.0, -1.0))(images(200, height=8, width=8))
    area = (out[:, 0] == -1.0).flatten(1).sum(1)
    assert (area > 0).all() and area.max() == 9


# ---------------------------------------------------------------- every kind


def every_kind():
    return [RandomFlip("horizontal_and_vertical"),
            RandomTranslation((-0.2, 0.2), (-0.2, 0.2), "reflect", "bilinear", 0.0),
            RandomErasing((8, 6), 0.5, 1.0, 0.0)]


def test_inference_is_the_identity():
    x = images(16)
    for module in every_kind():
        assert module.eval()(x) is x


def test_a_seed_fixes_the_draws():
    x = images(64)
    for module in [*every_kind(), RandomCrop((8, 6), 5, 5)]:
        module.train()
        outputs = []
        for seed in (3, 3, 4):
            torch.manual_seed(seed)
            outputs.append(module(x))
        assert torch.equal(outputs[0], outputs[1]), module
        assert not torch.equal(outputs[0], outputs[2]), module


def test_channels_last_input_stays_channels_last():
    x = images(8).contiguous(memory_format=torch.channels_last)
    for module in [*every_kind(), RandomCrop((8, 6), 5, 5), RandomCrop((8, 6), 4, 4).eval()]:
        out = module.train()(x) if module.training else module(x)
        assert out.is_contiguous(memory_format=torch.channels_last), module


SPEC = {"input": [8, 8, 1], "layers": [
    {"kind": "random_flip", "mode": "horizontal"},
    {"kind": "random_translation", "height_factor": 0.125, "width_factor": [-0.125, 0.25]},
    {"kind": "random_crop", "height": 6, "width": 6},
    {"kind": "random_erasing", "size": 2},
    {"kind": "conv2d", "filters": 4, "kernel": 3, "activation": "relu"},
    {"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}]}


def test_spec_shapes_params_and_model():
    model = build_model(parse_spec(SPEC))
    assert [info.output_shape for info in model.info.layers[:4]] == [(8, 8, 1)] * 2 + [(6, 6, 1)] * 2
    assert [info.params for info in model.info.layers[:4]] == [0] * 4
    assert model.train()(images(5, 1, 8, 8)).shape == model.eval()(images(5, 1, 8, 8)).shape == (5, 10)


@pytest.mark.parametrize("layer, message", [
    ({"kind": "random_crop", "height": 9, "width": 4},
     "layer 0 'random_crop' (random_crop): field 'height': 9 is larger than the input's height 8"),
    ({"kind": "random_translation", "height_factor": 1.5, "width_factor": 0},
     "layer 0 'random_translation' (random_translation): field 'height_factor': expected a number in [-1, 1]"),
    ({"kind": "random_flip", "mode": "horizontl"}, "unknown value 'horizontl' (did you mean 'horizontal'?)"),
    ({"kind": "random_erasing", "size": 1.0}, "field 'size': expected a fraction of the image side in (0, 1)"),
    ({"kind": "random_erasing", "probability": 2}, "field 'probability': expected a probability in [0, 1]"),
    ({"kind": "random_translation", "height_factor": 0.1, "width_factor": 0.1, "fill_mode": "wrap"},
     "field 'fill_mode': unknown value 'wrap'"),
])
def test_spec_errors_name_the_layer_and_field(layer, message):
    with pytest.raises(SpecError) as error:
        build_model(parse_spec({"input": [8, 8, 1], "layers": [layer]}))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_flat_input_is_refused():
    with pytest.raises(SpecError, match="needs an image input"):
        build_model(parse_spec({"input": [8], "layers": [{"kind": "random_flip"}]}))


def test_functional_api_with_keras_names():
    from cnnlab.layers import Dense, Flatten, Input, RandomCrop, RandomCutout, RandomFlip, RandomTranslation

    inputs = Input(shape=(8, 8, 1))
    x = RandomFlip("horizontal")(inputs)
    x = RandomTranslation(0.1, (-0.2, 0.2), fill_mode="constant")(x)
    x = RandomCutout(size=0.25)(RandomCrop(6, 6)(x))
    model = cnnlab.Model(inputs=inputs, outputs=Dense(10)(Flatten()(x)))
    assert [layer.kind for layer in model.spec.layers][:4] == ["random_flip", "random_translation",
                                                                "random_crop", "random_erasing"]
    assert model.count_params() == 6 * 6 * 10 + 10


def test_exports_are_inference_graphs(tmp_path):
    from cnnlab.export import export

    spec = tmp_path / "aug.yaml"
    spec.write_text(json.dumps({"name": "aug", **SPEC}))
    torch_file = export(str(spec), "pytorch", tmp_path / "aug_torch.py")  # verified against cnnlab's eval mode
    source = torch_file.files[0].read_text()
    assert source.count("nn.Identity(),  #") == 3 and "CentreCrop((0, 0, 8, 8), (6, 6))" in source
    pytest.importorskip("keras_oracle")
    code = export(str(spec), "keras", tmp_path / "aug_keras.py").files[0].read_text()
    assert "keras.layers.RandomFlip(mode=\"horizontal\"" in code
    assert "keras.layers.RandomTranslation(0.125, (-0.125, 0.25)" in code
    assert "keras.layers.RandomCrop(6, 6" in code and "RandomCutout(" not in code


# ---------------------------------------------------------------- exact resume


AUGMENTED_SCRIPT = """
    import torch
    from cnnlab import runs
    from cnnlab.engine.config import TrainConfig
    from kill_at import KillAt  # tests/kill_at.py
    torch.set_num_threads(1)
    runs.train("spec.yaml", "digits", TrainConfig(epochs=2, batch_size=64, seed=5), out="runs", name="{name}",
               callback={callback})
"""
AUGMENTED_SPEC = """
name: augmented
layers:
  - {kind: random_flip, mode: horizontal}
  - {kind: random_translation, height_factor: 0.125, width_factor: 0.125}
  - {kind: random_erasing, size: 2}
  - {kind: conv2d, filters: 8, kernel: 3, activation: relu}
  - {kind: flatten}
  - {kind: dense, units: 10, activation: softmax}
"""


@pytest.mark.slow
def test_killed_run_with_augmentation_resumes_to_identical_weights(tmp_path):
    (tmp_path / "spec.yaml").write_text(AUGMENTED_SPEC)
    whole = run_script(AUGMENTED_SCRIPT.format(callback="None", name="whole"), tmp_path)
    assert whole.returncode == 0, whole.stderr
    killed = run_script(AUGMENTED_SCRIPT.format(callback="KillAt(2, 5)", name="killed"), tmp_path)
    assert killed.returncode == -9
    resumed = run_script("""
        import torch
        torch.set_num_threads(1)
        from cnnlab import runs
        runs.resume("runs/killed")
    """, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole_weights = (tmp_path / "runs/whole/model.safetensors").read_bytes()
    assert whole_weights == (tmp_path / "runs/killed/model.safetensors").read_bytes()
    assert strip_times(read_metrics(tmp_path / "runs/whole")) == strip_times(read_metrics(tmp_path / "runs/killed"))
