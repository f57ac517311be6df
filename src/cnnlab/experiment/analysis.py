"""What a comparison's report shows about a trained run: test results and the two claims
made for convolutions (robustness to small shifts, and learned local filters).

Measuring needs the model and passes over the test part; a finished comparison run
again measures nothing: the results are cached in the comparison folder
(``analyses/<run>.json``), keyed by the hash of the weights they were measured on, of
the test images and of what was measured, so a changed run or dataset is measured anew.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from cnnlab.experiment.results import ConfusedPair, DeepAnalysis, RunMeasurements, RunOutcome

SHIFT_FRACTION = 8  # images are shifted by up to 1/8 of their side: 4 pixels of CIFAR-10's 32, 1 of digits' 8
SHIFT_STEPS = 4     # at most this many shifted copies are scored, evenly spaced up to the largest shift
SHIFT_SAMPLE = 2000  # shifted copies are scored on at most this many test images
CACHE_FOLDER = "analyses"
CACHE_VERSION = 1   # raised whenever what is measured changes: older cache entries are then measured again
MAX_CACHE_BYTES = 256 * 1024**2  # a cache entry holds one int per test image and the first layer's kernels


def shifts_for(image_shape) -> tuple[int, ...]:
    """The shifts in pixels to test: 0 up to an eighth of the image's smaller side; ``(0,)`` under 8 pixels."""
    largest = min(image_shape[:2]) // SHIFT_FRACTION
    return tuple(sorted({round(largest * step / SHIFT_STEPS) for step in range(SHIFT_STEPS + 1)}))


def shift_images(images: np.ndarray, pixels: int, axis: int) -> np.ndarray:
    """Move ``(N, H, W, C)`` images by ``pixels`` along axis 1 (down) or 2 (right), filling with 0."""
    if pixels == 0:
        return images
    out = np.zeros_like(images)
    source = [slice(None)] * 4
    target = [slice(None)] * 4
    source[axis], target[axis] = slice(0, -pixels), slice(pixels, None)
    out[tuple(target)] = images[tuple(source)]
    return out


def _logits(model, images: np.ndarray, precision: str, batch_size: int = 1000) -> torch.Tensor:
    """The model's float32 outputs on ``images``, computed in ``precision`` (the run's, as ``cnnlab evaluate``)."""
    from cnnlab.engine.batches import image_batches
    from cnnlab.engine.evaluation import predict_logits

    return predict_logits(model, image_batches(images, torch.device("cpu")), batch_size, precision)


def shift_accuracy(model, images: np.ndarray, labels: np.ndarray, shifts, precision: str = "fp32") -> dict[int, float]:
    """Accuracy on copies shifted right and down by each amount (the mean of the two)."""
    sample = slice(0, min(len(labels), SHIFT_SAMPLE))
    images, labels = images[sample], labels[sample]
    result = {}
    for pixels in shifts:
        hits = [(_logits(model, shift_images(images, pixels, axis), precision).argmax(1).numpy() == labels).mean()
                for axis in ((1,) if pixels == 0 else (1, 2))]
        result[int(pixels)] = float(np.mean(hits))
    return result


