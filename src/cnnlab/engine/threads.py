"""CPU threads for training: how many torch uses, and how its idle OpenMP threads wait.

torch runs its CPU kernels on an OpenMP thread pool (GNU libgomp in the PyPI builds for
Linux). Between two parallel regions an idle pool thread spins before it sleeps: with
``OMP_WAIT_POLICY=ACTIVE`` for ever, with ``PASSIVE`` not at all, and by default for
``GOMP_SPINCOUNT`` = 300,000 turns. Spinning saves a wake-up when the next region comes
soon; on a core another process needs, it takes that process's time. Measured on a
2-core AMD EPYC (``benchmarks/wait_policy.py``, README "Threads"): PASSIVE made a CNN
epoch 10% (32x32 images) to 83% (8x8 digits) slower on a quiet machine, and 7-28% faster
than ACTIVE beside a process spinning on one core; a short spin, ``GOMP_SPINCOUNT=3000``,
cost nothing on the quiet machine (within 1%) and kept part of the gain beside the
neighbour (15-28% faster on 32x32 images, though slower on digits). So cnnlab's command
line starts torch with ``GOMP_SPINCOUNT=3000`` on the CPU, unless the user chose how
threads wait (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or, for LLVM's and Intel's OpenMP,
``KMP_BLOCKTIME``); beside busy neighbours fewer threads (``--threads``) help most.

The runtime reads these variables once, when torch loads it: they have to be in the
environment before ``import torch``. So ``import cnnlab`` sets the same short spin
(:func:`spin_on_import`), for ``fit`` from Python and notebooks, when torch is not loaded
yet, and says what to do when it is; this module imports torch only when asked to set
a thread count.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from cnnlab.errors import CnnlabError

# Any of these set: the user chose how idle OpenMP threads wait (libgomp reads the first two, LLVM's
# and Intel's OpenMP the first and last), and cnnlab leaves them alone.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
SHORT_SPIN = {"GOMP_SPINCOUNT": "3000"}  # spin about 3000 turns, then sleep: see the measurements above
# Said once by `import cnnlab` when torch came first and the user chose no wait: too late to set it.
TOO_LATE = ("torch was imported before cnnlab, so its OpenMP threads keep their default wait: each spins "
            "300,000 turns before sleeping, which made fit 3-4x slower on a machine with any other load. "
            "Import cnnlab before torch, or set GOMP_SPINCOUNT=3000 (OMP_WAIT_POLICY=PASSIVE on a shared "
            "machine) in the environment before Python starts; any of OMP_WAIT_POLICY, GOMP_SPINCOUNT or "
            "KMP_BLOCKTIME set is kept as you chose it, and this note is not shown")
_spin_set_on_import = False  # whether `import cnnlab` put SHORT_SPIN in os.environ (the user chose no wait)
# Variables that size a BLAS or OpenMP pool when it starts; a worker process gets them set to its share.
POOL_SIZE_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# The most torch threads per core: a few more threads than cores can fill a core while one waits; many more
# only switch between themselves (--threads 9999 on 2 cores: a 5 s run had not finished after 60 s).
THREADS_PER_CORE = 4


class ThreadsError(CnnlabError):
    """A thread or job count out of range."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_count(value, option: str) -> int:
    """``value`` when it is a positive integer; else :class:`ThreadsError` naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ThreadsError(f"{option} must be a positive integer, got {value!r}"[:200])
    return value


def check_threads(value, option: str, cores: int | None = None) -> int:
    """``value`` when it is a positive integer of at most :data:`THREADS_PER_CORE` per core (of ``cores``,
    default this process's); else :class:`ThreadsError` naming ``option`` and saying the cap."""
    count = check_count(value, option)
    cores = cores or available_cores()
    if count > THREADS_PER_CORE * cores:
        raise ThreadsError(f"{option} {count}: at most {THREADS_PER_CORE * cores} here ({THREADS_PER_CORE} per core, "
                           f"on the {cores} core(s) this process may use); more threads only wait on each other")
    return count


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """torch threads for each of ``jobs`` jobs sharing ``cores`` (default: this process's), so that
    together they do not ask for more threads than there are cores."""
    return max(1, (cores or available_cores()) // jobs)


def users_wait(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The wait variables the user set in ``environ`` (default: this process's); not the short spin
    that ``import cnnlab`` set (:func:`spin_on_import`)."""
    environ = os.environ if environ is None else environ
    chosen = {name: environ[name] for name in WAIT_VARIABLES if environ.get(name)}
    return {} if _spin_set_on_import and chosen == SHORT_SPIN else chosen


def wait_variables(device: str = "cpu", environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """How OpenMP threads should wait in a process starting now: the variables the user set in ``environ``
    (default: this process's) if any, else on the CPU the short spin; on a GPU, only the user's."""
    chosen = users_wait(environ)
    return chosen if chosen or device == "cuda" else dict(SHORT_SPIN)


def prefer_short_spin(device: str = "cpu", environ: MutableMapping[str, str] | None = None) -> bool:
    """Put the short spin in ``environ`` (default: this process's) unless the user chose a wait; True when set.

    It takes effect only where torch has not loaded yet (this process at the command
    line's start, a fresh worker process). On a GPU (``device="cuda"``) the short spin that
    ``import cnnlab`` set is taken back: the command line leaves a GPU run's wait to the user.
    """
    environ = os.environ if environ is None else environ
    if users_wait(environ):
        return False
    if device == "cuda":
        for name in SHORT_SPIN:
            environ.pop(name, None)  # import cnnlab's, if any: the user set none (users_wait)
        return False
    environ.update(SHORT_SPIN)
    return True


def spin_on_import() -> None:
    """What ``import cnnlab`` does, so that ``fit`` from Python or a notebook runs as fast as the command
    line: the short spin put in this process's environment while torch is not loaded yet (its OpenMP
    runtime reads it when torch loads), unless the user chose how threads wait; when torch came first,
    a warning, once, saying what to do."""
    global _spin_set_on_import
    if users_wait():
        return
    if torch_loaded():
        warnings.warn(TOO_LATE, RuntimeWarning, stacklevel=3)
        return
    os.environ.update(SHORT_SPIN)
    _spin_set_on_import = True


def describe_wait(environ: Mapping[str, str] | None = None) -> str:
    """``"GOMP_SPINCOUNT=3000"``, ``"OMP_WAIT_POLICY=PASSIVE"``, ...: how threads wait here; "default" if unset."""
    environ = os.environ if environ is None else environ
    return " ".join(f"{name}={environ[name]}" for name in WAIT_VARIABLES if environ.get(name)) or "default"


def torch_loaded() -> bool:
    """Whether torch (and so its OpenMP runtime, which read its environment then) is loaded here."""
    return "torch" in sys.modules


def worker_environment(threads: int, device: str = "cpu", environ: Mapping[str, str] | None = None) -> dict:
    """Variables a new worker process should start with: its thread share for every pool, and how its
    OpenMP threads wait (:func:`wait_variables` of ``environ``, default this process's)."""
    return {**{name: str(threads) for name in POOL_SIZE_VARIABLES}, **wait_variables(device, environ)}


@contextmanager
def preserved_environment(names) -> Iterator[None]:
    """This process's environment variables ``names`` as they are now, restored afterwards (set or unset)."""
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """``variables`` set in this process's environment (inherited by processes started meanwhile), then restored."""
    with preserved_environment(variables):
        os.environ.update(variables)
        yield


def set_threads(threads: int | None) -> int:
    """``torch.set_num_threads(threads)`` when given (None keeps torch's count: the cores it sees);
    returns the count torch uses."""
    import torch

    if threads is not None:
        torch.set_num_threads(check_threads(threads, "threads"))
    return torch.get_num_threads()


@contextmanager
def using_threads(threads: int | None) -> Iterator[int]:
    """torch on ``threads`` threads meanwhile (None: unchanged), then back to its count before."""
    import torch

    before = torch.get_num_threads()
    try:
        yield set_threads(threads)
    finally:
        torch.set_num_threads(before)
