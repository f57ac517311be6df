"""Seeds as Keras means them: a run without one differs, and none touches the user's generators.

A :class:`cnnlab.Model` without ``seed=`` draws one when it is made (:func:`new_seed`),
from the operating system's entropy, or, after :func:`set_random_seed`, from a stream of
its own that the call seeded, so that everything after it repeats (Keras'
``keras.utils.set_random_seed``). The seed is kept (``model.seed``, ``history.seed``, a
run folder's manifest), so any run can be repeated exactly with ``Model(seed=...)``.

A run draws its initial weights, dropout and augmentation from torch's global generator,
and its checkpoints save and restore every global generator. :func:`run_generators`
lends the run those generators: seeded on entry, given back as they were on exit, so
``np.random.rand()`` after ``fit`` is what it would have been without it. Only
:func:`set_random_seed`, which the user calls to that end, seeds the global generators
for good. This module imports torch only when a run starts.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cnnlab.engine.config import MAX_SEED, ConfigError

DRAWN_SEEDS = 2**31  # a drawn seed is below this: ten digits at most, easy to read back and retype
_stream: random.Random | None = None  # set_random_seed's own stream; None: the OS's entropy
_lent = threading.local()  # whether this thread is inside run_generators


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` when it is an integer from 0 to 2**63 - 1; else :class:`ConfigError` naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer from 0 to 2**63 - 1 (or None: a new one), got {seed!r}"[:200])
    return seed


def new_seed() -> int:
    """A seed for a model made without one: from :func:`set_random_seed`'s stream when it was called,
    else from the operating system's entropy (Python's, numpy's and torch's generators are not used)."""
    return _stream.randrange(DRAWN_SEEDS) if _stream is not None else secrets.randbelow(DRAWN_SEEDS)


def model_seed(seed) -> int:
    """``seed`` checked, or a new one when it is None."""
    return new_seed() if seed is None else check_seed(seed)


def set_random_seed(seed: int) -> None:
    """Make everything after this call repeat, as ``keras.utils.set_random_seed`` does: seeds Python's,
    numpy's and torch's global generators (the user asked for it) and the stream that models made
    without ``seed=`` draw their seeds from."""
    global _stream
    seed_everything(check_seed(seed))
    _stream = random.Random(seed)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's random: outside :func:`set_random_seed`, only
    inside :func:`run_generators`, which gives them back afterwards."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def run_generators(seed: int) -> Iterator[None]:
    """The global generators (Python's, numpy's, torch's CPU and CUDA) seeded with ``seed`` meanwhile,
    then restored as they were. Nested (``Model.build`` inside ``fit``), it only seeds: the outermost
    one gives them back, so a run's draws follow each other as one seeded stream."""
    if getattr(_lent, "active", False):
        seed_everything(seed)
        yield
        return
    saved = _global_states()
    _lent.active = True
    try:
        seed_everything(seed)
        yield
    finally:
        _lent.active = False
        _restore(saved)


def _global_states() -> tuple:
    import numpy as np
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def _restore(saved: tuple) -> None:
    import numpy as np
    import torch

    python, numpy_state, cpu, cuda = saved
    random.setstate(python)
    np.random.set_state(numpy_state)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)
    elif torch.cuda.is_available():
        # CUDA was not started on entry: its generators would start from the user's last seed, which
        # torch.manual_seed queued for them (the CPU's initial seed); queue that seed again, after the run's.
        torch.cuda.manual_seed_all(torch.initial_seed())
