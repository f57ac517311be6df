"""airbench's optimisation tricks as Keras-style options: batchnorm without gamma (``scale: false``) or
beta (``center: false``), conv2d's ``kernel_initializer: partial_identity``, and ``bias_lr_scale``,
each against its reference formula."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.cli.main import build_parser
from cnnlab.cli.train_commands import config_from_args
from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.engine.optim import make_optimizer, make_schedule, parameter_groups
from cnnlab.engine.steps import train_step
from cnnlab.export.torch_layers import module_code
from cnnlab.net.builder import build_model
from cnnlab.net.inference import infer
from cnnlab.net.registry import get_kind
from cnnlab.net.spec import parse_spec

IMAGE = [6, 6, 3]


def _model(layers, input_shape=IMAGE, seed=0):
    torch.manual_seed(seed)
    return build_model(parse_spec({"input": input_shape, "layers": layers}))


@pytest.mark.parametrize(("center", "scale", "trainable"), [(True, False, 3), (False, True, 3), (False, False, 0)])
def test_batchnorm_without_gamma_or_beta_counts_and_builds_as_keras(center, scale, trainable):
    layers = [{"kind": "batchnorm", "center": center, "scale": scale}]
    layer = infer(parse_spec({"input": IMAGE, "layers": layers})).layers[0]
    assert (layer.trainable_params, layer.non_trainable_params) == (trainable, 6)  # Keras: gamma, beta if kept
    norm = _model(layers).blocks[0]
    assert (norm.weight is None) == (not scale) and (norm.bias is None) == (not center)
    assert {key for key in norm.state_dict()} == {
        *(["weight"] if scale else []), *(["bias"] if center else []), "running_mean", "running_var",
        "num_batches_tracked"}


def test_batchnorm_without_scale_normalises_and_shifts_only():
    norm = _model([{"kind": "batchnorm", "scale": False, "epsilon": 1e-5}]).blocks[0]
    with torch.no_grad():
        norm.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1)) * 3 + 1
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) + norm.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(norm.train()(x), expected, rtol=1e-5, atol=1e-5)


def test_scale_free_batchnorm_exports_keras_weights_and_torch_code():
    model = _model([{"kind": "conv2d", "filters": 4, "kernel": 3, "use_bias": False},
                    {"kind": "batchnorm", "scale": False}, {"kind": "batchnorm", "center": False}])
    keys = [key for _, key in get_kind("batchnorm").keras_layout if key in model.blocks[1].state_dict()]
    assert keys == ["bias", "running_mean", "running_var"]  # Keras' [beta, moving_mean, moving_variance]
    info = infer(model.spec)
    assert module_code(info.layers[1], strip_softmax=False).startswith("without(nn.BatchNorm2d(4,")
    assert module_code(info.layers[2], strip_softmax=False).endswith('"bias")')


def test_partial_identity_passes_the_first_channels_through_and_keeps_glorot_for_the_rest():
    layers = [{"kind": "conv2d", "filters": 5, "kernel": 3, "padding": "same",
               "kernel_initializer": "partial_identity", "use_bias": False}]
    model, glorot = _model(layers), _model([{**layers[0], "kernel_initializer": "glorot_uniform"}])
    weight, reference = model.blocks[0].conv.weight, glorot.blocks[0].conv.weight
    x = torch.rand(2, 3, 6, 6)
    torch.testing.assert_close(model(x)[:, :3], x, rtol=0, atol=0)  # filters 0-2: channels 0-2 unchanged
    torch.testing.assert_close(weight[3:], reference[3:], rtol=0, atol=0)  # the same draws as glorot's
    narrower = _model([{**layers[0], "filters": 2}]).blocks[0].conv.weight
    assert narrower[:, :, 1, 1].tolist() == [[1, 0, 0], [0, 1, 0]]  # fewer filters than channels


def test_partial_identity_is_cnnlabs_own_so_the_keras_export_leaves_it_out():
    from cnnlab.export.keras_export import keras_call

    spec = parse_spec({"input": IMAGE, "layers": [{"kind": "conv2d", "filters": 4, "kernel": 3,
                                                   "kernel_initializer": "partial_identity"}]})
    assert "initializer" not in keras_call(spec.layers[0])


def _biased():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


def test_bias_lr_scale_steps_biases_faster_with_the_same_decay_per_step():
    model, reference = _biased(), _biased()
    config = TrainConfig(optimizer="sgd", lr=0.1, weight_decay=0.05, bias_lr_scale=8.0).validate()
    optimizer = make_optimizer(parameter_groups(model, config), config)
    x, y = torch.randn(16, 6, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
    train_step(model, optimizer, None, x, y)
    F.cross_entropy(reference(x), y).backward()
    with torch.no_grad():
        for name, param in reference.named_parameters():
            rate = 0.1 * (8.0 if name == "1.bias" else 1.0)  # the batchnorm's bias alone, as airbench's
            param.mul_(1 - 0.1 * 0.05).sub_(rate * param.grad)  # decay lr * wd for every weight
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-7)


def test_bias_lr_scale_holds_through_schedules_and_adamw():
    config = TrainConfig(optimizer="adamw", lr=0.2, weight_decay=0.01, bias_lr_scale=4.0, epochs=2,
                         schedule="onecycle", warmup_epochs=0.5).validate()
    optimizer = make_optimizer(parameter_groups(_biased(), config), config)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.01, 0.0025]
    scheduler = make_schedule(optimizer, config, steps_per_epoch=10)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
        weights, biases = (group["lr"] for group in optimizer.param_groups)
        assert biases == pytest.approx(4 * weights)
    plain = TrainConfig(bias_lr_scale=1.0).validate()
    assert all(isinstance(item, nn.Parameter) for item in parameter_groups(_biased(), plain))  # one group


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "8"])
def test_bias_lr_scale_refuses_what_is_not_a_positive_number(value):
    with pytest.raises(ConfigError, match="bias_lr_scale must be"):
        TrainConfig(bias_lr_scale=value).validate()


def test_bias_lr_scale_on_the_command_line_overrides_the_recipe():
    args = build_parser().parse_args(["train", "fast", "--data", "digits", "--bias-lr-scale", "16"])
    config = config_from_args(args, "fast")
    assert (config.bias_lr_scale, config.recipe, config.optimizer) == (16.0, "fast", "muon")


def test_a_keras_users_scale_free_batchnorm_runs_in_the_functional_api():
    from cnnlab import Model, layers

    inputs = layers.Input((8, 8, 3))
    features = layers.Conv2D(4, 3, use_bias=False)(inputs)
    outputs = layers.BatchNormalization(scale=False)(features)
    info = infer(Model(inputs, outputs).spec)
    assert (info.layers[-1].trainable_params, info.layers[-1].non_trainable_params) == (4, 8)
