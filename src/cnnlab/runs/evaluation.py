"""Using a finished run: load its model, evaluate it on a split, classify image files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.engine.config import TrainConfig
from cnnlab.net.spec import parse_spec
from cnnlab.runs.directory import RunError, open_dataset, read_json


@dataclass
class Evaluation:
    """A run's results on one split: loss, accuracy, per-class accuracy and the confusion matrix."""

    split: str
    count: int
    loss: float
    accuracy: float
    class_names: list[str]
    confusion_matrix: list[list[int]]          # rows: true class, columns: predicted
    per_class_accuracy: dict[str, float | None]  # None for a class absent from the split


@dataclass
class Prediction:
    """One image file's most likely classes, best first, with their probabilities."""

    image: str
    top: list[tuple[str, float]]


def load_run(run_dir: str | Path):
    """``(model, saved config)`` of a run, the model holding its latest weights, in eval mode."""
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


def evaluate(run_dir: str | Path, split: str = "test") -> Evaluation:
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
    return Evaluation(split=split, count=int(len(y)), loss=score["loss"], accuracy=score["accuracy"],
                      class_names=data.class_names, confusion_matrix=report["confusion_matrix"],
                      per_class_accuracy=report["per_class_accuracy"])


def _split_arrays(data, config: TrainConfig, split: str):
    from cnnlab.data.split import split_labels

    if split == "test":
        return data.x_test, data.y_test
    if split not in ("train", "val"):
        raise RunError(f"unknown split '{split}'; expected test, val or train")
    parts = split_labels(data.y_train, data.class_names, config.val_split, config.split_method, config.seed)
    index = parts.val_idx if split == "val" else parts.train_idx
    return data.x_train[index], data.y_train[index]


def predict(run_dir: str | Path, paths: list[str | Path], top: int = 3) -> list[Prediction]:
    """Top classes with probabilities per image file, converted as the training data was."""
    import torch

    from cnnlab.engine.session import images_to_tensor

    model, saved = load_run(run_dir)
    images = _read_images(paths, tuple(saved["spec"]["input"]), saved["dataset_options"].get("size"))
    with torch.no_grad():
        probs = model.probabilities(images_to_tensor(images, torch.device("cpu"))).numpy()
    names = read_json(Path(run_dir) / "manifest.json")["dataset"]["classes"]
    return [Prediction(str(path), [(names[i], float(row[i])) for i in np.argsort(-row)[:top]])
            for path, row in zip(paths, probs)]


def _read_images(paths: list[str | Path], input_shape: tuple[int, int, int], size) -> np.ndarray:
    """The files decoded as the training data was (channels, resize); a wrong size is an error."""
    from cnnlab.data.dataset import DatasetError
    from cnnlab.data.images import decode_image

    height, width, channels = input_shape
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
    return np.stack(arrays)
