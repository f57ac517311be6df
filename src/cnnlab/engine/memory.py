"""Will a network train in the device's memory? An estimate, checked before anything is allocated.

Without it, a spec with a 10^7-unit dense layer dies in the allocator (a traceback, or
the kernel's out-of-memory killer) after its run folder was made. The estimate counts
float32 bytes from the summary alone (no model is built): the parameters, their
gradients, the optimizer's state, the layer outputs of a training batch (kept for the
backward pass) or of an evaluation batch, whichever is larger, and the training images
as the device holds them (uint8 pixels one byte a value, float input four; a memory-mapped
cache none: it is read batch by batch, its pages handed back as it goes). It is an
estimate: torch's workspaces, the allocator's rounding and the Python process itself
come on top, so a network close to the limit may still fail; one above it surely would.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from cnnlab.engine.config import TrainConfig
from cnnlab.errors import CnnlabError
from cnnlab.files import SYSTEM_FILE_BYTES, read_regular
from cnnlab.net.inference import BYTES_PER_FLOAT, ModelInfo

# cgroup limits at or above this are "no limit" (v1 writes 2**63 rounded down to a page)
UNLIMITED = 2**60
# Evaluation on the CPU forwards at most this much activation memory at a time (see evaluation_chunk).
EVAL_ACTIVATION_BUDGET = 64 * 2**20
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


class MemoryCheckError(CnnlabError):
    """A network whose training would not fit the device's memory; says the estimate and what is available."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs on its device, by what holds them."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int
    data: int
    optimizer_name: str = "adam"

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.activations + self.data

    def describe(self) -> str:
        """``"31.7 GB (parameters 3.0 GB, gradients 3.0 GB, ...)"``."""
        parts = [("parameters", self.parameters), ("gradients", self.gradients),
                 (f"{self.optimizer_name} state", self.optimizer), ("activations", self.activations),
                 ("data", self.data)]
        return f"{format_bytes(self.total)} ({', '.join(f'{name} {format_bytes(size)}' for name, size in parts)})"


@dataclass(frozen=True)
class Available:
    """Memory a run can have on its device, and where that figure comes from."""

    bytes: int
    source: str  # "MemAvailable in /proc/meminfo", "free on cuda:0", ...


def format_bytes(size: int) -> str:
    """Decimal units, as ``free -h --si`` and the summary's footer show them."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def optimizer_states(config: TrainConfig) -> int:
    """Tensors the size of the parameters the optimizer keeps: Adam's two moments, RMSprop's average, momentum."""
    if config.optimizer in ("adam", "adamw"):
        return 2
    if config.optimizer == "rmsprop":
        return 1
    if config.optimizer == "muon":
        return 1  # a momentum buffer for every weight (the kernels' at muon_momentum)
    return 1 if config.momentum else 0


def estimate(info: ModelInfo, config: TrainConfig, images: int, val_images: int = 0,
             bytes_per_value: int = BYTES_PER_FLOAT) -> MemoryEstimate:
    """The training memory of the network ``info`` describes, under ``config``, on ``images`` training images.

    ``images`` counts every image moved to the device (training and validation parts), each value
    ``bytes_per_value`` bytes there (:func:`stored_bytes`); ``val_images`` the validation part,
    evaluated in batches of ``config.eval_batch_size``.
    """
    weights = BYTES_PER_FLOAT * info.total_params
    trainable = BYTES_PER_FLOAT * info.trainable_params
    return MemoryEstimate(
        parameters=weights, gradients=trainable, optimizer=optimizer_states(config) * trainable,
        activations=max(training_activations(info, config.batch_size),
                        evaluation_activations(info, min(config.eval_batch_size, val_images))),
        data=bytes_per_value * images * math.prod(info.input_shape), optimizer_name=config.optimizer)


def stored_bytes(images) -> int:
    """Bytes per value of ``images`` on the training device: uint8 1, other numbers 4 (float32), a memory-mapped
    array 0 (it stays on disk, read batch by batch)."""
    from cnnlab.data.pages import is_mapped

    if is_mapped(images):
        return 0
    return 1 if getattr(images, "dtype", None) == np.uint8 else BYTES_PER_FLOAT


def training_activations(info: ModelInfo, batch: int) -> int:
    """Every layer's output for the batch (kept for the backward pass), plus the largest one's gradient twice:
    backward holds a layer's output gradient and its input gradient at once."""
    largest = max((math.prod(layer.output_shape) for layer in info.layers), default=0)
    return batch * (info.activation_bytes + 2 * BYTES_PER_FLOAT * largest)


def evaluation_activations(info: ModelInfo, batch: int) -> int:
    """Forward only, without gradients, so each output is freed once used: a chain holds one layer's
    input and output at a time (its output twice when an activation follows: before and after it);
    a graph with branches (a residual block's input, its branch, their sum) a few of its largest
    outputs at a time, counted as four."""
    if batch <= 0:
        return 0
    sizes = [math.prod(info.input_shape), *(_held_output(layer) for layer in info.layers)]
    held = max(a + b for a, b in zip(sizes, sizes[1:])) if info.is_chain else min(sum(sizes), 4 * max(sizes))
    return batch * BYTES_PER_FLOAT * held


