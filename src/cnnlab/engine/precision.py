"""Which precision training runs in: bf16 only with bf16 units, and for "auto" only where it is faster.

bf16 autocast is about 1.9x faster for the CNN on a CPU with AVX-512 BF16 or AMX units,
and about 20x *slower* on one without them (oneDNN emulates it). So ``--precision bf16``
on such a CPU trains in fp32 and says why, and ``--precision auto`` times a few warm-up
steps of the model in each precision (where the units exist) and keeps the faster.
The choice is made once per training, before the first epoch.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.engine.config import TrainConfig
from cnnlab.files import SYSTEM_FILE_BYTES, read_regular

X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo "flags" of x86 CPUs with bf16 units
ARM_BF16_FLAG = "bf16"                         # /proc/cpuinfo "Features" of Arm CPUs with BF16 instructions
CPUINFO = Path("/proc/cpuinfo")               # Linux; elsewhere torch's own check decides
# "auto" takes bf16 only when it is clearly faster: a few timed steps are noisy by a few percent,
# and bf16 costs a little accuracy, so a tie goes to fp32.
BF16_MARGIN = 0.95


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision training runs in, and the one line that says why (empty: nothing to say)."""

    precision: str
    reason: str = ""


def cpu_flags(cpuinfo: Path | None = None) -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 "flags", Arm "Features"); None where unreadable."""
    try:
        lines = read_regular(cpuinfo or CPUINFO, SYSTEM_FILE_BYTES, OSError).decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def _torch_cpu_has_bf16() -> bool:
    """torch's own check (cpuinfo, on every OS); unknown counts as no bf16 units."""
    try:
        if platform.machine().lower() in ("arm64", "aarch64"):
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # on Arm: the BF16 extension
        # On x86 _is_mkldnn_bf16_supported() is true for any AVX-512 CPU (emulated bf16): ask for the units.
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX on x86, the BF16 extension on Arm)."""
    flags = cpu_flags()
    if flags is None:  # not Linux: torch's check
        return _torch_cpu_has_bf16()
    return any(flag in flags for flag in (*X86_BF16_FLAGS, ARM_BF16_FLAG))


def cuda_has_bf16(device: torch.device) -> bool:
    """Whether the GPU computes bf16 natively (compute capability 8.0 or newer), not emulated."""
    with torch.cuda.device(device):
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch before 2.5 has no emulation to tell apart
            return bool(torch.cuda.is_bf16_supported())


def has_bf16_units(device: torch.device) -> bool:
    """Whether ``device`` has bf16 units (so that bf16 autocast can be faster there)."""
    if device.type == "cuda":
        return cuda_has_bf16(device)
    return device.type == "cpu" and cpu_has_bf16()


def missing_units(device: torch.device) -> str:
    """Why bf16 would be slow on ``device``, in a few words."""
    if device.type == "cuda":
        return f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16 units (compute capability below 8.0)"
    return f"this CPU has no bf16 units (no {'/'.join(X86_BF16_FLAGS)})"


def choose_precision(asked: str, device: torch.device, epoch_seconds: Callable[[str], float]) -> PrecisionChoice:
    """The precision to train in for ``asked`` ("fp32", "bf16" or "auto") on ``device``.

    ``epoch_seconds(precision)`` times the model in that precision; it is called (once
    per precision) only for "auto" on hardware with bf16 units.
    """
    if asked == "fp32":
        return PrecisionChoice("fp32")
    if not has_bf16_units(device):
        slower = "bf16 would be ~20x slower" if device.type == "cpu" else "bf16 would be emulated, not faster"
        return PrecisionChoice("fp32", f"--precision {asked}: {missing_units(device)}: {slower}; training in fp32")
    if asked == "bf16":
        return PrecisionChoice("bf16")
    fp32, bf16 = epoch_seconds("fp32"), epoch_seconds("bf16")
    faster = "bf16" if bf16 < fp32 * BF16_MARGIN else "fp32"
    return PrecisionChoice(faster, f"--precision auto: training in {faster} (an epoch is estimated at "
                                   f"{bf16:.2f} s in bf16, {fp32:.2f} s in fp32, timed on warm-up steps)")


def session_precision(state, data, config: TrainConfig, callback=None) -> TrainConfig:
    """``config`` with its precision resolved for this model and data ("fp32" or "bf16"); the reason noted.

    "auto" times warm-up steps with :func:`cnnlab.engine.estimate.estimate_epoch_seconds`,
    which leaves the run untouched (a copy of the model, the RNG restored).
    """
    from cnnlab.engine import distributed
    from cnnlab.engine.estimate import estimate_epoch_seconds

    if config.precision == "fp32":
        return config

    def epoch_seconds(precision: str) -> float:
        return estimate_epoch_seconds(state, data, dataclasses.replace(config, precision=precision),
                                              processes=distributed.world_size())

    # Under torchrun rank 0 times and chooses for every process, so that all train alike.
    choice = distributed.on_main(lambda: choose_precision(config.precision, data.x_train.device, epoch_seconds))
    if choice.reason and callback is not None:
        callback.note(choice.reason)
    return dataclasses.replace(config, precision=choice.precision)


def inference_precision(recorded: str, device: torch.device) -> str:
    """The precision to evaluate a model trained in ``recorded`` with: the same, unless bf16 would be slow here."""
    return "bf16" if recorded == "bf16" and has_bf16_units(device) else "fp32"
