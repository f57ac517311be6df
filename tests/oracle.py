"""Torch as the oracle: per-layer output shapes and parameter counts of a built model."""

import torch
from torch import nn

from cnnlab.net.builder import build_model


def torch_layer_facts(spec, input_shape):
    """[(output_shape channels-last, trainable, non_trainable)] per spec layer, from torch."""
    model = build_model(spec, input_shape).eval()
    shape = tuple(input_shape)
    x = torch.zeros(2, shape[2], shape[0], shape[1]) if len(shape) == 3 else torch.zeros(2, *shape)
    facts = []
    with torch.no_grad():
        for block in model.blocks:
            x = block(x)
            out = (x.shape[2], x.shape[3], x.shape[1]) if x.dim() == 4 else tuple(x.shape[1:])
            trainable = sum(p.numel() for p in block.parameters() if p.requires_grad)
            frozen = sum(b.numel() for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                         for b in (m.running_mean, m.running_var))
            facts.append((tuple(out), trainable, frozen))
    return facts


def analytic_layer_facts(info):
    return [(layer.output_shape, layer.trainable_params, layer.non_trainable_params)
            for layer in info.layers]
