"""Torch as the oracle: per-layer output shapes and parameter counts of a built model."""

import torch
from torch import nn

from cnnlab.net.builder import build_model


def torch_layer_facts(spec, input_shape):
    """[(output_shape channels-last, trainable, non_trainable)] per spec layer, from torch.

    The model runs its own forward pass (chain or graph); hooks record every block's output.
    """
    model = build_model(spec, input_shape).eval()
    shape = tuple(input_shape)
    x = torch.zeros(2, shape[2], shape[0], shape[1]) if len(shape) == 3 else torch.zeros(2, *shape)
    outputs = {}
    hooks = [block.register_forward_hook(lambda module, args, out, i=i: outputs.__setitem__(i, out.shape))
             for i, block in enumerate(model.blocks)]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    facts = []
    for i, block in enumerate(model.blocks):
        out = outputs[i]
        out = (out[2], out[3], out[1]) if len(out) == 4 else tuple(out[1:])
        trainable = sum(p.numel() for p in block.parameters() if p.requires_grad)
        frozen = sum(b.numel() for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                     for b in (m.running_mean, m.running_var))
        frozen += sum(p.numel() for p in block.parameters() if not p.requires_grad)  # trainable: false
        facts.append((tuple(out), trainable, frozen))
    return facts


def analytic_layer_facts(info):
    return [(layer.output_shape, layer.trainable_params, layer.non_trainable_params)
            for layer in info.layers]
