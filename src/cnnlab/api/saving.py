"""``model.save(path)`` and ``cnnlab.load_model(path)``: a whole model in one safetensors file.

The file is a plain safetensors file (tensors, nothing pickled), whose header's
metadata holds the network as a spec, the class names and the input preprocessing,
as JSON text. Any safetensors reader can open the weights; cnnlab rebuilds the model.
``load_model`` also takes a run directory made by ``cnnlab train``.
"""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.errors import CnnlabError

FORMAT = "cnnlab-model/1"
PREPROCESSING = {"uint8": "divided by 255", "layout": "(N, H, W, C) in; (N, C, H, W) inside the torch module"}
MAX_MODEL_BYTES = 4 * 1024**3


class ModelFileError(CnnlabError):
    """A model file that cannot be written or read; names it."""


def _metadata(path: Path) -> dict[str, str] | None:
    """The header metadata of a safetensors file, or None if ``path`` is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception:  # safetensors raises its own error types for anything malformed
        return None


def is_model_file(path) -> bool:
    """Whether ``path`` is a regular file that ``model.save`` wrote (its header says so)."""
    try:
        if not Path(path).is_file():
            return False
    except (OSError, ValueError):  # a name too long, or YAML text given where a path may be
        return False
    return (_metadata(Path(path)) or {}).get("format") == FORMAT


def save_model(model, path) -> Path:
    """Write ``model`` (built: after fit or build) to ``path``; an existing file is replaced only
    when it is a cnnlab model file (never a user's other file, a folder or a link)."""
    from safetensors.torch import save

    from cnnlab.files import write_file

    path = Path(path)
    if path.is_symlink() or (path.exists() and (_metadata(path) or {}).get("format") != FORMAT):
        raise ModelFileError(f"{path}: exists and is not a cnnlab model file; choose another name")
    module = model._require_module()
    tensors = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    metadata = {"format": FORMAT, "spec": json.dumps(model.spec.to_dict()),
                "class_names": json.dumps(model.class_names), "preprocessing": json.dumps(PREPROCESSING)}
    write_file(path, save(tensors, metadata=metadata), root=path.parent)
    return path


def load_model(path, **options):
    """A :class:`cnnlab.Model` from a file ``model.save`` wrote, or from a run directory."""
    from cnnlab.api.model import Model

    path = Path(path)
    if path.is_dir():
        return _from_run(path, Model, options)
    metadata = _metadata(path) if path.is_file() else None
    if metadata is None or metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a cnnlab model file (made by model.save) nor a run directory")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: larger than {MAX_MODEL_BYTES:,} bytes")
    try:
        spec, classes = json.loads(metadata["spec"]), json.loads(metadata.get("class_names", "null"))
    except (KeyError, ValueError):
        raise ModelFileError(f"{path}: its metadata is damaged (no readable spec)") from None
    model = Model(spec, **options)
    model.build(tuple(model.spec.input_shape or ()))
    _load_weights(model, path)
    model.class_names = classes
    return model


def _load_weights(model, path: Path) -> None:
    from cnnlab.engine.checkpoint import load_weights

    load_weights(model.module, path)
    model.module.eval()


def _from_run(run_dir: Path, model_class, options: dict):
    from cnnlab.runs import load_run
    from cnnlab.runs.directory import read_json
    from cnnlab.runs.records import recorded_precision

    module, saved = load_run(run_dir)
    model = model_class(saved["spec"], **options)
    model.module = module
    model._precision = recorded_precision(saved, run_dir) or "fp32"  # evaluated as `cnnlab evaluate` does
    model.class_names = read_json(run_dir / "manifest.json").get("dataset", {}).get("classes")
    return model
