"""What an export starts from: a trained run's network, or a spec's untrained one.

Either way the result is a :class:`Network`: cnnlab's own torch module (eval mode,
weights loaded or Keras-initialised), its validated spec with shapes, and what the
exported files should say about it (name, origin, class names). cnnlab's predictions
on :func:`sample_images` are the reference every exported format is checked against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.errors import CnnlabError
from cnnlab.net.fields import shown

INIT_SEED = 0  # an untrained export is Keras-initialised from this seed, so exports repeat
SAMPLE_SEED = 1234
SAMPLES = 8


class ExportError(CnnlabError):
    """An export that cannot be made or did not verify; names the file, option or layer."""


@dataclass
class Network:
    """A network to export: cnnlab's module and what the exported files say about it."""

    model: torch.nn.Module       # a cnnlab.net.builder.SpecModel, eval mode
    name: str                    # the spec's name ('cnn'), for model and class names
    origin: str                  # "run runs/cnn-digits" or "preset 'cnn'", for file headers
    trained: bool                # weights from a run, not a fresh initialisation
    class_names: list[str] | None = None
    stem: str = ""               # default output names: the run's folder name, else the spec's name

    @property
    def info(self):
        """Shapes and parameters per layer (a :class:`cnnlab.net.inference.ModelInfo`)."""
        return self.model.info

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Keras' input shape without the batch axis: (H, W, C) or (D,)."""
        return tuple(self.model.info.input_shape)

    @property
    def torch_input_shape(self) -> tuple[int, ...]:
        """The input cnnlab's module takes, without the batch axis: (C, H, W) or (D,)."""
        shape = self.input_shape
        return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def open_network(source: str, input_shape: tuple[int, ...] | None = None) -> Network:
    """The network of a run directory (made by ``cnnlab train``), a model file (``model.save``)
    or a spec (preset, file, YAML)."""
    from cnnlab.runs.model_file import is_model_file, read_model

    if os.path.isdir(source) or is_model_file(source):  # False, not an error, for YAML text too long to be a path
        if input_shape is not None:
            raise ExportError(f"--input: {source} is a trained model; it takes the input it was trained on")
        loaded = read_model(source, SAMPLES)  # the export runs SAMPLES images through it to verify
        return Network(loaded.module.eval(), loaded.spec.name, loaded.origin, True, loaded.class_names, loaded.stem)
    return _from_spec(source, input_shape)


def from_model(model, origin: str) -> Network:
    """The network of a built :class:`cnnlab.Model` (what ``Model.export`` exports)."""
    module = model._require_module()
    return Network(module.eval(), model.spec.name, origin, True, model.class_names, model.spec.name)


def _from_spec(source: str, input_shape: tuple[int, ...] | None) -> Network:
    from cnnlab.engine.memory import check_build_memory
    from cnnlab.net.builder import build_model
    from cnnlab.net.presets import PRESETS, default_input, preset_name
    from cnnlab.net.resolve import resolve_spec, summarize

    if source not in PRESETS and not os.path.lexists(source) and "\n" not in source:
        raise ExportError(f"{shown(source)}: neither a run directory (made by 'cnnlab train'), a preset "
                          f"({', '.join(PRESETS)}) nor a spec file")
    spec = resolve_spec(source)
    preset = preset_name(spec)
    shape = input_shape or spec.input_shape or (default_input(preset) if preset else None)
    if shape is None:
        raise ExportError(f"{spec.source}: the spec has no 'input'; give --input HxWxC (e.g. 32x32x3)")
    spec = spec.with_input(tuple(shape))
    check_build_memory(summarize(spec), "cpu", SAMPLES)  # --input 100000x100000x3 is refused, never allocated
    with torch.random.fork_rng(devices=[]):  # seeds this initialisation only, not the caller's RNG
        torch.manual_seed(INIT_SEED)
        model = build_model(spec, init="keras")
    origin = f"preset '{preset}'" if preset else f"spec {spec.source}"
    return Network(model.eval(), spec.name, origin, False, stem=spec.name)


def reason(exc: BaseException) -> str:
    """A library's exception in one bounded line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def sample_images(network: Network, count: int = SAMPLES, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Random float32 inputs in [0, 1) of the shape cnnlab's module takes: (N, C, H, W) or (N, D)."""
    generator = np.random.default_rng(seed)
    return generator.random((count, *network.torch_input_shape), dtype=np.float32)


def reference_probabilities(network: Network, images: np.ndarray) -> np.ndarray:
    """cnnlab's own class probabilities (``SpecModel.probabilities``) for channels-first images."""
    with torch.no_grad():
        return network.model.probabilities(torch.from_numpy(images)).numpy()


def check_agreement(what: str, got: np.ndarray, expected: np.ndarray, tolerance: float) -> float:
    """The largest absolute difference of probabilities; above ``tolerance`` it is an ExportError."""
    if got.shape != expected.shape:
        raise ExportError(f"{what}: output shape {got.shape}, cnnlab's is {expected.shape}; not written")
    if not (np.isfinite(got).all() and np.isfinite(expected).all()):  # overflowed to inf or NaN: nothing to compare
        which = "cnnlab's own" if not np.isfinite(expected).all() else "the exported model's"
        raise ExportError(f"{what}: {which} probabilities are not finite (the network overflows on the sample "
                          "images); not written")
    diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
    if not diff <= tolerance:
        raise ExportError(f"{what}: probabilities differ from cnnlab's by up to {diff:.3g} (tolerance "
                          f"{tolerance:g}); not written")
    return diff
