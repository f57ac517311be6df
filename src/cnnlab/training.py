"""Train, resume, evaluate and predict with runs on disk (the API behind ``cnnlab train``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from cnnlab.engine.config import TrainConfig
from cnnlab.net.resolve import fit_spec, resolve_spec, summarize
from cnnlab.net.spec import parse_spec
from cnnlab.runs import RunError, RunResult, manifest, new_run_dir, read_json, write_json, write_metrics


def open_dataset(dataset: str, options: dict):
    """The dataset a run names, loaded with the options it was given."""
    from cnnlab.data import load_dataset

    return load_dataset(dataset, **options)


def train(spec, dataset: str = "cifar10", config: TrainConfig | None = None, *, out: str | Path = "runs",
          name: str | None = None, dataset_options: dict | None = None, callback=None,
          argv: list[str] | None = None) -> RunResult:
    """Train ``spec`` on ``dataset`` in a new run directory under ``out``; returns its history."""
    from cnnlab.presenters.summary_table import format_summary

    config = (config or TrainConfig()).validate()
    options = dict(dataset_options or {})
    data = open_dataset(dataset, options)
    config.validate(train_size=int(len(data.y_train) * (1 - config.val_split)))
    model_spec = fit_spec(resolve_spec(spec), data.image_shape, data.num_classes)
    info = summarize(model_spec)  # validates the spec against the data before anything is written
    base = name or f"{model_spec.name}-{data.name}"
    run_dir = new_run_dir(Path(out), base, explicit=name is not None)
    write_json(run_dir / "config.json", {"spec": model_spec.to_dict(), "dataset": str(dataset),
                                         "dataset_options": options, "train": config.to_dict()})
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(model_spec.to_dict(), sort_keys=False))
    (run_dir / "summary.txt").write_text(format_summary(info))
    return _run(run_dir, model_spec, data, config, callback, argv, resume=False)


def resume(run_dir: str | Path, callback=None, argv: list[str] | None = None) -> RunResult:
    """Continue an interrupted run from its last checkpoint, exactly where it stopped."""
    run_dir = Path(run_dir)
    saved = read_json(run_dir / "config.json")
    config = TrainConfig.from_dict(saved["train"]).validate()
    data = open_dataset(saved["dataset"], saved["dataset_options"])
    previous = read_json(run_dir / "manifest.json")["dataset"].get("sha256")
    if previous != data.identity.get("sha256"):
        raise RunError(f"{run_dir}: the dataset changed since this run started "
                       f"(sha256 {data.identity.get('sha256')}, the run used {previous})")
    model_spec = parse_spec(saved["spec"], source=str(run_dir / "config.json"))
    return _run(run_dir, model_spec, data, config, callback, argv, resume=True)


def _run(run_dir: Path, model_spec, data, config: TrainConfig, callback, argv, resume: bool) -> RunResult:
    from cnnlab.engine.checkpoint import WEIGHTS, export_weights, load_checkpoint, save_checkpoint
    from cnnlab.engine.loop import run_epochs
    from cnnlab.engine.session import estimate_epoch_seconds, prepare, seed_everything, set_deterministic
    from cnnlab.net.builder import build_model

    seed_everything(config.seed)
    set_deterministic(config.deterministic)
    model = build_model(model_spec, init=config.init)
    state, tensors, split = prepare(model, data.x_train, data.y_train, config, class_names=data.class_names)
    audit = split.audit(data) if split is not None else None
    if resume:
        load_checkpoint(state, run_dir)
        write_metrics(run_dir, state.history)
    else:
        write_json(run_dir / "manifest.json", {**manifest(data, config, tensors.x_train.device, argv),
                                               "split": audit})
    estimate = None
    if state.epoch < config.epochs and callback is not None:
        estimate = estimate_epoch_seconds(state, tensors, config)
        callback.on_train_begin({"run_dir": str(run_dir), "split_audit": None if resume else audit,
                                 "resumed_at_epoch": state.epoch if resume else None,
                                 "estimate_seconds": estimate, "train_count": len(tensors.y_train),
                                 "batch_size": config.batch_size})

    def save_epoch(state, record):
        save_checkpoint(state, run_dir)  # first: the metrics never run ahead of the checkpoint
        write_metrics(run_dir, state.history)
        write_json(run_dir / "history.json", state.history)

    run_epochs(state, tensors, config, callback, save_epoch)
    export_weights(state.model, run_dir / WEIGHTS)
    return RunResult(run_dir, state.history, audit, estimate)


def load_run(run_dir: str | Path):
    """``(model, dataset, saved config)`` of a run, the model holding its latest weights."""
    from cnnlab.engine.checkpoint import CHECKPOINT, WEIGHTS, CheckpointError, load_weights
    from cnnlab.net.builder import build_model

    run_dir = Path(run_dir)
    saved = read_json(run_dir / "config.json")
    model = build_model(parse_spec(saved["spec"], source=str(run_dir / "config.json")))
    if (run_dir / WEIGHTS).exists():
        load_weights(model, run_dir / WEIGHTS)
    elif (run_dir / CHECKPOINT).exists():
        import torch

        model.load_state_dict(torch.load(run_dir / CHECKPOINT, weights_only=True)["model"])
    else:
        raise CheckpointError(f"{run_dir}: no weights yet ({WEIGHTS} or {CHECKPOINT})")
    return model.eval(), saved


def evaluate(run_dir: str | Path, split: str = "test") -> dict:
    """Loss, accuracy, per-class accuracy and confusion matrix of a run on a split.

    ``split`` is 'test', 'train' (the part trained on) or 'val' (the held-out part).
    """
    import torch

    from cnnlab.engine.metrics import classification_report, predict_logits, score_logits
    from cnnlab.engine.session import images_to_tensor

    model, saved = load_run(run_dir)
    data = open_dataset(saved["dataset"], saved["dataset_options"])
    x, y = _split_arrays(data, TrainConfig.from_dict(saved["train"]), split)
    score = score_logits(predict_logits(model, images_to_tensor(x, torch.device("cpu"))), y)
    report = classification_report(y, score["predictions"], data.class_names)
    return {"split": split, "count": int(len(y)), "loss": score["loss"], "accuracy": score["accuracy"],
            "class_names": data.class_names, **report}


def _split_arrays(data, config: TrainConfig, split: str):
    from cnnlab.data.split import split_labels

    if split == "test":
        return data.x_test, data.y_test
    if split not in ("train", "val"):
        raise RunError(f"unknown split '{split}'; expected test, val or train")
    parts = split_labels(data.y_train, data.class_names, config.val_split, config.split_method, config.seed)
    index = parts.val_idx if split == "val" else parts.train_idx
    return data.x_train[index], data.y_train[index]


def predict(run_dir: str | Path, paths: list[str | Path], top: int = 3) -> list[dict]:
    """Top classes with probabilities per image file, converted as the training data was."""
    import torch

    from cnnlab.data.dataset import DatasetError
    from cnnlab.data.images import decode_image
    from cnnlab.engine.session import images_to_tensor

    model, saved = load_run(run_dir)
    height, width, channels = saved["spec"]["input"]
    size = saved["dataset_options"].get("size")
    arrays = []
    for path in map(Path, paths):
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None
        array, detail = decode_image(content, channels, tuple(size) if size else None)
        if array is None:
            raise DatasetError(f"{path}: {detail}")
        if array.shape[:2] != (height, width):
            raise DatasetError(f"{path}: image is {array.shape[1]}x{array.shape[0]}, the model was trained "
                               f"on {width}x{height} images")
        arrays.append(array)
    with torch.no_grad():
        probs = model.probabilities(images_to_tensor(np.stack(arrays), torch.device("cpu"))).numpy()
    names = read_json(Path(run_dir) / "manifest.json")["dataset"]["classes"]
    results = []
    for path, row in zip(paths, probs):
        best = np.argsort(-row)[:top]
        results.append({"image": str(path), "top": [(names[i], float(row[i])) for i in best]})
    return results
