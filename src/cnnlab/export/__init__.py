"""Models that leave cnnlab: a run's (or a spec's) network as ONNX, Keras code or PyTorch code.

>>> from cnnlab.export import export
>>> result = export("runs/cnn-digits", "onnx", "cnn.onnx")     # doctest: +SKIP
>>> result.files, result.checks["max_diff"]                    # doctest: +SKIP

* ``onnx``: the network with its softmax, input ``images`` float32 (batch, C, H, W) in
  [0, 1], output ``probabilities``, a dynamic batch axis; checked with onnxruntime.
* ``keras``: a Python file building the network with Keras' functional API; for a run,
  plus ``.weights.npz`` in Keras' layouts, which the file loads.
* ``pytorch``: a standalone Python file defining the ``nn.Module``, plus its weights as
  safetensors (cnnlab's state dict; it loads with ``strict=True``).

Each export is verified before it is written: the file's predictions on random images
against cnnlab's own (the Keras check runs where Keras 3 can be imported). Nothing is
ever written over an existing file or through a link.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.export.network import ExportError, Network, open_network
from cnnlab.export.outputs import NewFiles, check_new, default_output, weights_path

FORMATS = ("onnx", "keras", "pytorch")

__all__ = ["FORMATS", "ExportError", "ExportResult", "Network", "export", "export_network", "open_network"]


@dataclass
class ExportResult:
    """What an export wrote and how it was checked (exporter, runtime, samples, max difference)."""

    to: str
    files: list[Path] = field(default_factory=list)
    checks: dict = field(default_factory=dict)


def check_format(to: str) -> str:
    """``to`` if it is a format cnnlab exports; else an ExportError naming --to."""
    if to not in FORMATS:
        raise ExportError(f"--to: unknown format {to!r}; expected one of {', '.join(FORMATS)}")
    return to


def export(source: str, to: str, output: str | Path | None = None,
           input_shape: tuple[int, ...] | None = None) -> ExportResult:
    """Export a run directory or a spec (preset, file) as ``to``; see the module's docstring.

    ``output`` defaults to ``<name>.onnx``, ``<name>_keras.py`` or ``<name>_torch.py``.
    A spec is exported untrained (Keras-initialised weights for onnx and pytorch).
    """
    check_format(to)
    if output is not None:  # a taken name fails before the network is even loaded
        _check_name(Path(output), to)
        check_new([Path(output)])
    network = open_network(source, input_shape)
    return export_network(network, to, Path(output) if output is not None else None)


def export_network(network: Network, to: str, output: Path | None = None,
                   with_weights: bool | None = None) -> ExportResult:
    """Export an opened network; ``with_weights`` (Keras only) defaults to whether it was trained."""
    check_format(to)
    path = Path(output) if output is not None else default_output(network.stem or network.name, to)
    weights = weights_path(path, to) if to != "onnx" else None
    _check_name(path, to)
    check_new([path] + ([weights] if to == "pytorch" or (to == "keras" and _keras_weights(network, with_weights))
                        else []))
    if to == "onnx":
        from cnnlab.export.onnx_export import export_onnx

        data, checks = export_onnx(network)
        contents = [(path, data)]
    else:
        source, data, checks = _code(network, to, path, weights, with_weights)
        contents = [(path, source.encode())] + ([(weights, data)] if data is not None else [])
    with NewFiles() as files:
        for target, content in contents:
            files.write(target, content)
    return ExportResult(to, [target for target, _ in contents], checks)


def _code(network: Network, to: str, path: Path, weights: Path, with_weights: bool | None):
    if to == "keras":
        from cnnlab.export.keras_export import export_keras

        return export_keras(network, path, weights, with_weights)
    from cnnlab.export.torch_export import export_pytorch

    return export_pytorch(network, path, weights)


def _keras_weights(network: Network, with_weights: bool | None) -> bool:
    return network.trained if with_weights is None else with_weights


SHADOWED = ("torch", "keras", "numpy", "safetensors")  # what the generated files import


def _check_name(path: Path, to: str) -> None:
    if to == "onnx":
        return
    if not path.name.endswith(".py"):
        raise ExportError(f"-o {path}: --to {to} writes Python code; name the file *.py")
    if path.name[:-3] in SHADOWED:  # run as a script, the file would import itself instead
        raise ExportError(f"-o {path}: the file would hide the '{path.name[:-3]}' package it imports; "
                          "choose another name")
    if hidden := _hidden_module(path.name[:-3]):  # run from its folder, Python would import the file instead
        raise ExportError(f"-o {path}: the file would hide {hidden} (run from its folder, Python imports the "
                          "file in its place, and torch, keras or numpy may import that module); choose another name")


def _hidden_module(name: str) -> str | None:
    """What a file ``<name>.py`` would shadow: a standard-library module or an installed top-level one."""
    import importlib.metadata

    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return f"the standard library's '{name}' module"
    if name in importlib.metadata.packages_distributions():
        return f"the installed '{name}' module"
    return None
