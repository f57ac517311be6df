"""Keras' metrics beyond accuracy, counted on the device and read once per epoch.

Each metric is what Keras' own metric objects keep: a few counts (hits and images;
true and false positives and false negatives, per class where the metric needs them),
summed batch by batch with tensor operations that never read a value back to the host.
Its value is computed from the counts at the epoch's end, with Keras' formulas
(``keras.metrics.TopKCategoricalAccuracy``, ``Precision``, ``Recall``, ``FBetaScore``).

The counts see the model's outputs as Keras sees them (``y_pred``): the probabilities
where the network ends in a softmax, its raw outputs otherwise; the labels are class
indices, one-hot where a metric compares them column by column, as Keras' one-hot ``y_true``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): F-scores divide by their sums plus it
AVERAGES = (None, "micro", "macro", "weighted")


class CountedMetric:
    """A metric as counts summed over batches: :meth:`counts` per batch (on the device), :meth:`result` at the end."""

    name: str

    def size(self, classes: int) -> int:
        """How many counts it keeps for ``classes`` outputs."""
        raise NotImplementedError

    def counts(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """float64 ``(size,)`` counts of a batch: ``outputs`` ``(B, classes)`` as Keras' y_pred, ``target`` ``(B,)``."""
        raise NotImplementedError

    def result(self, counts: np.ndarray) -> float | list[float]:
        """The metric's value from the summed counts (a list of floats: one per class)."""
        raise NotImplementedError


def _safe_ratio(top: float, bottom: float) -> float:
    """Keras' divide_no_nan: 0 where nothing was counted."""
    return float(top / bottom) if bottom else 0.0


@dataclass(frozen=True)
class TopK(CountedMetric):
    """Keras' top_k_categorical_accuracy: an image counts when its class's output is among the ``k`` largest
    (ties count in its favour, as Keras' ``in_top_k``)."""

    name: str
    k: int = 5

    def size(self, classes: int) -> int:
        return 2  # hits, images

    def counts(self, outputs, target):
        kth = torch.topk(outputs, min(self.k, outputs.shape[1]), dim=1).values[:, -1:]  # (B, 1) the k-th largest
        hits = (outputs.gather(1, target[:, None]) >= kth).sum()
        return torch.stack([hits.double(), torch.tensor(float(len(target)), dtype=torch.float64,
                                                        device=outputs.device)])

    def result(self, counts):
        return _safe_ratio(counts[0], counts[1])


def _one_hot(target: torch.Tensor, classes: int) -> torch.Tensor:
    """``(B, classes)`` booleans; one output (a binary classifier) is the label itself, as Keras' y_true."""
    if classes == 1:
        return (target == 1)[:, None]
    return torch.nn.functional.one_hot(target, classes).bool()


@dataclass(frozen=True)
class Confusion(CountedMetric):
    """Keras' Precision and Recall: each output a yes/no answer (above ``threshold``, or among the row's
    ``top_k``), compared with the one-hot labels over every output (or the column ``class_id``)."""

    name: str
    kind: str                      # "precision" or "recall"
    threshold: float | None = None  # Keras' default: 0.5, or none with top_k (the top k count as yes)
    top_k: int | None = None
    class_id: int | None = None

    def size(self, classes: int) -> int:
        return 3  # true positives, false positives, false negatives

    def counts(self, outputs, target):
        truth = _one_hot(target, outputs.shape[1])
        if self.top_k is not None:  # keep the k largest of each row, as Keras' _filter_top_k
            top = torch.topk(outputs, min(self.top_k, outputs.shape[1]), dim=1).indices
            outputs = torch.full_like(outputs, -torch.inf).scatter(1, top, outputs.gather(1, top))
        threshold = self.threshold if self.threshold is not None else (0.5 if self.top_k is None else -np.inf)
        said = outputs > threshold
        if self.class_id is not None:
            said, truth = said[:, self.class_id], truth[:, self.class_id]
        return torch.stack([(said & truth).sum(), (said & ~truth).sum(), (~said & truth).sum()]).double()

    def result(self, counts):
        true_pos, false_pos, false_neg = counts
        return _safe_ratio(true_pos, true_pos + (false_pos if self.kind == "precision" else false_neg))


