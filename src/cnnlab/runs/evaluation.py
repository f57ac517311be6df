"""Using a finished run: load its model, evaluate it on a split, classify image files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.engine.config import TrainConfig
from cnnlab.files import read_regular
from cnnlab.runs.directory import RunError, open_dataset
from cnnlab.runs.model_file import read_run
from cnnlab.runs.records import check_dataset, recorded_identity, recorded_precision, saved_config


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
    tta: str | None = None                     # test-time augmentation: "flip", or None
    precision: str = "fp32"                    # what the model ran in: the run's, where the hardware suits it


@dataclass
class Prediction:
    """One image file's most likely classes, best first, with their probabilities."""

    image: str
    top: list[tuple[str, float]]

    def to_dict(self) -> dict:
        """The JSON record: the image, and its classes best first, each with its probability."""
        return {"image": self.image, "top": [{"class": name, "probability": prob} for name, prob in self.top]}


MAX_IMAGE_BYTES = 64 * 1024**2  # an image file to classify; a FIFO or /dev/zero never gets read


def evaluate(run_dir: str | Path, split: str = "test", tta: str | None = None) -> Evaluation:
    """Loss, accuracy, per-class accuracy and confusion matrix of a run on a split.

    ``split`` is 'test', 'train' (the part trained on) or 'val' (the held-out part).
    The dataset is the one config.json names, and must be the one the run recorded.
    ``tta="flip"`` scores the mean of the probabilities on each image and its mirror
    (:mod:`cnnlab.engine.tta`). The model runs in the precision it trained in (bf16
    only where this CPU has bf16 units).
    """
    import torch

    from cnnlab.engine.batches import image_batches
    from cnnlab.engine.evaluation import classification_report, predict_logits, score_logits
    from cnnlab.engine.tta import with_tta

    run_dir = Path(run_dir)
    loaded = read_run(run_dir)
    model, saved = loaded.module, loaded.saved
    scored, device = with_tta(model, tta), torch.device("cpu")
    precision = run_precision(saved, run_dir, device)
    data = open_dataset(saved["dataset"], saved["dataset_options"])
    check_dataset(run_dir, recorded_identity(run_dir, saved), data, f"the dataset {saved['dataset']}")
    x, y = _split_arrays(data, saved_config(saved), split, run_dir)
    score = score_logits(predict_logits(scored, image_batches(x, device), precision=precision), y)
    report = classification_report(y, score["predictions"], data.class_names)
    return Evaluation(split=split, count=int(len(y)), loss=score["loss"], accuracy=score["accuracy"],
                      class_names=data.class_names, confusion_matrix=report["confusion_matrix"],
                      per_class_accuracy=report["per_class_accuracy"], tta=tta, precision=precision)


def run_precision(saved: dict, run_dir: Path, device) -> str:
    """The precision the run trained in, for evaluating it here (fp32 where bf16 would be slow)."""
    from cnnlab.engine.precision import inference_precision

    return inference_precision(recorded_precision(saved, run_dir) or "fp32", device)


def _split_arrays(data, config: TrainConfig, split: str, run_dir: Path):
    from cnnlab.data.split import split_labels

    if split == "test":
        return data.x_test, data.y_test
    if split not in ("train", "val"):
        raise RunError(f"unknown split '{split}'; expected test, val or train")
    if config.val_split == 0:
        if split == "val":
            raise RunError(f"{run_dir}: this run held out no validation part (val_split 0); "
                           "evaluate --split test or train")
        return data.x_train, data.y_train
    parts = split_labels(data.y_train, data.class_names, config.val_split, config.split_method, config.seed)
    index = parts.val_idx if split == "val" else parts.train_idx
    return data.x_train[index], data.y_train[index]


def predict(run_dir: str | Path, paths: list[str | Path], top: int = 3, tta: str | None = None) -> list[Prediction]:
    """The ``top`` classes (1 to the number of classes) with probabilities per image file, best first.

    The files are converted as the training data was. ``tta="flip"`` gives the mean of
    the probabilities on each image and its mirror.
    """
    import torch

    from cnnlab.engine.batches import images_to_tensor
    from cnnlab.engine.steps import autocast
    from cnnlab.engine.tta import with_tta

    run_dir = Path(run_dir)
    loaded = read_run(run_dir)
    model, saved, model_spec = loaded.module, loaded.saved, loaded.spec
    scored, device = with_tta(model, tta), torch.device("cpu")
    names = recorded_identity(run_dir, saved).get("classes")
    _check_top(top, len(names) if isinstance(names, list) else None)
    images = _read_images(paths, tuple(model_spec.input_shape), saved["dataset_options"].get("size"))
    with torch.no_grad(), autocast(device, run_precision(saved, run_dir, device)):
        probs = scored.probabilities(images_to_tensor(images, device)).float().numpy()
    if not isinstance(names, list) or len(names) != probs.shape[1]:
        raise RunError(f"{run_dir}: its record of the class names does not match the model's "
                       f"{probs.shape[1]} outputs; damaged")
    return [Prediction(str(path), [(str(names[i]), float(row[i])) for i in np.argsort(-row)[:top]])
            for path, row in zip(paths, probs)]


def _check_top(top, classes: int | None) -> None:
    """``top`` (``--top``) is a whole number from 1 to the number of classes."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1 or (classes is not None and top > classes):
        upper = f"{classes} (the model's classes)" if classes is not None else "the number of classes"
        raise RunError(f"--top must be a whole number from 1 to {upper}, got {top!r}"[:200])


def read_image_files(paths: list[str | Path], input_shape: tuple[int, ...], size=None) -> np.ndarray:
    """Image files decoded for a network of ``input_shape`` as ``predict`` reads them (``cnnlab explain`` too),
    resized to ``size`` where the run's images were."""
    return _read_images(paths, input_shape, size)


def _read_images(paths: list[str | Path], input_shape: tuple[int, ...], size) -> np.ndarray:
    """The files decoded as the training data was (channels, resize); a wrong size is an error.

    Only regular files of at most MAX_IMAGE_BYTES are read.
    """
    from cnnlab.data.dataset import DatasetError
    from cnnlab.data.images import decode_image

    if len(input_shape) != 3:
        raise RunError(f"the model's input is {input_shape}, not an image; predict classifies image files")
    height, width, channels = input_shape
    arrays = []
    for path in map(Path, paths):
        content = read_regular(path, MAX_IMAGE_BYTES, DatasetError, "image")
        array, detail = decode_image(content, channels, tuple(size) if size else None)
        if array is None:
            raise DatasetError(f"{path}: {detail}")
        if array.shape[:2] != (height, width):
            raise DatasetError(f"{path}: image is {array.shape[1]}x{array.shape[0]}, the model was trained "
                               f"on {width}x{height} images")
        arrays.append(array)
    return np.stack(arrays)
