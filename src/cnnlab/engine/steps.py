"""One training step on a batch, the autocast it runs in, and the errors the loop raises.

The epoch loop (:mod:`cnnlab.engine.loop`) and the time estimate
(:mod:`cnnlab.engine.estimate`) run these (evaluation: :mod:`cnnlab.engine.evaluation`);
how many processes share a batch is the strategy's business (:mod:`cnnlab.engine.strategy`),
which passes the loss's divisor down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from cnnlab.engine.averaging import WeightAverage
from cnnlab.errors import CnnlabError


class NonFiniteLossError(CnnlabError):
    """Training produced a NaN or infinite loss; names the epoch and step."""

    def __init__(self, epoch: int, step: int, value: float, kept: str | None = None):
        # The engine keeps no files, so it claims none; the run layer says what it kept (``kept``).
        super().__init__(f"non-finite loss ({value}) at epoch {epoch}, step {step}: training stopped"
                         f"{'; ' + kept if kept else ''} (try a lower learning rate)")
        self.epoch, self.step, self.value = epoch, step, value


class DeterminismError(CnnlabError):
    """--deterministic asked for, and an operation has no deterministic implementation."""


def deterministic_guard(exc: RuntimeError) -> None:
    """Turn torch's refusal of a non-deterministic operation into one line; other errors pass."""
    text = str(exc)
    if "deterministic" in text:
        raise DeterminismError("--deterministic: torch refused an operation: "
                               + text.strip().splitlines()[0]) from None


def autocast(device: torch.device, precision: str):
    """bf16 autocast (matmuls and convolutions in bfloat16, weights kept in float32), or nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


EPSILON = 1e-7  # Keras' backend.epsilon(): the clip of probabilities in its cross-entropies


@dataclass(frozen=True)
class Objective:
    """The loss, in the one place it is computed: for training (:func:`train_step`) and for every
    evaluation (:func:`cnnlab.engine.evaluation.evaluation_sums`).

    ``loss``: ``"crossentropy"`` (cnnlab's recipe: softmax cross-entropy on the network's logits,
    its validation loss unsmoothed) or Keras' ``"categorical_crossentropy"`` /
    ``"sparse_categorical_crossentropy"`` (the same for the engine, which holds class indices) /
    ``"binary_crossentropy"`` (one sigmoid unit, labels 0 or 1). Keras' losses compute on
    what Keras' model would output (``softmax_output``: the network's final softmax, which
    cnnlab's forward leaves out) with Keras' ``from_logits`` and ``label_smoothing``,
    in training and evaluation alike.
    """

    loss: str = "crossentropy"
    from_logits: bool = False
    label_smoothing: float = 0.0
    softmax_output: bool = True  # the network ends in a softmax, which forward() leaves out

    @classmethod
    def of(cls, config, model) -> Objective:
        """The objective ``config`` (a TrainConfig) asks for, on ``model``'s outputs."""
        return cls(config.loss, config.from_logits, config.label_smoothing,
                   getattr(model, "softmax_output", True))

    @property
    def keras(self) -> bool:
        return self.loss != "crossentropy"

    def sample_losses(self, outputs: torch.Tensor, target: torch.Tensor, training: bool = True) -> torch.Tensor:
        """Each image's loss ``(B,)`` from the network's float32 outputs ``(B, K)`` and class indices ``(B,)``."""
        smoothing = self.label_smoothing if training or self.keras else 0.0  # cnnlab's val_loss: unsmoothed
        if self.loss == "binary_crossentropy":
            return self._binary(outputs, target)
        if not self.keras or (self.softmax_output and not self.from_logits) or \
                (self.from_logits and not self.softmax_output):
            # Keras' probabilities softmax(z) taken in the stable log form (Keras clips them at 1e-7),
            # or logits given as logits: the plain cross-entropy on the outputs.
            return F.cross_entropy(outputs, target, reduction="none", label_smoothing=smoothing)
        if self.from_logits:  # a softmax output called logits: Keras takes the log-softmax of its probabilities
            log_p = F.log_softmax(torch.softmax(outputs, dim=1), dim=1)
        else:  # outputs that are not a softmax, read as probabilities: Keras normalises them to sum 1 and clips
            p = outputs / outputs.sum(dim=1, keepdim=True)
            log_p = p.clamp(EPSILON, 1 - EPSILON).log()
        picked = log_p.gather(1, target[:, None])[:, 0]
        return -(1 - smoothing) * picked - smoothing / outputs.shape[1] * log_p.sum(dim=1)

    def _binary(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Keras' binary cross-entropy of one unit ``(B, 1)``, the labels smoothed towards 0.5."""
        output = torch.softmax(outputs, dim=1) if self.softmax_output else outputs
        labels = target.to(output.dtype)[:, None] * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            losses = F.binary_cross_entropy_with_logits(output, labels, reduction="none")
        else:
            losses = F.binary_cross_entropy(output.clamp(EPSILON, 1 - EPSILON), labels, reduction="none")
        return losses.mean(dim=1)

    def hits(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """How many images are classified right (int64, on the device): the top class, or for one
        binary unit its side of 0.5 (of 0 for logits), as Keras' binary accuracy."""
        if self.loss == "binary_crossentropy":
            threshold = 0.0 if self.from_logits else 0.5
            return ((outputs[:, 0] > threshold).long() == target).sum()
        return (outputs.argmax(dim=1) == target).sum()


def reduce_losses(losses: torch.Tensor, weights: torch.Tensor | None, divisor: float | None) -> torch.Tensor:
    """The batch's loss from each image's ``(B,)``: Keras' ``sum_over_batch_size`` of the losses times
    their weights (``sample_weight``, ``class_weight``), the mean without weights; summed where
    ``divisor`` is given (the strategy divides; see :func:`train_step`)."""
    weighted = losses if weights is None else losses * weights
    return weighted.mean() if divisor is None else weighted.sum()


def train_step(model, optimizer, scheduler, xb, yb, precision: str = "fp32", objective: Objective | None = None,
               average: WeightAverage | None = None, divisor: float | None = None,
               weights: torch.Tensor | None = None, tally=None, loss_scale: float = 1.0, lookahead=None):
    """One optimisation step; returns the batch's loss and correct count (on the device).

    ``divisor`` None: the loss is the batch mean (one process). Else the summed loss divided
    by ``divisor`` is backpropagated and the sum returned (several processes, each holding
    part of the batch: see :class:`cnnlab.engine.data_parallel.DataParallel`). ``weights``
    ``(B,)``: each image's weight in the loss (Keras' ``sample_weight``; None: all 1). ``tally``: the
    compiled metrics' counts (:class:`cnnlab.engine.metric_counts.MetricTally`), added to on the device.
    ``loss_scale``: the gradient's factor (the batch size for Keras' ``"sum"`` reduction; the returned loss stays
    the mean). ``lookahead``: a :class:`cnnlab.engine.lookahead.Lookahead` told of each step.
    """
    objective = objective or Objective()
    with autocast(xb.device, precision):
        outputs = model(xb).float()  # (images, classes)
        loss = reduce_losses(objective.sample_losses(outputs, yb), weights, divisor)
    optimizer.zero_grad(set_to_none=True)
    objective_loss = loss if divisor is None else loss / divisor
    (objective_loss * loss_scale if loss_scale != 1 else objective_loss).backward()  # no extra op by default
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    if average is not None:
        average.update(model)  # DDP's wrapper yields the model's own parameters, in order
    if lookahead is not None:
        lookahead.update(model)
    if tally is not None:
        tally.add(outputs.detach(), yb)
    return loss.detach(), objective.hits(outputs.detach(), yb)
