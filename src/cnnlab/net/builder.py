"""Build a torch module from a validated spec, with Keras' semantics.

Each layer's module comes from its kind in the registry. The module takes
channels-first float input ``(N, C, H, W)`` (or ``(N, D)`` for a flat input) and
returns logits: a softmax on the output layer is left to the loss (cross-entropy on
logits is the numerically stable form) and to ``probabilities``.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.net.inference import LayerInfo, infer
from cnnlab.net.spec import INPUT, ModelSpec
from cnnlab.net.torch_ops import keras_init, partial_identity_init

__all__ = ["SpecModel", "build_model", "keras_init"]


def _wiring(spec: ModelSpec) -> tuple[list[tuple[int, ...]], list[list[int]]]:
    """Per layer: the slots it reads (0 is the model input, i + 1 layer i's output), and
    the slots whose last reader it is (freed after it runs, so a graph holds no more than it needs)."""
    slot = {INPUT: 0, **{layer.name: i + 1 for i, layer in enumerate(spec.layers)}}
    reads = [tuple(slot[name] for name in layer.inputs) for layer in spec.layers]
    last_reader = {}
    for index, sources in enumerate(reads):
        for source in sources:
            last_reader[source] = index
    frees = [[source for source, reader in last_reader.items() if reader == index] for index in range(len(reads))]
    return reads, frees


class SpecModel(nn.Module):
    """A network built from a spec; ``blocks[i]`` is spec layer ``i``."""

    def __init__(self, spec: ModelSpec, input_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.info = infer(spec, input_shape)
        self.spec = spec
        self.layer_names = [info.layer.name for info in self.info.layers]
        output = self.info.layers[-1]
        # The final softmax is applied by probabilities(); forward() returns logits.
        self.softmax_output = output.layer.fields.get("activation") == "softmax"
        self.blocks = nn.ModuleList(_build(info, strip_softmax=info is output and self.softmax_output)
                                    for info in self.info.layers)
        self.is_chain = spec.is_chain
        self.reads, self.frees = _wiring(spec)
        self.freeze(spec)
        # True until weights are loaded or set from data: data-aware initialisers
        # (cnnlab.engine.data_init) run on a fresh model only, never over trained weights.
        self.fresh = True

    def freeze(self, spec: ModelSpec) -> None:
        """Take each layer's ``trainable`` from ``spec`` (this network's spec, or the same with other
        ``trainable`` flags): a frozen layer's parameters take no gradient (the optimizer of the next fit
        leaves them out), and a frozen kind that runs as in inference (batchnorm) stays in eval mode."""
        self.spec, self.info = spec, infer(spec, self.info.input_shape)
        self.inference_blocks = [index for index, layer in enumerate(spec.layers)
                                 if not layer.trainable and layer.definition.inference_when_frozen]
        for block, layer in zip(self.blocks, spec.layers):
            block.requires_grad_(layer.trainable)
            _limit(block, layer)
        self.train(self.training)

    def train(self, mode: bool = True):
        """torch's train/eval, with frozen batchnorms kept in eval mode (Keras 3's rule)."""
        super().train(mode)
        for index in getattr(self, "inference_blocks", ()):
            self.blocks[index].eval()
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.fresh = False
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_chain:
            for block in self.blocks:
                x = block(x)
            return x
        values: list[torch.Tensor | None] = [x] + [None] * len(self.blocks)
        for index, block in enumerate(self.blocks):
            values[index + 1] = block(*[values[source] for source in self.reads[index]])
            for source in self.frees[index]:
                values[source] = None
        return values[-1]

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs with the final softmax applied, in float32: under bf16 autocast the softmax of bf16
        logits would round near ties to one value, and predict's argmax then differ from evaluate's."""
        logits = self(x).float()
        return torch.softmax(logits, dim=1) if self.softmax_output else logits


def _limit(block: nn.Module, layer) -> None:
    """A layer's cnnlab limits on training: ``kernel_trainable: false`` freezes its kernel (its first Keras
    weight) alone; ``trainable_epochs`` marks the weights that train for that many epochs only
    (:func:`cnnlab.engine.loop.limit_training` applies it)."""
    if layer.frozen_kernel:
        block.get_parameter(layer.frozen_kernel[1]).requires_grad_(False)
    block.trainable_epochs = layer.fields.get("trainable_epochs", 0)
    # only where a limit is set: every other layer carries no list of its weights
    block.limited_weights = [param for param in block.parameters() if param.requires_grad] \
        if block.trainable_epochs else []


def _build(info: LayerInfo, strip_softmax: bool) -> nn.Module:
    if strip_softmax:
        info = LayerInfo(info.layer.replace(activation="linear"), info.input_shapes, info.output_shape,
                         info.parameters, info.macs)
    return info.layer.definition.build(info)


def build_model(spec: ModelSpec, input_shape: tuple[int, ...] | None = None,
                init: str = "keras") -> SpecModel:
    """Build the torch module for ``spec``; ``init`` is 'keras' (default) or 'torch'."""
    if init not in ("keras", "torch"):
        raise ValueError(f"unknown init '{init}'; expected 'keras' or 'torch'")
    model = SpecModel(spec, input_shape)
    if init == "keras":
        keras_init(model)
    partial_identity_init(model)
    return model
