"""The one way in and out of a trained model: a ``.cnnlab`` model file, or a run directory.

A model file (``model.save``) is a plain safetensors file (tensors, nothing pickled)
whose header's metadata holds the network as a spec, the class names and the input
preprocessing, as JSON text; any safetensors reader can open the weights. A run
directory (``cnnlab train``) holds its spec in config.json and its weights in
``model.safetensors`` (or, before the end, its last checkpoint).

:func:`read_model` reads either into a :class:`LoadedModel`: the Python API
(``cnnlab.load_model``), ``cnnlab export`` and ``cnnlab evaluate``/``predict`` all load
through it. Before anything is built, the network the file declares is checked against
the bytes of weights it holds and against the memory this machine has, so a few hundred
bytes of metadata cannot make cnnlab allocate gigabytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import check_replaceable, open_regular, write_file
from cnnlab.formats import parse_json
from cnnlab.net.spec import ModelSpec, parse_spec

FORMAT = "cnnlab-model/1"
FORMAT_FAMILY = "cnnlab-model/"
PREPROCESSING = {"uint8": "divided by 255", "layout": "(N, H, W, C) in; (N, C, H, W) inside the torch module"}
MAX_MODEL_BYTES = 4 * 1024**3
MAX_HEADER_BYTES = 100 * 1024**2  # safetensors' own bound on a header


class ModelFileError(CnnlabError):
    """A model file that cannot be written or read; names it."""


@dataclass
class LoadedModel:
    """A trained network read from a model file or a run directory, in eval mode, on the CPU."""

    module: object                  # a cnnlab.net.builder.SpecModel holding the saved weights
    spec: ModelSpec                 # the network, with its input shape
    class_names: list[str] | None   # None where the file or run does not say
    precision: str                  # what it trained in ("fp32" or "bf16"): evaluate in the same
    origin: str                     # "model file m.cnnlab" or "run runs/cnn-digits", for messages and headers
    stem: str                       # a default name for files made from it: the file's stem, the run's folder
    saved: dict | None = None       # a run's config.json; None for a model file


def _metadata(path: Path) -> dict[str, str] | None:
    """The header metadata of a safetensors file, or None if ``path`` is not a regular file holding one.

    Read as the format lays it out (an 8-byte little-endian length, then that much JSON), from a
    file opened by :func:`cnnlab.files.open_regular`: a FIFO or device is refused, never waited on,
    and a header claiming more than :data:`MAX_HEADER_BYTES` is not read.
    """
    try:
        with open_regular(path, "model file") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = parse_json(handle.read(size), str(path)) if 2 <= size <= MAX_HEADER_BYTES else None
    except (CnnlabError, OSError):  # not a file, unreadable, or not JSON: not a model file
        return None
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else None


def is_model_file(path) -> bool:
    """Whether ``path`` is a regular file that ``model.save`` wrote (its header says so), of any format
    version: :func:`read_model` then says whether this cnnlab reads it."""
    try:
        if not Path(path).is_file():
            return False
    except (OSError, ValueError):  # a name too long, or YAML text given where a path may be
        return False
    return str((_metadata(Path(path)) or {}).get("format", "")).startswith(FORMAT_FAMILY)


def write_model_file(path, module, spec: ModelSpec, class_names: list[str] | None) -> Path:
    """Write a built network to ``path``; an existing file is replaced only when it is a cnnlab model
    file (never a user's other file, a folder, a link or a FIFO, which is refused before it is opened)."""
    from safetensors.torch import save

    path = Path(path)
    if check_replaceable(path) and (_metadata(path) or {}).get("format") != FORMAT:
        raise ModelFileError(f"{path}: exists and is not a cnnlab model file; choose another name")
    tensors = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    metadata = {"format": FORMAT, "spec": json.dumps(spec.to_dict()),
                "class_names": json.dumps(class_names), "preprocessing": json.dumps(PREPROCESSING)}
    write_file(path, save(tensors, metadata=metadata), root=path.parent)
    return path


def write_weights_file(path, module) -> Path:
    """The weights of ``module`` as a safetensors file (``model.save_weights``); an existing file is replaced
    only when cnnlab wrote it as weights (its header says so), never a user's other file."""
    from cnnlab.engine.checkpoint import WEIGHTS_FORMAT, export_weights

    path = Path(path)
    if check_replaceable(path) and (_metadata(path) or {}).get("format") != WEIGHTS_FORMAT:
        raise ModelFileError(f"{path}: exists and is not a weights file cnnlab wrote; choose another name")
    return export_weights(module, path)


def read_model(path, images: int = 1) -> LoadedModel:
    """The trained network of a model file (``model.save``) or of a run directory (``cnnlab train``),
    built once its memory, with ``images`` run through it at once, is known to fit."""
    path = Path(path)
    if path.is_dir():
        return read_run(path, images)
    metadata = _metadata(path) if path.is_file() else None
    if metadata is None or not str(metadata.get("format", "")).startswith(FORMAT_FAMILY):
        raise ModelFileError(f"{path}: not a cnnlab model file (made by model.save) nor a run directory")
    if metadata["format"] != FORMAT:
        raise ModelFileError(f"{path}: a model file of format {str(metadata['format'])[:60]!r}; this cnnlab reads "
                             f"{FORMAT!r} (made by another version of cnnlab?)")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: larger than {MAX_MODEL_BYTES:,} bytes")
    if not isinstance(metadata.get("spec"), str):
        raise ModelFileError(f"{path}: its metadata is damaged (no readable spec)")
    spec = parse_spec(parse_json(metadata["spec"], f"{path}: its spec", ModelFileError), source=str(path))
    classes = parse_json(metadata.get("class_names", "null"), f"{path}: its class names", ModelFileError)
    module = _build_for(spec, path, ModelFileError, images)
    _load_weights(module, path)
    outputs = module.info.output_shape[-1]
    if _names(classes) is not None and len(classes) != outputs:
        raise ModelFileError(f"{path}: {len(classes)} class names for the network's {outputs} outputs; damaged")
    return LoadedModel(module.eval(), spec, _names(classes), "fp32", f"model file {path}", path.stem)


def read_run(run_dir: Path, images: int = 1) -> LoadedModel:
    """A run's network holding its latest weights: the final ones, else its last checkpoint's."""
    from cnnlab.engine.checkpoint import CHECKPOINT, WEIGHTS, CheckpointError, read_checkpoint
    from cnnlab.engine.restore import load_module_state
    from cnnlab.runs.directory import RunError
    from cnnlab.runs.records import read_config, recorded_precision

    saved = read_config(run_dir)
    spec = parse_spec(saved["spec"], source=str(run_dir / "config.json"))
    if spec.input_shape is None:
        raise RunError(f"{run_dir / 'config.json'}: the spec has no input shape; damaged")
    weights = run_dir / WEIGHTS if os.path.lexists(run_dir / WEIGHTS) else run_dir / CHECKPOINT
    if not os.path.lexists(weights):
        raise CheckpointError(f"{run_dir}: no weights yet ({WEIGHTS} or {CHECKPOINT})")
    # A checkpoint is read (and checked as an archive) first; its weights are in the payload then.
    payload = read_checkpoint(weights) if weights.name == CHECKPOINT else None
    module = _build_for(spec, weights, RunError, images)
    if payload is None:
        _load_weights(module, weights)
    else:
        load_module_state(module, payload.get("model") if isinstance(payload, dict) else None, weights,
                          "model weights")
    precision = recorded_precision(saved, run_dir) or "fp32"
    return LoadedModel(module.eval(), spec, _run_classes(run_dir, saved), precision, f"run {run_dir}",
                       run_dir.resolve().name, saved)


def load_run(run_dir) -> tuple[object, dict]:
    """``(module, saved config)`` of a run (:func:`read_run`), the module in eval mode."""
    loaded = read_run(Path(run_dir))
    return loaded.module, loaded.saved


def _build_for(spec: ModelSpec, weights: Path, error, images: int):
    """The network ``spec`` declares, built only once its weights fit in ``weights`` and in memory."""
    from cnnlab.engine.memory import check_build_memory
    from cnnlab.engine.seeds import run_generators
    from cnnlab.net.builder import build_model
    from cnnlab.net.inference import BYTES_PER_FLOAT
    from cnnlab.net.resolve import summarize

    info = summarize(spec)
    held = os.lstat(weights).st_size
    if info.total_params * BYTES_PER_FLOAT > held:  # float32 weights: the file must hold them all
        raise error(f"{weights}: the network it declares has {info.total_params:,} parameters "
                    f"({info.total_params * BYTES_PER_FLOAT:,} bytes) but the file holds {held:,} bytes; damaged")
    check_build_memory(info, "cpu", images)
    with run_generators(0):  # the initial weights are replaced by the file's; the user's generators untouched
        return build_model(spec)


def _load_weights(module, path: Path) -> None:
    from cnnlab.engine.checkpoint import load_weights

    load_weights(module, path)


def _names(classes) -> list[str] | None:
    """Class names as a list of strings, else None (the files are then written without them)."""
    return classes if isinstance(classes, list) and all(isinstance(c, str) for c in classes) else None


def _run_classes(run_dir: Path, saved: dict) -> list[str] | None:
    """The run's class names: its dataset's identity, else its manifest's dataset record."""
    from cnnlab.runs.directory import read_json

    identity = saved.get("dataset_identity")
    classes = _names(identity.get("classes")) if isinstance(identity, dict) else None
    if classes is None and (run_dir / "manifest.json").is_file():
        dataset = read_json(run_dir / "manifest.json").get("dataset")
        classes = _names(dataset.get("classes")) if isinstance(dataset, dict) else None
    return classes
