"""What a comparison's report shows about a trained run: test results and the two claims
made for convolutions (robustness to small shifts, and learned local filters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.experiment.results import ConfusedPair, DeepAnalysis, RunOutcome

SHIFTS = (0, 1, 2, 3, 4)  # pixels; 4 is an eighth of a CIFAR-10 image's side
SHIFT_SAMPLE = 2000  # shifted copies are scored on at most this many test images


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


def _logits(model, images: np.ndarray, batch_size: int = 1000) -> torch.Tensor:
    from cnnlab.engine.metrics import predict_logits
    from cnnlab.engine.session import images_to_tensor

    return predict_logits(model, images_to_tensor(images, torch.device("cpu")), batch_size)


def shift_accuracy(model, images: np.ndarray, labels: np.ndarray, shifts) -> dict[int, float]:
    """Accuracy on copies shifted right and down by each amount (the mean of the two)."""
    sample = slice(0, min(len(labels), SHIFT_SAMPLE))
    images, labels = images[sample], labels[sample]
    result = {}
    for pixels in shifts:
        hits = [(_logits(model, shift_images(images, pixels, axis)).argmax(1).numpy() == labels).mean()
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


def evaluate_run(run_dir: Path, data, *, status: str, seed: int, deep: bool, shifts=SHIFTS) -> RunOutcome:
    """A finished run's test results and training figures; with ``deep``, the report's analyses too.

    ``data`` is the dataset the run was trained on, loaded once by the caller.
    """
    from cnnlab.engine.metrics import score_logits
    from cnnlab.net.resolve import summarize
    from cnnlab.net.spec import parse_spec
    from cnnlab.runs.directory import RunError, read_json, read_metrics, read_text
    from cnnlab.runs.evaluation import load_run

    run_dir = Path(run_dir)
    model, saved = load_run(run_dir)
    score = score_logits(_logits(model, data.x_test), data.y_test)
    rows = read_metrics(run_dir)
    if not rows:
        raise RunError(f"{run_dir / 'metrics.csv'}: no epochs recorded; damaged")
    info = summarize(parse_spec(saved["spec"], source=str(run_dir / "config.json")))
    return RunOutcome(
        run_dir=run_dir, status=status, seed=seed, test_accuracy=score["accuracy"], test_loss=score["loss"],
        best_val_accuracy=max((r["val_accuracy"] or 0.0) for r in rows),
        final_val_accuracy=rows[-1]["val_accuracy"] or 0.0,
        seconds_per_epoch=float(np.mean([r["time"] or 0.0 for r in rows])), history=rows,
        params=info.total_params, macs=info.macs, summary=read_text(run_dir / "summary.txt"),
        device=str(read_json(run_dir / "manifest.json").get("device", "unknown")),
        deep=analyse_deeply(model, data, score["predictions"], info, shifts) if deep else None)


def analyse_deeply(model, data, predictions: np.ndarray, info, shifts=SHIFTS) -> DeepAnalysis:
    """Test errors by class, accuracy on shifted images, and the first layer's filters of a trained model."""
    from cnnlab.engine.metrics import classification_report

    report = classification_report(data.y_test, predictions, data.class_names)
    return DeepAnalysis(
        confusion_matrix=report["confusion_matrix"], per_class_accuracy=report["per_class_accuracy"],
        most_confused=most_confused(report["confusion_matrix"], data.class_names),
        shift_accuracy=shift_accuracy(model, data.x_test, data.y_test, shifts),
        predictions=predictions, filters=first_conv_filters(model),
        layer_params=[(layer.layer.name, layer.params) for layer in info.layers])
