"""The general options the airbench93 preset is written with, each against its reference formula: Keras' L2
penalty and "sum" loss reduction, a warm-up from a share of lr and a decay to one (alpha), Lookahead with
its cubic schedule, whole batches only, alternating flips, a kernel kept frozen while its bias trains
for N epochs; airbench's decoupled hyperparameters; and an exact resume with all of them at once."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.engine.flips import AlternatingFlips
from cnnlab.engine.lookahead import Lookahead
from cnnlab.engine.loop import TensorData, run_epochs
from cnnlab.engine.optim import make_optimizer, make_schedule, parameter_groups
from cnnlab.engine.recipes import decoupled_sgd, get_recipe
from cnnlab.engine.session import new_state
from cnnlab.engine.steps import train_step
from cnnlab.errors import SpecError
from cnnlab.net.augment_ops import RandomFlip
from cnnlab.net.builder import build_model
from cnnlab.net.inference import infer
from cnnlab.net.presets import preset
from cnnlab.net.spec import parse_spec
from test_training import assert_killed_run_resumes_exactly


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3, bias=False))


def _batch(seed: int = 1, size: int = 16):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, 6, generator=generator), torch.randint(0, 3, (size,), generator=generator)


def test_l2_is_keras_penalty_through_momentum_and_bias_scale_lowers_it():
    model, reference = _tiny(), _tiny()
    x, y = _batch()
    config = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, l2=0.05, bias_lr_scale=4.0).validate()
    optimizer = make_optimizer(parameter_groups(model, config), config)
    train_step(model, optimizer, None, x, y)
    # Keras: loss + l2 * sum(w^2) for every weight; the batchnorm bias at 4x the rate with a quarter of the penalty
    norm_bias = reference[1].bias
    loss = F.cross_entropy(reference(x), y)
    loss = loss + sum(0.05 * (0.25 if p is norm_bias else 1.0) * (p ** 2).sum() for p in reference.parameters())
    loss.backward()
    with torch.no_grad():
        for param in reference.parameters():
            rate = 0.1 * (4.0 if param is norm_bias else 1.0)
            param.sub_(rate * (param.grad + 0.9 * param.grad))  # Nesterov's first step: buffer = gradient
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_bias_lr_scale_takes_the_normalisation_biases_only():
    model = _tiny()
    groups = parameter_groups(model, TrainConfig(optimizer="sgd", lr=0.1, bias_lr_scale=64.0).validate())
    scaled = groups[-1]
    assert scaled["lr_scale"] == 64.0 and [id(p) for p in scaled["params"]] == [id(model[1].bias)]
    assert any(p is model[0].bias for p in groups[0]["params"])  # a dense layer's bias keeps lr
    plain = parameter_groups(nn.Linear(3, 2), TrainConfig(lr=0.1, bias_lr_scale=64.0).validate())
    assert isinstance(plain, list) and not isinstance(plain[0], dict)  # no batchnorm: one group


def test_sum_reduction_steps_as_the_mean_with_the_rate_times_the_batch():
    summed, mean = _tiny(), _tiny()
    x, y = _batch(size=8)
    train_step(summed, torch.optim.SGD(summed.parameters(), lr=0.01), None, x, y, loss_scale=8)
    loss, _ = train_step(mean, torch.optim.SGD(mean.parameters(), lr=0.08), None, x, y)
    for a, b in zip(summed.parameters(), mean.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert 0 < float(loss) < 5  # the loss reported stays the batch mean


def test_warmup_from_a_share_of_lr_and_decay_to_alpha_as_airbench():
    config = TrainConfig(lr=1.0, epochs=10, schedule="linear", warmup_epochs=2.3, warmup_start_factor=0.2,
                         schedule_alpha=0.07).validate()
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_schedule(optimizer, config, steps_per_epoch=10)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    total, warm = 100, 23  # airbench: f = step / warm; 0.2 (1 - f) + f, then (1 - f) + 0.07 f after it
    for step in (0, 11, 22, 23, 60, 99):
        if step < warm:
            expected = 0.2 * (1 - step / warm) + step / warm
        else:
            done = (step - warm) / (total - warm)
            expected = (1 - done) + 0.07 * done
        assert rates[step] == pytest.approx(expected)


def test_lookahead_pulls_back_every_k_steps_with_the_cubic_step_size():
    model = nn.Linear(2, 1)
    lookahead = Lookahead(model, sync_period=2, slow_step_size=0.25, schedule="cubic", total_steps=4)
    slow = [t.detach().clone() for t in model.state_dict().values()]
    for step in range(1, 5):
        with torch.no_grad():
            for param in model.parameters():
                param.add_(1.0)  # a "step"
        fast = [t.detach().clone() for t in model.state_dict().values()]
        lookahead.update(model)
        if step % 2 == 0:
            size = 1 - 0.75 * (step / 4) ** 3
            slow = [s + size * (f - s) for s, f in zip(slow, fast)]
            for ours, expected in zip(model.state_dict().values(), slow):
                torch.testing.assert_close(ours, expected)  # the fast weights are set to the slow ones
        else:
            assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fast))
    assert lookahead.step_size(4) == pytest.approx(0.25) and lookahead.step_size(0) == 1.0


def test_training_with_lookahead_ends_on_the_slow_weights_and_drops_short_batches():
    model = _tiny()
    x, y = _batch(size=20)
    config = TrainConfig(epochs=2, batch_size=8, optimizer="sgd", lr=0.1, val_split=0.0, drop_remainder=True,
                         lookahead_sync_period=3, lookahead_slow_step_size=0.5).validate()
    data = TensorData(x, y, drop_remainder=True)
    assert data.steps(8) == 2 and TensorData(x, y).steps(8) == 3
    state = new_state(model, config, steps_per_epoch=data.steps(8))
    run_epochs(state, data, config)
    assert state.lookahead.steps == 4
    floats = [t for t in model.state_dict().values() if t.is_floating_point()]
    assert all(torch.equal(a, b) for a, b in zip(floats, state.lookahead.slow))


def test_alternating_flips_show_every_image_both_ways_in_two_epochs():
    flips = AlternatingFlips([RandomFlip("horizontal", alternating=True)], images=1000, seed=3)
    everyone = torch.arange(1000)
    flips.plan(everyone, epoch=0)
    first = flips.layers[0].planned.clone()
    flips.plan(everyone, epoch=1)
    assert torch.equal(flips.layers[0].planned, ~first) and 400 < int(first.sum()) < 600
    flips.plan(everyone, epoch=2)
    assert torch.equal(flips.layers[0].planned, first)  # the same coins, from the seed
    again = AlternatingFlips([RandomFlip("horizontal", alternating=True)], images=1000, seed=3)
    again.plan(everyone, epoch=0)
    assert torch.equal(again.layers[0].planned, first)


def test_a_planned_flip_mirrors_exactly_the_planned_images_once():
    layer = RandomFlip("horizontal", alternating=True).train()
    images = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    layer.planned = torch.tensor([True, False])
    out = layer(images)
    assert torch.equal(out[0], images[0].flip(-1)) and torch.equal(out[1], images[1])
    assert layer.planned is None  # a plan is for one batch


SPEC = {"name": "stem", "input": [8, 8, 1], "layers": [
    {"kind": "random_flip", "mode": "horizontal", "alternating": True},
    {"kind": "conv2d", "filters": 8, "kernel": 2, "kernel_initializer": "patch_whitening", "whitening_epsilon": 5e-4,
     "kernel_trainable": False, "trainable_epochs": 1},
    {"kind": "activation", "activation": "gelu"},
    {"kind": "conv2d", "filters": 12, "kernel": 3, "padding": "same", "use_bias": False,
     "kernel_initializer": "partial_identity"},
    {"kind": "maxpool2d", "pool": 2},
    {"kind": "batchnorm", "momentum": 0.6, "epsilon": 1e-12, "scale": False},
    {"kind": "activation", "activation": "gelu"},
    {"kind": "flatten"},
    {"kind": "dense", "units": 10, "use_bias": False},
    {"kind": "rescaling", "scale": 1 / 9},
    {"kind": "activation", "activation": "softmax"}]}


def test_a_frozen_kernel_stays_while_its_bias_trains_for_its_epochs_only():
    spec = parse_spec(SPEC)
    stem = infer(spec).layers[1]
    assert (stem.trainable_params, stem.non_trainable_params) == (8, 32)  # the bias trains, the kernel does not
    model = build_model(spec)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8, generator=generator), torch.randint(0, 10, (64,), generator=generator)
    config = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.1, momentum=0.9, val_split=0.0).validate()
    state = new_state(model, config, steps_per_epoch=4, train_size=64)
    conv = model.blocks[1].conv
    kernel, bias = conv.weight.detach().clone(), conv.bias.detach().clone()
    run_epochs(state, TensorData(x, y), config)
    assert torch.equal(conv.weight, kernel) and not torch.equal(conv.bias, bias)  # epoch 1: the bias trains
    after_one = conv.bias.detach().clone()
    config.epochs = 3
    run_epochs(state, TensorData(x, y), config)
    assert torch.equal(conv.bias, after_one) and torch.equal(conv.weight, kernel)  # epochs 2-3: frozen


def test_cnnlab_fields_are_written_only_where_set_and_checked():
    written = parse_spec(SPEC).to_dict()["layers"]
    assert written[1]["trainable_epochs"] == 1 and written[1]["kernel_trainable"] is False
    assert "trainable_epochs" not in written[3] and "alternating" in written[0]
    assert "kernel_trainable" not in preset("cnn").to_dict()["layers"][0]
    with pytest.raises(SpecError, match="alternating"):
        parse_spec({"layers": [{"kind": "random_flip", "alternating": True}, {"kind": "flatten"}]})
    with pytest.raises(SpecError, match="trainable_epochs"):
        parse_spec({"layers": [{"kind": "flatten", "trainable_epochs": -1}]})


@pytest.mark.parametrize("options, message", [
    ({"l2": 0.1, "optimizer": "adam"}, "l2"), ({"l2": -1.0, "optimizer": "sgd"}, "l2"),
    ({"loss_reduction": "mean"}, "loss_reduction"), ({"warmup_start_factor": 2.0}, "warmup_start_factor"),
    ({"schedule_alpha": -0.1}, "schedule_alpha"), ({"lookahead_sync_period": -1}, "lookahead_sync_period"),
    ({"lookahead_sync_period": 5, "lookahead_slow_step_size": 0.0}, "lookahead_slow_step_size"),
    ({"lookahead_sync_period": 5, "ema_momentum": 0.9}, "lookahead_sync_period"),
    ({"lookahead_schedule": "cosine"}, "lookahead_schedule"), ({"drop_remainder": "yes"}, "drop_remainder")])
def test_the_new_options_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options).validate()


def test_decoupled_hyperparameters_are_airbenchs():
    options = decoupled_sgd(11.5, 0.0153, 0.85, 1024)
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    lr, wd = 11.5 / kilostep, 0.0153 * 1024 / kilostep  # airbench: SGD(lr=lr, weight_decay=wd / lr) on the sum
    assert options["lr"] == pytest.approx(lr) and 2 * options["l2"] == pytest.approx(wd / lr)
    assert options["loss_reduction"] == "sum" and options["nesterov"] is True
    config = get_recipe("airbench93").config()
    assert (config.epochs, config.batch_size, config.bias_lr_scale, config.drop_remainder) == (11, 1024, 64.0, True)
    assert config.lookahead_slow_step_size == pytest.approx(1 - 0.95 ** 5)


def test_the_airbench93_preset_is_airbenchs_network():
    info = infer(preset("airbench93"), (32, 32, 3))
    convs = [layer for layer in info.layers if layer.layer.kind == "conv2d"]
    assert [layer.output_shape[-1] for layer in convs] == [24, 64, 64, 128, 128, 128, 128]
    # airbench93: 3x3 kernels 24*64 + 64*64 + 64*128 + 3 * 128*128, 640 batchnorm biases, the 1280-weight head,
    # the whitening bias (24); the 288-value whitening kernel and the moving statistics do not train
    kernels = 9 * (24 * 64 + 64 * 64 + 64 * 128 + 3 * 128 * 128)
    assert info.trainable_params == kernels + 640 + 1280 + 24
    assert info.layers[-1].output_shape == (10,) and math.isclose(info.layers[-2].layer["scale"], 1 / 9)


def test_a_run_with_every_airbench_option_resumes_exactly(tmp_path):
    (tmp_path / "stem.json").write_text(__import__("json").dumps(SPEC))
    script = """
        import torch
        from cnnlab import runs
        from cnnlab.engine.config import TrainConfig
        from cnnlab.engine.recipes import decoupled_sgd
        from kill_at import KillAt
        torch.set_num_threads(1)
        config = TrainConfig(**{**decoupled_sgd(5.0, 0.005, 0.85, 64), "epochs": 3, "seed": 4, "val_split": 0.0,
                                "drop_remainder": True, "bias_lr_scale": 16.0, "schedule": "linear",
                                "warmup_epochs": 0.5, "warmup_start_factor": 0.2, "schedule_alpha": 0.07,
                                "label_smoothing": 0.2, "lookahead_sync_period": 5, "lookahead_schedule": "cubic",
                                "lookahead_slow_step_size": 0.23, "init": "torch"})
        runs.train("stem.json", "digits", config, out="runs", name="{name}", callback={callback})
    """
    assert_killed_run_resumes_exactly(script, tmp_path)