def first_conv_filters(model) -> np.ndarray | None:
    """The first conv layer's kernels as ``(filters, kh, kw, in_channels)``, or None for an MLP."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module.weight.detach().permute(0, 2, 3, 1).numpy().copy()
    return None


def most_confused(matrix: np.ndarray, class_names: list[str], top: int = 5) -> list[ConfusedPair]:
    """The off-diagonal cells with the most errors: true class taken for another."""
    matrix = np.asarray(matrix)
    cells = [(matrix[i, j], i, j) for i in range(len(matrix)) for j in range(len(matrix)) if i != j]
    cells.sort(reverse=True)
    return [ConfusedPair(class_names[i], class_names[j], int(n)) for n, i, j in cells[:top] if n > 0]


def evaluate_run(run_dir: Path, data, *, status: str, seed: int, deep: bool, shifts=None,
                 cache_root: Path | None = None, tta: str | None = None, network=None) -> RunOutcome:
    """A finished run's test results and training figures; with ``deep``, the report's analyses too.

    ``data`` is the dataset the run was trained on, loaded once by the caller. ``shifts``
    defaults to :func:`shifts_for` the images; ``cache_root`` to the comparison folder
    holding the run (none for a run elsewhere). ``tta`` (``"flip"``, ``"flip_translate"``)
    also scores the test part with that test-time augmentation (:mod:`cnnlab.engine.tta`). ``network``:
    the run's network already loaded by the caller (else it is loaded here, where something is measured).
    """
    from cnnlab.net.resolve import summarize
    from cnnlab.net.spec import parse_spec
    from cnnlab.runs.directory import RunError, read_json, read_metrics, read_text
    from cnnlab.runs.evaluation import run_precision
    from cnnlab.runs.records import read_config

    run_dir = Path(run_dir)
    saved = read_config(run_dir)
    rows = read_metrics(run_dir)
    if not rows:
        raise RunError(f"{run_dir / 'metrics.csv'}: no epochs recorded; damaged")
    info = summarize(parse_spec(saved["spec"], source=str(run_dir / "config.json")))
    manifest = read_json(run_dir / "manifest.json")
    shifts = tuple(shifts_for(data.image_shape) if shifts is None else shifts)
    precision = run_precision(saved, run_dir, torch.device("cpu"))  # as `cnnlab evaluate` scores the run
    measured = measure_run(run_dir, data, deep=deep, shifts=shifts, tta=tta, precision=precision,
                           cache_root=comparison_folder_of(run_dir) if cache_root is None else cache_root,
                           network=network)
    split = manifest.get("split") if isinstance(manifest.get("split"), dict) else {}
    return RunOutcome(
        run_dir=run_dir, status=status, seed=seed, test_accuracy=measured.test_accuracy,
        test_loss=measured.test_loss, best_val_accuracy=max((r["val_accuracy"] or 0.0) for r in rows),
        final_val_accuracy=rows[-1]["val_accuracy"] or 0.0,
        seconds_per_epoch=float(np.mean([r["time"] or 0.0 for r in rows])), history=rows,
        params=info.total_params, macs=info.macs, summary=read_text(run_dir / "summary.txt"),
        device=str(manifest.get("device", "unknown")), deep=deep_analysis(measured, data, info) if deep else None,
        predictions=measured.predictions, versions=_strings(manifest.get("versions")),
        threads=manifest.get("threads") if isinstance(manifest.get("threads"), int) else None,
        split_description=split.get("description") if isinstance(split.get("description"), str) else None,
        tta=tta, tta_accuracy=measured.tta_accuracy, **_recipe(saved.get("train")))


def _recipe(train) -> dict:
    """The run's recipe name and its options in words, from its config.json."""
    from cnnlab.engine.recipes import describe_options

    if not isinstance(train, dict):
        return {}
    try:
        return {"recipe": str(train.get("recipe") or "homework"), "options_text": describe_options(train)}
    except (TypeError, ValueError):  # a damaged record: the results stand without the words
        return {}


def _strings(record) -> dict:
    """A manifest's mapping of names to version strings, anything else in it left out."""
    if not isinstance(record, dict):
        return {}
    return {str(k): v for k, v in record.items() if isinstance(v, str)}


def deep_analysis(measured: RunMeasurements, data, info) -> DeepAnalysis:
    """Test errors by class, accuracy on shifted images, and the first layer's filters, as measured."""
    from cnnlab.engine.evaluation import classification_report

    report = classification_report(data.y_test, measured.predictions, data.class_names)
    return DeepAnalysis(
        confusion_matrix=report["confusion_matrix"], per_class_accuracy=report["per_class_accuracy"],
        most_confused=most_confused(report["confusion_matrix"], data.class_names),
        shift_accuracy=dict(measured.shift_accuracy or {}), predictions=measured.predictions,
        filters=measured.filters, layer_params=[(layer.layer.name, layer.params) for layer in info.layers])


