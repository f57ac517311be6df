"""What a run records about itself, and the checks made when it is used again.

config.json names the dataset as it can be found again from anywhere (a name, or an
absolute path) together with the dataset's identity (hash, class names, shapes, sizes):
``evaluate``, ``predict`` and ``--resume`` refuse a dataset that differs, saying what
differs. A network is identified by its resolved spec's content (:func:`spec_digest`),
never by the name of the file it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path

from cnnlab.engine.config import ConfigError, TrainConfig
from cnnlab.net.fields import shown
from cnnlab.runs.directory import RunError, read_json, write_json

CONFIG_ENTRIES = {"spec": dict, "dataset": str, "dataset_options": dict, "train": dict}
OPTION_TYPES = {"cache": (str,), "channels": (int,), "size": (list, tuple), "skip_bad": (bool,),
                "allow_download": (bool,)}
IDENTITY_FIELDS = (("content_sha256", "the images and labels differ: sha256"), ("sha256", "sha256"),
                   ("classes", "classes"), ("image_shape", "image shape"), ("train", "training images"),
                   ("test", "test images"))


def dataset_reference(dataset) -> str:
    """A dataset's name as given (``digits``, ``cifar10``), or its path made absolute.

    A relative path would find another dataset, or none, from another directory.
    """
    from cnnlab.data import NAMES

    text = os.fspath(dataset)
    return text if text in NAMES else os.path.abspath(os.path.expanduser(text))


def dataset_options_record(options: dict | None) -> dict:
    """The loading options, checked, with the cache folder made absolute."""
    options = dict(options or {})
    for key, value in options.items():
        if key not in OPTION_TYPES:
            raise RunError(f"unknown dataset option {shown(key)}; expected {', '.join(OPTION_TYPES)}")
        if isinstance(value, bool) != (OPTION_TYPES[key] == (bool,)) or not isinstance(value, OPTION_TYPES[key]):
            raise RunError(f"dataset option '{key}' has the wrong type ({shown(value)})")
    if "size" in options:
        size = options["size"] = list(options["size"])
        if len(size) != 2 or not all(type(side) is int and side > 0 for side in size):
            raise RunError(f"dataset option 'size' must be two positive integers, got {shown(size)}")
    if "cache" in options:
        options["cache"] = os.path.abspath(os.path.expanduser(options["cache"]))
    return options


def dataset_identity(data) -> dict:
    """What makes a loaded dataset this one: the hash of its pixels and labels, its source's hash,
    classes, image shape and sizes."""
    return {"content_sha256": data.content_sha256(), "sha256": data.identity.get("sha256"),
            "classes": list(data.class_names), "image_shape": list(data.image_shape),
            "train": int(len(data.y_train)), "test": int(len(data.y_test))}


def recorded_identity(run_dir: Path, saved: dict) -> dict:
    """The identity config.json records; for runs made before it did, the manifest's."""
    if isinstance(saved.get("dataset_identity"), dict):
        return saved["dataset_identity"]
    manifest = read_json(Path(run_dir) / "manifest.json").get("dataset")
    if not isinstance(manifest, dict):
        raise RunError(f"{run_dir}: no record of the dataset it was trained on (config.json, manifest.json)")
    return manifest


def _shown_value(key: str, value) -> str:
    if key in ("sha256", "content_sha256") and isinstance(value, str):
        return value[:12]
    if key == "classes" and isinstance(value, list):
        return f"{len(value)} {shown(value)}"
    if key == "image_shape" and isinstance(value, list):
        return "x".join(map(str, value))
    return shown(value)


def check_dataset(run_dir: Path, recorded: dict, data, where: str) -> None:
    """Refuse ``data`` unless it is the dataset the run recorded, naming every field that differs."""
    now = dataset_identity(data)
    fields = IDENTITY_FIELDS
    if "content_sha256" in recorded:  # the pixels decide; the source's hash may hold file dates
        fields = tuple(field for field in IDENTITY_FIELDS if field[0] != "sha256")
    differences = [f"{label} {_shown_value(key, now[key])} (the run's: {_shown_value(key, recorded[key])})"
                   for key, label in fields if key in recorded and recorded[key] != now[key]]
    if differences:
        raise RunError(f"{run_dir}: {where} is not the dataset this run was trained on: "
                       f"{'; '.join(differences)}")


