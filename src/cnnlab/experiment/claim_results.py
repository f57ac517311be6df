"""The claims for convolutions as the comparison judges them over every seed (:mod:`cnnlab.experiment.findings`),
as typed records the report says in words (:mod:`cnnlab.report.claims`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnlab.experiment.results import Contrast, FilterReading, Stat


@dataclass
class ShiftLoss:
    """What one model loses on test images shifted by the largest shift, over the seeds it was measured on."""

    spec: str
    seeds: list[int]
    convolutional: bool          # it has a convolutional layer (its runs hold first-layer filters)
    curve: dict[int, float]      # pixels shifted -> test accuracy, the mean over ``seeds``
    drop: Stat                   # accuracy lost at the largest shift, per seed (a fraction)
    lost: Stat                   # that drop as a share of the seed's margin over guessing, per seed


@dataclass
class ShiftClaim:
    """Claim 1 over every seed: do the convolutional models lose a smaller share of their margin over
    guessing on shifted images than the others, beyond the seed-to-seed spread?"""

    largest: int                    # the largest shift measured on every model, in pixels
    guessing: float                 # always answering the commonest class of the scored test images
    images: int                     # test images the shifted copies were scored on
    losses: list[ShiftLoss]         # the models the claim is tested on
    left_out: dict[str, str]        # spec -> why it is left out: 'not measured' or 'at chance'
    contrast: Contrast | None       # the others' lost share minus the convolutional ones'; None: one kind only
    verdict: str                    # one of findings.VERDICTS


@dataclass
class FilterClaim:
    """Claim 2 for one model over every seed: are its first layer's filters smoother than random weights'?"""

    spec: str
    seeds: list[int]
    readings: list[FilterReading]              # one per seed
    neighbour: Stat | None                     # neighbour correlation over the seeds; None for 1x1 kernels
    interval: tuple[float, float] | None       # 95% t-interval of its mean over the seeds; None for one seed
    verdict: str                               # one of findings.VERDICTS
