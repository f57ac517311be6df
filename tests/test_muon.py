"""The ``muon`` optimizer (cnnlab's, after airbench94_muon): Newton-Schulz orthogonalisation against
torch's own and the SVD, a step against its reference formula, its groups, options and exact resume."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.cli.main import build_parser
from cnnlab.cli.train_commands import config_from_args
from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.engine.memory import optimizer_states
from cnnlab.engine.muon import MuonSGD, orthogonalise
from cnnlab.engine.optim import make_optimizer, make_schedule, parameter_groups
from cnnlab.engine.recipes import describe_options
from cnnlab.engine.steps import train_step
from test_training import assert_killed_run_resumes_exactly

MUON = {"optimizer": "muon", "lr": 0.2, "momentum": 0.9, "nesterov": True, "muon_lr": 0.05,
        "muon_momentum": 0.6, "weight_decay": 0.01}


@pytest.mark.parametrize("shape", [(8, 27), (32, 288), (27, 8), (16, 16)])
def test_orthogonalise_sets_every_singular_value_near_one_and_keeps_the_singular_vectors(shape):
    update = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))
    result = orthogonalise(update)
    assert result.shape == update.shape and result.dtype == torch.float32
    assert torch.linalg.svdvals(result).min() > 0.55 and torch.linalg.svdvals(result).max() < 1.25
    u, _, vh = torch.linalg.svd(update, full_matrices=False)
    alignment = (u.T @ result @ vh.T).diagonal()  # U^T X V: X = U S' V^T keeps U and V
    assert alignment.min() > 0.55
    assert (u @ torch.diag(alignment) @ vh - result).norm() < 1e-3 * result.norm()


def test_orthogonalise_matches_torchs_newton_schulz_up_to_its_bf16_rounding():
    from torch.optim._muon import _zeropower_via_newtonschulz

    update = torch.randn(48, 216, generator=torch.Generator().manual_seed(3))
    theirs = _zeropower_via_newtonschulz(update, (3.4445, -4.7750, 2.0315), 5, 1e-7).float()
    assert (orthogonalise(update) - theirs).norm() < 0.03 * theirs.norm()


def _convnet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3))


def _reference_step(model, x, y, config, buffers):
    """One step by the formula: kernels at norm sqrt(filters), minus muon_lr x NS(Nesterov momentum);
    the rest: decoupled decay then Nesterov SGD."""
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        for name, param in model.named_parameters():
            muon = param.ndim == 4
            momentum = config.muon_momentum if muon else config.momentum
            buffers[name] = momentum * buffers.get(name, torch.zeros_like(param)) + param.grad
            direction = param.grad + momentum * buffers[name]
            if muon:
                param.mul_(param.shape[0] ** 0.5 / param.norm())
                param.sub_(config.muon_lr * orthogonalise(direction.reshape(param.shape[0], -1)).view_as(param))
            else:
                param.mul_(1 - config.lr * config.weight_decay).sub_(config.lr * direction)
            param.grad = None


def test_a_muon_step_is_the_reference_formula_on_kernels_and_sgd_on_the_rest():
    model, reference = _convnet(), _convnet()
    config = TrainConfig(**MUON).validate()
    optimizer = make_optimizer(parameter_groups(model, config), config)
    assert isinstance(optimizer, MuonSGD)
    assert [group["muon"] for group in optimizer.param_groups] == [True, False, False]
    generator, buffers = torch.Generator().manual_seed(1), {}
    for _ in range(3):  # the momentum buffers carry over
        x, y = torch.randn(8, 3, 6, 6, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        train_step(model, optimizer, None, x, y)
        _reference_step(reference, x, y, config, buffers)
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_frozen_kernels_stay_out_and_a_network_without_convolutions_is_plain_sgd():
    model = _convnet()
    model[0].weight.requires_grad_(False)
    config = TrainConfig(**MUON).validate()
    groups = parameter_groups(model, config)
    assert all(isinstance(item, nn.Parameter) for item in groups)  # no trainable kernel: one sgd group
    assert len(groups) == len(list(model.parameters())) - 1  # the frozen kernel is left out of the optimizer
    assert optimizer_states(config) == 1


def test_the_kernels_rate_follows_warmup_schedules_and_the_learning_rate_setting():
    config = TrainConfig(**MUON, epochs=2, schedule="linear", warmup_epochs=0.5).validate()
    optimizer = make_optimizer(parameter_groups(_convnet(), config), config)
    scheduler = make_schedule(optimizer, config, steps_per_epoch=10)
    for _ in range(12):
        optimizer.step()
        scheduler.step()
        kernels, others = optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"]
        assert kernels == pytest.approx(others * 0.05 / 0.2)
    onecycle = TrainConfig(**{**MUON, "schedule": "onecycle"}).validate()
    optimizer = make_optimizer(parameter_groups(_convnet(), onecycle), onecycle)
    make_schedule(optimizer, onecycle, steps_per_epoch=10)
    assert [group["momentum"] for group in optimizer.param_groups] == [0.6, 0.9, 0.9]  # not cycled


@pytest.mark.parametrize(("options", "message"), [
    ({"optimizer": "adam", "muon_lr": 0.2}, "muon_lr and muon_momentum apply to the muon optimizer, not adam"),
    ({"optimizer": "muon", "muon_lr": 0}, "muon_lr must be a positive number"),
    ({"optimizer": "muon", "muon_lr": float("nan")}, "muon_lr must be a positive number"),
    ({"optimizer": "muon", "muon_momentum": 1.0}, r"muon_momentum must be in \[0, 1\)"),
    ({"optimizer": "muon", "muon_momentum": "0.6"}, "muon_momentum must be int or float"),
])
def test_muon_options_out_of_range_or_out_of_place_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options).validate()


def test_muon_on_the_command_line_overrides_the_recipe_and_is_described():
    args = build_parser().parse_args(["train", "fast", "--data", "digits", "--optimizer", "muon",
                                      "--muon-lr", "0.2", "--muon-momentum", "0.5"])
    config = config_from_args(args, "fast")
    assert (config.optimizer, config.muon_lr, config.muon_momentum, config.momentum) == ("muon", 0.2, 0.5, 0.9)
    assert describe_options(config.to_dict()).startswith(
        "fast: muon 0.2 (momentum 0.5) for convolution kernels, sgd nesterov 0.4 for the rest, momentum 0.9")


def test_a_killed_muon_run_resumes_to_the_uninterrupted_weights(tmp_path):
    script = """
        import torch
        from cnnlab import runs
        from cnnlab.engine.config import TrainConfig
        from kill_at import KillAt
        torch.set_num_threads(1)
        config = TrainConfig(epochs=3, batch_size=32, seed=5, optimizer="muon", lr=0.05, momentum=0.9,
                             nesterov=True, muon_lr=0.02, weight_decay=0.001, warmup_epochs=1,
                             schedule="linear")
        runs.train("cnn", "digits", config, out="runs", name="{name}", callback={callback})
    """
    assert_killed_run_resumes_exactly(script, tmp_path)
