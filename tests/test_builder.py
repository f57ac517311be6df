"""The torch builder reproduces Keras' semantics, not only its shapes."""

import pytest
import torch

from cnnlab.net.builder import build_model
from cnnlab.net.spec import parse_spec


def _model(layers, input_shape, init="keras"):
    return build_model(parse_spec({"input": list(input_shape), "layers": layers}), init=init).eval()


def test_same_padding_puts_extra_pixel_after():
    # TF 'same' with kernel 2, stride 2 on a 3-wide input pads 0 before, 1 after.
    model = _model([{"kind": "maxpool2d", "pool": 2, "padding": "same"}], (3, 3, 1))
    x = torch.arange(9.0).reshape(1, 1, 3, 3) - 100  # all negative: padding must not win
    out = model(x)
    assert out.shape == (1, 1, 2, 2)
    assert out.flatten().tolist() == [-96.0, -95.0, -93.0, -92.0]


def test_same_avg_pool_ignores_padding():
    model = _model([{"kind": "avgpool2d", "pool": 2, "padding": "same"}], (3, 3, 1))
    out = model(torch.ones(1, 1, 3, 3))
    assert torch.allclose(out, torch.ones(1, 1, 2, 2))


def test_flatten_uses_channels_last_order():
    model = _model([{"kind": "flatten"}], (1, 2, 3))
    x = torch.arange(6.0).reshape(1, 3, 1, 2)  # (N, C, H, W)
    # Keras order is (H, W, C): pixel 0's three channels first.
    assert model(x).tolist() == [[0.0, 2.0, 4.0, 1.0, 3.0, 5.0]]


def test_final_softmax_left_to_predict():
    model = _model([{"kind": "flatten"}, {"kind": "dense", "units": 3, "activation": "softmax"}], (2, 2, 1))
    x = torch.randn(4, 1, 2, 2)
    logits = model(x)
    assert not torch.allclose(logits.sum(dim=1), torch.ones(4))
    assert torch.allclose(model.probabilities(x).sum(dim=1), torch.ones(4))


def test_keras_init_glorot_uniform_and_zero_bias():
    model = _model([{"kind": "flatten"}, {"kind": "dense", "units": 300}], (10, 10, 1))
    linear = model.blocks[1].linear
    limit = (6 / (100 + 300)) ** 0.5
    assert linear.weight.abs().max() <= limit
    assert linear.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(linear.bias) == 0


def test_torch_init_available_by_name():
    model = _model([{"kind": "flatten"}, {"kind": "dense", "units": 300}], (10, 10, 1), init="torch")
    assert torch.count_nonzero(model.blocks[1].linear.bias) > 0


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="unknown init 'he'"):
        _model([{"kind": "flatten"}], (1, 1, 1), init="he")


def test_batchnorm_momentum_is_keras_complement():
    model = _model([{"kind": "batchnorm", "momentum": 0.9, "epsilon": 0.01}], (2, 2, 3))
    assert model.blocks[0].momentum == pytest.approx(0.1) and model.blocks[0].eps == 0.01
