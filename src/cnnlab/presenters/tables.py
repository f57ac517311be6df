"""Plain-text tables of evaluation results."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.runs.evaluation import Evaluation, Prediction


def format_evaluation(result: Evaluation) -> str:
    """Loss and accuracy, per-class accuracy, then the confusion matrix, as ``cnnlab evaluate`` prints them."""
    names = result.class_names
    width = max(len("class"), *map(len, names))
    lines = [f"{result.split}: {result.count:,} images  loss {result.loss:.4f}  "
             f"accuracy {result.accuracy:.4f}", *_evaluated_as(result), "",
             f"{'class'.ljust(width)}  accuracy"]
    for name in names:
        value = result.per_class_accuracy[name]
        lines.append(f"{name.ljust(width)}  {'-' if value is None else f'{value:.4f}':>8}")
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    cell = max(5, *(len(str(v)) + 1 for row in result.confusion_matrix for v in row))
    short = [name[:cell - 1] for name in names]
    lines.append(" " * width + "".join(s.rjust(cell) for s in short))
    for name, row in zip(names, result.confusion_matrix):
        lines.append(name.ljust(width) + "".join(str(v).rjust(cell) for v in row))
    return "\n".join(lines)


def confusion_csv(result: Evaluation) -> str:
    """The confusion matrix as CSV (``csv.writer``: a name with a comma or quote is quoted), names on both axes."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["true\\predicted", *result.class_names])
    writer.writerows([name, *row] for name, row in zip(result.class_names, result.confusion_matrix))
    return out.getvalue()


def _evaluated_as(result: Evaluation) -> list[str]:
    """How the model was run, where it is not plainly (no augmentation, fp32)."""
    lines = [TTA_LINE.format(result.tta)] if result.tta else []
    return lines + (["precision: bf16 (as the run trained)"] if result.precision == "bf16" else [])


TTA_LINE = "test-time augmentation: {} (the mean of the probabilities on each image and its mirror)"


def format_predictions(results: list[Prediction], tta: str | None = None) -> str:
    """Each image's path, then its top classes with probabilities (then the augmentation, if any)."""
    lines = []
    for item in results:
        lines.append(item.image)
        lines += [f"  {name:<16} {prob:7.2%}" for name, prob in item.top]
    return "\n".join(lines + ([TTA_LINE.format(tta)] if tta else []))
