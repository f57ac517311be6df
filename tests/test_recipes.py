"""Recipes and the modern training options: label smoothing, decoupled weight decay, warm-up, the weights'
moving average, each against its reference formula; recipes' precedence on the command line and in compare."""

import json
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.cli.main import build_parser, main
from cnnlab.cli.train_commands import config_from_args
from cnnlab.engine.averaging import WeightAverage
from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.engine.loop import TensorData, run_epochs
from cnnlab.engine.optim import make_optimizer, make_schedule
from cnnlab.engine.recipes import RECIPES, describe_options, get_recipe
from cnnlab.engine.session import new_state
from cnnlab.engine.steps import Objective, train_step
from test_training import assert_killed_run_resumes_exactly

from fixtures import assert_error_line


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def _batch(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(16, 6, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def test_label_smoothing_is_keras_target_mixing():
    model = _tiny()
    x, y = _batch()
    logits = model(x).detach()
    smoothing, classes = 0.2, 3
    # Keras: targets (1 - s) * one_hot + s / K, then cross-entropy against the log-softmax
    targets = F.one_hot(y, classes).float() * (1 - smoothing) + smoothing / classes
    expected = float(-(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss, _ = train_step(model, optimizer, None, x, y, objective=Objective(label_smoothing=smoothing))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    plain, _ = train_step(model, optimizer, None, x, y)
    assert float(plain) < float(loss)  # smoothing raises the loss of confident predictions


def test_sgd_weight_decay_is_decoupled_as_in_keras():
    model, reference = _tiny(), _tiny()
    x, y = _batch()
    config = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05).validate()
    optimizer = make_optimizer(model.parameters(), config)
    train_step(model, optimizer, None, x, y)
    # Keras 3: w <- w * (1 - lr * wd), then the plain (Nesterov) step on the loss's gradient alone
    F.cross_entropy(reference(x), y).backward()
    with torch.no_grad():
        for param in reference.parameters():
            param.mul_(1 - 0.1 * 0.05)
            velocity = param.grad.clone()  # torch's first momentum step: the buffer is the gradient
            param.sub_(0.1 * (param.grad + 0.9 * velocity))
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)


def test_adam_with_weight_decay_is_adamw_and_rmsprop_decays_first():
    params = [nn.Parameter(torch.ones(3))]
    assert isinstance(make_optimizer(params, TrainConfig(weight_decay=0.01).validate()), torch.optim.AdamW)
    assert type(make_optimizer(params, TrainConfig().validate())) is torch.optim.Adam  # the homework's, unchanged
    rms = make_optimizer(params, TrainConfig(optimizer="rmsprop", lr=0.1, weight_decay=0.5).validate())
    params[0].grad = torch.zeros(3)
    rms.step()  # a zero gradient: only the decay moves the weights
    torch.testing.assert_close(params[0].detach(), torch.full((3,), 1 - 0.1 * 0.5))


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear", "onecycle"])
def test_warmup_rises_linearly_then_the_schedule_runs(schedule):
    steps_per_epoch, epochs, warmup = 10, 4, 1.0
    config = TrainConfig(lr=0.4, epochs=epochs, schedule=schedule, warmup_epochs=warmup).validate()
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.4)
    scheduler = make_schedule(optimizer, config, steps_per_epoch)
    rates = []
    for _ in range(epochs * steps_per_epoch):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    rise = rates[:10]
    assert rise == sorted(rise) and rise[0] < 0.1 and max(rates) == pytest.approx(0.4, rel=0.02)
    assert rates.index(max(rates)) in (9, 10)  # the peak right where the warm-up ends
    if schedule == "constant":
        assert rates[10:] == [pytest.approx(0.4)] * 30
    elif schedule == "linear":
        assert rates[10 + 15] == pytest.approx(0.4 * (1 - 15 / 30))
    elif schedule == "cosine":
        assert rates[10 + 15] == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    if schedule != "constant":
        assert rates[-1] < 0.05 * 0.4


def test_weight_average_follows_keras_ema_formula():
    model = _tiny()
    x, y = _batch()
    average = WeightAverage(model, momentum=0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    expected = None
    for _ in range(4):
        train_step(model, optimizer, None, x, y, average=average)
        weights = [p.detach().clone() for p in model.parameters()]
        # Keras: the first step copies the weights, then average = m * average + (1 - m) * weight
        expected = weights if expected is None else [0.9 * a + 0.1 * w for a, w in zip(expected, weights)]
    for ours, theirs in zip(average.averages, expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    with average.applied(model):
        torch.testing.assert_close(next(model.parameters()).detach(), expected[0])
    assert not torch.equal(next(model.parameters()).detach(), expected[0])  # the model's own weights are back


def test_training_with_ema_validates_and_ends_on_the_average():
    model = _tiny()
    x, y = _batch()
    config = TrainConfig(epochs=2, batch_size=4, optimizer="sgd", lr=0.3, ema_momentum=0.8).validate()
    state = new_state(model, config, steps_per_epoch=4)
    run_epochs(state, TensorData(x, y, x, y), config)
    torch.testing.assert_close([p.detach() for p in model.parameters()], state.average.averages)
    assert state.history[-1].val_loss is not None


def test_options_are_checked():
    for options, message in (({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
                             ({"ema_momentum": -0.1}, "ema_momentum must be in [0, 1)"),
                             ({"warmup_epochs": 5}, "warmup_epochs must be at least 0 and below epochs (5)")):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            TrainConfig(**options).validate()
    with pytest.raises(ConfigError, match="unknown recipe 'fats' \\(did you mean 'fast'\\?\\)"):
        get_recipe("fats")


def test_a_preset_carries_its_recipe_and_options_override_it():
    parse = build_parser().parse_args
    fast = config_from_args(parse(["train", "fast", "--epochs", "3"]))
    assert fast == RECIPES["fast"].config({"epochs": 3})
    assert (fast.optimizer, fast.batch_size, fast.label_smoothing, fast.epochs) == ("muon", 512, 0.2, 3)
    homework = config_from_args(parse(["train", "cnn"]))
    assert homework == TrainConfig(recipe="homework")  # the experiment's recipe does not move
    assert config_from_args(parse(["train", "cnn", "--recipe", "fast"])).optimizer == "muon"
    assert describe_options(homework.to_dict()) == "homework: adam 0.001, batch 32, 5 epochs, 20% validation"


def test_compare_trains_each_model_with_its_own_recipe(tmp_path, monkeypatch):
    from cnnlab.engine import recipes

    # a small stand-in for fast's recipe on digits (8x8 images: 2 epochs, batch 64)
    small = recipes.Recipe("fast", "test", {**RECIPES["fast"].options, "epochs": 2, "batch_size": 64,
                                            "warmup_epochs": 0.5, "precision": "fp32"})
    monkeypatch.setitem(recipes.RECIPES, "fast", small)
    spec = tmp_path / "small.yaml"
    spec.write_text("layers:\n  - {kind: flatten}\n  - {kind: dense, units: 10, activation: softmax}\n")
    monkeypatch.setattr("cnnlab.net.presets.recipe_of", lambda name: "fast" if str(name).endswith("yaml")
                        else "homework")
    argv = ["compare", "mlp", str(spec), "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path),
            "--name", "mixed", "--json"]
    assert main(argv) == 0
    options = json.loads((tmp_path / "mixed/options.json").read_text())["train"]
    assert options["mlp"]["optimizer"] == "adam" and options[str(spec)]["optimizer"] == "muon"
    assert options[str(spec)]["epochs"] == 1  # the option given wins over the recipe's 2


def test_an_ema_run_with_a_bias_lr_scale_resumes_exactly(tmp_path):
    script = """
        import torch
        from cnnlab import runs
        from cnnlab.engine.config import TrainConfig
        from kill_at import KillAt
        torch.set_num_threads(1)
        config = TrainConfig(epochs=3, batch_size=32, seed=3, optimizer="sgd", lr=0.05, momentum=0.9,
                             ema_momentum=0.9, label_smoothing=0.1, warmup_epochs=1, schedule="linear",
                             bias_lr_scale=4.0, weight_decay=0.001)  # two parameter groups
        runs.train("cnn", "digits", config, out="runs", name="{name}", callback={callback})
    """
    assert_killed_run_resumes_exactly(script, tmp_path)


def test_an_unknown_recipe_is_one_error_line(capsys):
    assert main(["train", "cnn", "--recipe", "nope"]) == 2
    assert_error_line(capsys.readouterr().err, "argument --recipe: invalid choice: 'nope'")