def measure_run(run_dir: Path, data, *, deep: bool, shifts: tuple[int, ...], cache_root: Path | None,
                tta: str | None = None, precision: str = "fp32", network=None) -> RunMeasurements:
    """The run's measurements: from the cache under ``cache_root`` when they were made on these weights
    (in ``precision``, with ``tta``); else measured on ``network`` (the run's, loaded), or on the run loaded."""
    from cnnlab.files import write_file

    key = cache_key(run_dir, data, shifts, tta, precision)
    path = None if cache_root is None else Path(cache_root) / CACHE_FOLDER / f"{run_dir.name}.json"
    cached = None if path is None else read_cached(path, key, data)
    if cached is not None and (cached.deep or not deep):
        return cached
    measured = _measure(run_dir, data, deep, shifts, tta, precision, network)
    if path is not None:
        record = json.dumps({"key": key, "measurements": measured.to_dict()})
        write_file(path, record.encode(), root=cache_root)
    return measured


def _measure(run_dir: Path, data, deep: bool, shifts: tuple[int, ...], tta: str | None,
             precision: str, network=None) -> RunMeasurements:
    from cnnlab.engine.evaluation import score_logits
    from cnnlab.engine.tta import with_tta
    from cnnlab.runs.model_file import load_run

    model = load_run(run_dir)[0] if network is None else network
    score = score_logits(_logits(model, data.x_test, precision), data.y_test)
    augmented = (score_logits(_logits(with_tta(model, tta), data.x_test, precision), data.y_test)["accuracy"]
                 if tta else None)
    return RunMeasurements(score["accuracy"], score["loss"], score["predictions"], deep,
                           shift_accuracy(model, data.x_test, data.y_test, shifts, precision) if deep else None,
                           first_conv_filters(model) if deep else None, augmented)


def cache_key(run_dir: Path, data, shifts: tuple[int, ...], tta: str | None = None, precision: str = "fp32") -> dict:
    """What a cached measurement must have been made on: these weights, these test images, these shifts,
    this test-time augmentation, this precision."""
    from cnnlab.engine.checkpoint import CHECKPOINT, MAX_FILE_BYTES, WEIGHTS
    from cnnlab.files import read_regular
    from cnnlab.runs.directory import RunError

    # the file load_run reads the weights from: the final weights, else the last checkpoint
    weights = run_dir / (WEIGHTS if (run_dir / WEIGHTS).exists() else CHECKPOINT)
    test = hashlib.sha256(np.ascontiguousarray(data.x_test).tobytes())
    test.update(np.asarray(data.y_test, dtype=np.int64).tobytes())
    test.update(json.dumps([list(data.x_test.shape), list(data.class_names)]).encode())
    return {"version": CACHE_VERSION, "weights": weights.name,
            "weights_sha256": hashlib.sha256(read_regular(weights, MAX_FILE_BYTES, RunError, "weights file"))
            .hexdigest(), "test_sha256": test.hexdigest(), "shifts": list(shifts),
            **({"tta": tta} if tta else {}),  # a key made before these two existed still holds without them
            **({"precision": precision} if precision != "fp32" else {})}


def read_cached(path: Path, key: dict, data) -> RunMeasurements | None:
    """The measurements cached at ``path`` under ``key``; None when absent, stale or unreadable (then redone)."""
    from cnnlab.errors import CnnlabError
    from cnnlab.files import read_regular
    from cnnlab.formats import parse_json

    if path.is_symlink() or not path.exists():  # a planted link is not read (and writing there is refused)
        return None
    try:
        record = parse_json(read_regular(path, MAX_CACHE_BYTES, CnnlabError, "analysis cache"), str(path))
        if record.get("key") != key:
            return None
        measured = RunMeasurements.from_dict(record["measurements"], len(data.y_test), len(data.class_names))
        # the accuracy must be what its own predictions score: an edited number is measured again
        scored = float(np.mean(measured.predictions == np.asarray(data.y_test))) if len(data.y_test) else 0.0
        if abs(scored - measured.test_accuracy) > 1e-9 or key.get("tta") and measured.tta_accuracy is None:
            return None
        return measured
    except (CnnlabError, ValueError, TypeError, KeyError, AttributeError):
        return None


def comparison_folder_of(run_dir: Path) -> Path | None:
    """The comparison folder that ``run_dir`` is one of the runs of (``<comparison>/runs/<run>``), or None."""
    from cnnlab.runs.directory import is_marked

    folder = Path(run_dir).parent.parent
    return folder if Path(run_dir).parent.name == "runs" and is_marked(folder, "comparison") else None