@dataclass(frozen=True)
class FBeta(CountedMetric):
    """Keras' FBetaScore (F1Score: beta 1): per class, the outputs' maximum (or those above ``threshold``)
    against the one-hot labels; ``average`` None (one score per class), micro, macro or weighted."""

    name: str
    average: str | None = None
    beta: float = 1.0
    threshold: float | None = None

    def size(self, classes: int) -> int:
        return 4 * classes  # per class: true positives, false positives, false negatives, images

    def counts(self, outputs, target):
        truth = _one_hot(target, outputs.shape[1]).double()
        if self.threshold is None:  # the row's maximum, but never an all-zero row (Keras' 1e-9 guard)
            said = (outputs >= outputs.max(dim=1, keepdim=True).values) & (outputs.abs() > 1e-9)
        else:
            said = outputs > self.threshold
        said = said.double()
        return torch.cat([(said * truth).sum(0), (said * (1 - truth)).sum(0), ((1 - said) * truth).sum(0),
                          truth.sum(0)])

    def result(self, counts):
        true_pos, false_pos, false_neg, support = counts.reshape(4, -1)
        if self.average == "micro":
            true_pos, false_pos, false_neg = true_pos.sum(), false_pos.sum(), false_neg.sum()
        precision = true_pos / (true_pos + false_pos + KERAS_EPSILON)
        recall = true_pos / (true_pos + false_neg + KERAS_EPSILON)
        beta2 = self.beta ** 2
        score = (1 + beta2) * precision * recall / (beta2 * precision + recall + KERAS_EPSILON)
        if self.average == "weighted":
            return float(np.sum(score * support / (support.sum() + KERAS_EPSILON)))
        if self.average is not None:
            return float(np.mean(score))
        return [float(value) for value in score]


class MetricTally:
    """The counts of some metrics over an epoch's batches (or an evaluation's), kept on the device.

    ``softmax``: the network's outputs are the logits of a final softmax (Keras' y_pred is then
    their softmax); ``classes``: the outputs per image.
    """

    def __init__(self, metrics, classes: int | None, device: torch.device, softmax: bool = True):
        self.metrics, self.softmax = tuple(metrics), softmax
        self.sums = [] if classes is None else self._zeros(classes, device)  # None: allocated at the first batch

    def _zeros(self, classes: int, device: torch.device) -> list[torch.Tensor]:
        return [torch.zeros(m.size(classes), dtype=torch.float64, device=device) for m in self.metrics]

    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Count a batch: ``logits`` ``(B, classes)``, ``target`` ``(B,)`` class indices. No host sync."""
        outputs = torch.softmax(logits.float(), dim=1) if self.softmax else logits.float()
        if not self.sums:
            self.sums = self._zeros(outputs.shape[1], outputs.device)
        for metric, total in zip(self.metrics, self.sums):
            total += metric.counts(outputs, target)

    def values(self, reduce=None) -> dict[str, float | list[float]]:
        """Each metric's value by name: one read of every count (``reduce`` sums them over processes first)."""
        if not self.metrics or not self.sums:
            return {}
        packed = torch.cat(self.sums)
        packed = (reduce(packed) if reduce is not None else packed).cpu().numpy()
        values, at = {}, 0
        for metric, total in zip(self.metrics, self.sums):
            values[metric.name] = metric.result(packed[at:at + len(total)])
            at += len(total)
        return values


def tally_for(model: torch.nn.Module, metrics, device: torch.device) -> MetricTally | None:
    """A tally of ``metrics`` for ``model``'s outputs (None without metrics): the outputs' width from the
    built network (else from the first batch), softmax unless the network declares otherwise."""
    if not metrics:
        return None
    info = getattr(model, "info", None) or getattr(getattr(model, "model", None), "info", None)
    classes = info.output_shape[-1] if info is not None else None
    return MetricTally(metrics, classes, device, getattr(model, "softmax_output", True))
