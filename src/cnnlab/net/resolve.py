"""Resolving a SPEC argument (preset, file, text, list) and summarising it; no torch."""

from __future__ import annotations

import os

from cnnlab.net.fields import shown, suggest
from cnnlab.net.inference import ModelInfo, infer
from cnnlab.net.presets import PRESETS, default_input, preset, preset_name
from cnnlab.net.spec import ModelSpec, SpecError, parse_spec
from cnnlab.net.spec_file import load_spec_file, parse_spec_text


def resolve_spec(spec: str | list | dict | ModelSpec) -> ModelSpec:
    """A spec from a preset name, a spec file path, YAML text, a list or a dict."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, (list, dict)):
        return parse_spec(spec)
    if not isinstance(spec, str):
        raise SpecError(f"expected a preset name, spec file, YAML text or list, got {type(spec).__name__}")
    if spec in PRESETS:
        return preset(spec)
    if os.path.exists(spec) or spec.endswith((".yaml", ".yml", ".json")):
        return load_spec_file(spec)
    if "\n" in spec or "layers" in spec:
        return parse_spec_text(spec)
    raise SpecError(f"{shown(spec)} is neither a preset ({', '.join(PRESETS)}) nor a spec file"
                    f"{suggest(spec, PRESETS)}")


def summarize(spec, input_shape: tuple[int, ...] | None = None,
              classes: int | None = None) -> ModelInfo:
    """Shapes, parameters and MACs of a preset name, spec file, YAML text, list or ModelSpec.

    The input shape is, in order: ``input_shape``, the spec's own ``input``, and
    for the presets ``mlp``/``cnn`` CIFAR-10's 32x32x3.
    """
    model_spec = resolve_spec(spec)
    if classes is not None:
        model_spec = model_spec.with_classes(classes)
    name = preset_name(model_spec)
    shape = input_shape or model_spec.input_shape or (default_input(name) if name else None)
    return infer(model_spec, shape)


def fit_spec(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int | None) -> ModelSpec:
    """The spec sized for the data: a preset takes the data's image shape and class count; a user's
    spec must agree with the data on both (Keras would refuse the data too)."""
    input_shape = tuple(input_shape)
    if spec.input_shape not in (None, input_shape) and preset_name(spec) is None:
        raise SpecError(f"{spec.source}: the network's input is {'x'.join(map(str, spec.input_shape))} "
                        f"but the data's images are {'x'.join(map(str, input_shape))}")
    spec = spec.with_input(input_shape)
    last_dense = [layer for layer in spec.layers if layer.kind == "dense"]
    if num_classes is not None and last_dense and last_dense[-1]["units"] != num_classes:
        if preset_name(spec) is None:
            raise SpecError(f"{spec.source}: the last dense layer has {last_dense[-1]['units']} units "
                            f"but the data has {num_classes} classes")
        spec = spec.with_classes(num_classes)
    return spec
