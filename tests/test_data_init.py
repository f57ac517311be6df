"""kernel_initializer: patch_whitening and trainable: false (the first layer of the fast preset)."""

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.engine.data_init import initialise_from_data
from cnnlab.errors import SpecError
from cnnlab.export.keras_export import keras_call
from cnnlab.net.builder import build_model
from cnnlab.net.inference import infer
from cnnlab.net.spec import parse_spec

WHITEN = {"kind": "conv2d", "name": "whiten", "filters": 24, "kernel": 2,
          "kernel_initializer": "patch_whitening", "trainable": False}


def spec(*layers, shape=(8, 8, 3)):
    return parse_spec({"input": list(shape), "layers": [*layers, {"kind": "flatten"},
                                                         {"kind": "dense", "units": 3, "activation": "softmax"}]})


def correlated_images(n=600, seed=0) -> torch.Tensor:
    """(N, 3, 8, 8) images whose channels and neighbouring pixels are strongly correlated."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 9, 9, generator=generator)
    smooth = (base[..., 1:, 1:] + base[..., :-1, :-1]) / 2                 # neighbours correlate
    return torch.cat([smooth, 0.8 * smooth + 0.2 * torch.rand(n, 1, 8, 8, generator=generator),
                      torch.rand(n, 1, 8, 8, generator=generator)], dim=1)


def whitened_outputs(model, images: torch.Tensor, block: int = 0) -> torch.Tensor:
    """The conv's outputs as (filters, values): what it computes from the input it sees."""
    captured = []
    handle = model.blocks[block].conv.register_forward_hook(lambda m, i, out: captured.append(out))
    with torch.no_grad():
        model.eval()(images)
    handle.remove()
    return captured[0].permute(1, 0, 2, 3).reshape(captured[0].shape[1], -1)


def test_outputs_are_centred_decorrelated_and_of_unit_variance_in_sign_pairs():
    model = build_model(spec(WHITEN))
    images = correlated_images()
    assert initialise_from_data(model, images) == 1
    out = whitened_outputs(model, images).double()
    assert out.mean(dim=1).abs().max() < 1e-5
    covariance = torch.cov(out[0::2])
    variances = covariance.diagonal()
    # lambda / (lambda + eps): about 1 for the strong directions, less for the weak ones eps damps.
    assert (variances <= 1 + 1e-6).all() and (variances[:4] > 0.98).all()
    assert (variances[:-1] >= variances[1:] - 1e-6).all()  # largest variance first
    assert (covariance - torch.diag(variances)).abs().max() < 1e-4
    assert torch.equal(out[1::2], -out[0::2])  # each direction and its negative


def test_a_later_layer_is_whitened_on_what_reaches_it():
    first = {"kind": "conv2d", "name": "mix", "filters": 3, "kernel": 1}
    model = build_model(spec(first, {**WHITEN, "filters": 12}))
    images = correlated_images()
    initialise_from_data(model, images)
    out = whitened_outputs(model, images, block=1).double()
    covariance = torch.cov(out[0::2])
    assert (covariance - torch.diag(covariance.diagonal())).abs().max() < 1e-4


def test_loaded_or_initialised_weights_are_never_replaced():
    model = build_model(spec(WHITEN))
    initialise_from_data(model, correlated_images(seed=1))
    before = model.blocks[0].conv.weight.clone()
    assert initialise_from_data(model, correlated_images(seed=2)) == 0
    assert torch.equal(model.blocks[0].conv.weight, before)
    loaded = build_model(spec(WHITEN))
    loaded.load_state_dict(model.state_dict())
    assert initialise_from_data(loaded, correlated_images(seed=2)) == 0
    assert torch.equal(loaded.blocks[0].conv.weight, before)


def test_a_frozen_layer_does_not_change_in_training_nor_when_fit_trains_on():
    model = cnnlab.Model(spec(WHITEN).to_dict())
    images = correlated_images(200).permute(0, 2, 3, 1).numpy()           # (N, H, W, C), as users give them
    labels = np.arange(200) % 3
    model.compile(optimizer="sgd")
    model.fit(images, labels, epochs=1, batch_size=50, verbose=0)
    conv = model._require_module().blocks[0].conv
    whitened = conv.weight.detach().clone()
    assert not conv.weight.requires_grad
    assert whitened_outputs(model._require_module(), correlated_images(200)).mean(dim=1).abs().max() < 0.1
    model.fit(images, labels, epochs=1, batch_size=50, verbose=0)          # trains on: kept, not set again
    assert torch.equal(conv.weight, whitened)


def test_summary_counts_a_frozen_layer_as_non_trainable():
    info = infer(spec(WHITEN))
    assert info.layers[0].trainable_params == 0 and info.layers[0].params == 2 * 2 * 3 * 24 + 24


def test_too_many_filters_is_one_error_naming_the_field():
    with pytest.raises(SpecError, match=r"field 'filters': patch_whitening makes at most 2\*2\*2\*3 = 24"):
        infer(spec({**WHITEN, "filters": 25}))


def test_keras_export_writes_trainable_and_leaves_the_initializer_to_the_weights():
    call = keras_call(spec(WHITEN).layers[0])
    assert "trainable=False" in call and "kernel_initializer" not in call


def test_constant_images_give_finite_filters():
    model = build_model(spec(WHITEN))
    initialise_from_data(model, torch.full((50, 3, 8, 8), 0.5))
    assert torch.isfinite(model.blocks[0].conv.weight).all() and torch.isfinite(model.blocks[0].conv.bias).all()


def test_a_patch_too_large_to_whiten_is_refused_before_anything_is_allocated():
    big = {**WHITEN, "kernel": 7, "filters": 8}
    with pytest.raises(SpecError, match=r"field 'kernel_initializer': patch_whitening whitens patches of at most "
                                        r"1024 values, got 7x7 patches of 64 channels \(3136\)"):
        infer(spec({"kind": "conv2d", "filters": 64, "kernel": 1}, big))


def test_adam_leaves_a_frozen_layer_alone():
    model = cnnlab.Model(spec(WHITEN).to_dict())
    images, labels = correlated_images(100).permute(0, 2, 3, 1).numpy(), np.arange(100) % 3
    model.fit(images, labels, epochs=1, batch_size=25, verbose=0)  # the experiment's Adam
    conv = model._require_module().blocks[0].conv
    whitened = conv.weight.detach().clone()
    model.fit(images, labels, epochs=1, batch_size=25, verbose=0, weight_decay=0.1)
    assert torch.equal(conv.weight, whitened)