def evaluation_chunk(info: ModelInfo | None, batch: int) -> int:
    """Images per forward pass within an evaluation batch of ``batch`` on the CPU: as many as keep the
    activations under ``EVAL_ACTIVATION_BUDGET`` (the CNN on CIFAR-10: 128 of 1024), at least one.

    There the activations are the process's resident memory: a whole batch of 1024 held 360 MB more
    than training did. An image's logits do not depend on the other images of its forward pass (eval
    mode), so the batch's loss, summed over its concatenated logits, is the same. Without ``info``
    (a wrapped model), the whole batch.
    """
    if info is None:
        return batch
    return max(1, min(batch, EVAL_ACTIVATION_BUDGET // max(evaluation_activations(info, 1), 1)))


def _held_output(layer) -> int:
    activated = layer.layer.fields.get("activation") not in (None, "linear")
    return math.prod(layer.output_shape) * (2 if activated else 1)


def available(device) -> Available:
    """Memory free for a run on ``device`` (a ``torch.device``): CUDA's free memory, or the RAM available."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        free, _ = torch.cuda.mem_get_info(index)
        return Available(int(free), f"free on cuda:{index}")
    return available_ram()


def available_ram() -> Available:
    """MemAvailable from /proc/meminfo (else the free pages), lowered to the cgroup's limit and to the
    process's address-space limit where one is set."""
    found = _meminfo_available()
    ram = (Available(found, "MemAvailable in /proc/meminfo") if found is not None
           else Available(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free RAM"))
    limits = {"left under the container's memory limit": _cgroup_room(),
              "left under the address-space limit (ulimit -v)": _address_space_room()}
    rooms = [Available(room, source) for source, room in limits.items() if room is not None]
    return min([ram, *rooms], key=lambda room: room.bytes)


def _address_space_room() -> int | None:
    """What this process may still map under RLIMIT_AS (``ulimit -v``, common on shared servers), None without one.

    Allocations past it fail however much RAM is free, so the check must see it too."""
    import resource

    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        mapped = int(_system_text("/proc/self/statm").split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
    return max(0, limit - mapped)


def _system_text(path) -> str:
    """A small kernel file (/proc, /sys) as text, read through the one open helper; OSError where it cannot be."""
    return read_regular(path, SYSTEM_FILE_BYTES, OSError).decode(errors="replace")


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    try:
        for line in _system_text(path).splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB (KiB)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """The cgroup's limit less its usage (v2, then v1); None when no limit is set or readable."""
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit_text = _system_text(limit_file).strip()
            if limit_text == "max" or int(limit_text) >= UNLIMITED:
                return None
            return max(0, int(limit_text) - int(_system_text(usage_file).strip()))
        except (OSError, ValueError):
            continue
    return None


def check_memory(info: ModelInfo, config: TrainConfig, images: int, device, val_images: int = 0,
                 bytes_per_value: int = BYTES_PER_FLOAT) -> MemoryEstimate:
    """The estimate, when it fits what ``device`` has free; else :class:`MemoryCheckError`, one line."""
    needed = estimate(info, config, images, val_images, bytes_per_value)
    room = available(device)
    if needed.total > room.bytes:
        raise MemoryCheckError(
            f"training '{info.name}' with batch size {config.batch_size} needs about {needed.describe()}, "
            f"but the {getattr(device, 'type', device)} has {format_bytes(room.bytes)} available ({room.source}); "
            "use a smaller network or batch size")
    return needed


def check_build_memory(info: ModelInfo, device, images: int = 1) -> int:
    """Bytes to build ``info``'s network and run ``images`` through it (no training): its weights
    twice (the module and the tensors loaded into it) and one forward pass; more than ``device``
    has free is a :class:`MemoryCheckError`, before anything is allocated."""
    needed = 2 * BYTES_PER_FLOAT * info.total_params + evaluation_activations(info, images)
    room = available(device)
    if needed > room.bytes:
        raise MemoryCheckError(
            f"building '{info.name}' ({info.total_params:,} parameters) needs about {format_bytes(needed)}, "
            f"but the {getattr(device, 'type', device)} has {format_bytes(room.bytes)} available ({room.source})")
    return needed


def check_fit_memory(spec, module, x, labels, config: TrainConfig, validation=None) -> MemoryEstimate:
    """:func:`check_memory` for ``Model.fit``, before the network is built or any tensor made.

    ``spec`` and ``module`` are the model's (``module`` None before the first fit: the network is
    then summarized as it will be built for ``x``, a preset's head taking the labels' class count);
    ``labels`` the checked labels (:class:`cnnlab.engine.inputs.Labels`); ``validation`` the checked
    ``(x_val, ...)`` or None, when ``config.val_split`` holds the validation part out of ``x``.
    """
    from cnnlab.engine.device import resolve_device
    from cnnlab.net.presets import preset_name
    from cnnlab.net.resolve import fit_spec, summarize

    if module is not None:
        info = module.info
    else:
        info = summarize(fit_spec(spec, x.shape[1:], labels.class_count() if preset_name(spec) else None))
    if validation is None:
        images, val_images = len(x), len(x) - int(len(x) * (1 - config.val_split))
    else:
        images, val_images = len(x) + len(validation[0]), len(validation[0])
    return check_memory(info, config, images, resolve_device(config.device), val_images, stored_bytes(x))