def read_config(run_dir: Path) -> dict:
    """config.json, every entry checked: a missing or mistyped one is a RunError naming it."""
    path = Path(run_dir) / "config.json"
    saved = read_json(path)
    for key, kind in CONFIG_ENTRIES.items():
        if key not in saved:
            raise RunError(f"{path}: no '{key}' entry; damaged, or not written by cnnlab")
        if not isinstance(saved[key], kind):
            raise RunError(f"{path}: '{key}' must be a {'mapping' if kind is dict else 'string'}, "
                           f"got {shown(saved[key])}")
    missing = sorted(set(TrainConfig.__dataclass_fields__) - set(saved["train"]))
    if missing:
        raise RunError(f"{path}: 'train' lacks {', '.join(missing)}; damaged, or not written by cnnlab")
    try:
        TrainConfig.from_dict(saved["train"]).validate()
        dataset_options_record(saved["dataset_options"])
    except (ConfigError, RunError) as exc:
        raise RunError(f"{path}: {exc}") from None
    return saved


def saved_config(saved: dict) -> TrainConfig:
    """The training options of a config read with :func:`read_config`."""
    return TrainConfig.from_dict(saved["train"])


PRECISION_USED = "precision_used"  # config.json: the precision training ran in ("auto" resolved)


def recorded_precision(saved: dict, run_dir: Path | None = None) -> str | None:
    """The precision the run trained in: "fp32" or "bf16"; None when it was asked "auto" and never chose."""
    used = saved.get(PRECISION_USED)
    if used is None:  # runs made before it was recorded, or killed before training began
        asked = saved["train"]["precision"]
        return None if asked == "auto" else asked
    if used not in ("fp32", "bf16"):
        raise RunError(f"{Path(run_dir or '.') / 'config.json'}: '{PRECISION_USED}' must be fp32 or bf16, "
                       f"got {shown(used)}; damaged")
    return used


def record_precision(run_dir: Path, precision: str) -> None:
    """Add the precision training runs in to the run's config.json (its options keep what was asked)."""
    saved = read_json(Path(run_dir) / "config.json")
    if saved.get(PRECISION_USED) != precision:
        write_json(Path(run_dir) / "config.json", {**saved, PRECISION_USED: precision})


def spec_digest(model_spec) -> str:
    """sha256 of the resolved spec's canonical JSON: the same network, whatever file it came from."""
    data = model_spec.to_dict()
    for layer in data["layers"]:  # before every kind had `trainable`, conv2d wrote it always:
        if layer["kind"] == "conv2d":  # its digests (the comparison's run folders) stay those of earlier runs
            layer.setdefault("trainable", True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def manifest(dataset, config: TrainConfig, device, argv: list[str] | None) -> dict:
    """What reproducing a run takes: versions, device, threads, the dataset's identity, seed, command."""
    import numpy
    import torch

    from cnnlab.version import __version__

    return {
        "versions": {"cnnlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": numpy.__version__, "platform": platform.platform()},
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "dataset": {"name": dataset.name, **dataset.identity,
                    "image_shape": list(dataset.image_shape), "classes": dataset.class_names},
        "seed": config.seed,
        "command": argv if argv is not None else sys.argv,
    }


def describe_device(device) -> str:
    """'cuda: <GPU name>' or 'cpu: <CPU model>'."""
    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    return f"cpu: {model}"


def _cpuinfo() -> list[str]:
    from cnnlab.errors import CnnlabError
    from cnnlab.files import read_regular

    try:  # a /proc file reads as size 0: read_regular reads on to the end, in chunks
        return read_regular("/proc/cpuinfo", 1 << 22).decode("utf-8", "replace").splitlines()
    except CnnlabError:
        return []
