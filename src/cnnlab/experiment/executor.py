"""A comparison's training runs at once: in a process pool here, or on a Dask cluster.

Data flows one way. The parent sends each worker a :class:`RunJob`: the run's folder,
its resolved spec, its options, and the dataset's *reference* (a name or an absolute
path, with its loading options), never the arrays. The worker loads the dataset itself
(through cnnlab's on-disk cache, so CIFAR-10 is decoded once per machine, and once per
worker process), trains, resumes or reuses the run in its folder exactly as the
sequential comparison does, and returns a small :class:`JobResult`. The parent then
reads the run folders and checks that each run recorded the same dataset identity as
the copy it evaluates on. A run that fails leaves its folder resumable (or none at
all); the others finish, and the same command run again trains only what is missing.

Dask (``dask.distributed``) is the cluster layer: existing and maintained, a LocalCluster
on one machine, and the same client code against a scheduler that dask-jobqueue starts
on SLURM or PBS, or the Dask Kubernetes operator on Kubernetes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cnnlab.engine.threads import (
    available_cores,
    check_count,
    check_threads,
    describe_wait,
    environment,
    prefer_short_spin,
    preserved_environment,
    threads_per_job,
    torch_loaded,
    worker_environment,
)
from cnnlab.errors import CnnlabError

EXECUTORS = ("sequential", "local", "dask")
PROBE_TIMEOUT_S = 5  # a scheduler's port that has not answered by then is left to Dask's connect timeout


class ExecutorError(CnnlabError):
    """Runs that failed in workers (the others are kept), or a cluster that cannot be reached."""


@dataclass(frozen=True)
class ExecutorOptions:
    """How a comparison's runs are executed: ``sequential`` (in this process, one after another),
    ``local`` (a pool of ``jobs`` processes) or ``dask`` (a cluster at ``scheduler``, else a LocalCluster
    of ``jobs`` worker processes). ``threads``: torch threads per run (default: the cores // jobs)."""

    kind: str = "sequential"
    jobs: int | None = None
    threads: int | None = None
    scheduler: str | None = None

    def validate(self) -> ExecutorOptions:
        """These options, once nothing contradicts (checked before the comparison makes any folder)."""
        if self.kind not in EXECUTORS:
            raise ExecutorError(f"unknown executor {self.kind!r}; expected one of {', '.join(EXECUTORS)}")
        if self.jobs is not None and self.kind == "sequential":
            raise ExecutorError("--jobs needs --executor local or dask (runs are sequential without one)")
        if self.scheduler is not None and self.kind != "dask":
            raise ExecutorError("--scheduler needs --executor dask")
        if self.scheduler is not None and self.jobs is not None:
            raise ExecutorError("--jobs sizes the LocalCluster cnnlab starts; a --scheduler's cluster has its own "
                                "workers")
        if self.jobs is not None:
            check_count(self.jobs, "--jobs")
        if self.threads is not None:  # a scheduler's workers have their own cores: each checks its own share
            (check_count if self.scheduler else check_threads)(self.threads, "--threads")
        if self.kind != "sequential" and os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
            raise ExecutorError("--executor starts its own processes, one per run; under torchrun each run already "
                                "spans torchrun's processes: use one or the other")
        if self.kind == "dask":
            _require_dask()  # before the comparison makes any folder
        if self.scheduler is not None:
            _check_scheduler(self.scheduler)  # a closed port or unknown host: before any folder, within seconds
        return self

    def jobs_for(self, runs: int) -> int:
        """Processes to start: ``jobs``, else one per run up to the cores here."""
        return self.jobs or max(1, min(runs, available_cores()))


@dataclass(frozen=True)
class RunJob:
    """One training run, as a worker needs it: references and options, never arrays."""

    run_dir: str
    label: str            # the spec as the user gave it, for messages
    spec: dict            # the resolved spec (ModelSpec.to_dict())
    seed: int
    dataset: str          # a dataset name, or an absolute path
    dataset_options: dict
    config: dict          # TrainConfig.to_dict(), seed included
    threads: int | None   # torch threads; None: the worker's cores // the tasks it runs at once
    device: str = "cpu"


@dataclass(frozen=True)
class JobResult:
    """What a worker reports: the run's status (trained, resumed, reused), or the error that stopped it."""

    run_dir: str
    label: str
    seed: int
    status: str | None
    error: str | None
    seconds: float
    threads: int | None = None       # torch's threads in the worker
    wait: str | None = None          # how the worker's OpenMP threads wait ("GOMP_SPINCOUNT=3000", ...)


_loaded: dict[str, object] = {}  # per worker process: the dataset of its last job, reused by the next


def _dataset(reference: str, options: dict):
    from cnnlab.runs.directory import open_dataset

    key = repr((reference, sorted(options.items())))
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = open_dataset(reference, options)
    return _loaded[key]


def run_job(job: RunJob) -> JobResult:
    """Train, resume or reuse one run in its folder (in a worker process); never raises for a run's failure."""
    if not torch_loaded():
        prefer_short_spin(job.device)  # before torch's OpenMP runtime starts (a remote worker's first job)
    start = time.perf_counter()
    try:
        from cnnlab.engine.config import TrainConfig
        from cnnlab.engine.threads import using_threads
        from cnnlab.net.spec import parse_spec
        from cnnlab.runs.reuse import train_or_resume

        with using_threads(job.threads or _worker_threads()) as threads:
            status = train_or_resume(Path(job.run_dir), parse_spec(job.spec, source=job.label), job.dataset,
                                     _dataset(job.dataset, job.dataset_options), TrainConfig.from_dict(job.config),
                                     job.dataset_options, None)
        return JobResult(job.run_dir, job.label, job.seed, status, None, time.perf_counter() - start, threads,
                         describe_wait())
    except Exception as exc:  # reported with the others' results; the run folder stays resumable
        message = str(exc) if isinstance(exc, CnnlabError) else f"{type(exc).__name__}: {exc}"
        return JobResult(job.run_dir, job.label, job.seed, None, message.splitlines()[0] if message else "",
                         time.perf_counter() - start)


def _worker_threads() -> int:
    """In a Dask worker: its cores shared among the tasks it runs at once; elsewhere, all cores here."""
    try:
        from distributed import get_worker

        return threads_per_job(get_worker().state.nthreads)
    except (ImportError, ValueError):
        return available_cores()


def run_jobs(jobs: list[RunJob], options: ExecutorOptions, note: Callable[[str], None]) -> list[JobResult]:
    """Every job, on the executor ``options`` names; results in the jobs' order. ``note`` hears each finish."""
    results: dict[str, JobResult] = {}

    def finished(result: JobResult) -> None:
        results[result.run_dir] = result
        if result.error is None:
            note(f"== {result.label}, seed {result.seed}: {result.status} in {result.seconds:.1f} s on "
                 f"{result.threads} thread(s) ({result.run_dir})")
        else:
            note(f"== {result.label}, seed {result.seed}: failed after {result.seconds:.1f} s: {result.error}")

    if options.kind == "local":
        _run_local(jobs, options, finished)
    else:
        _run_dask(jobs, options, finished)
    return [results.get(job.run_dir) or _lost(job, "no result came back") for job in jobs]


def _lost(job: RunJob, why: str) -> JobResult:
    return JobResult(job.run_dir, job.label, job.seed, None, why, 0.0)


def _run_local(jobs: list[RunJob], options: ExecutorOptions, finished: Callable[[JobResult], None]) -> None:
    """A pool of fresh (spawned) processes: each starts with its thread share and wait policy in its
    environment, which its OpenMP runtime reads when it loads torch."""
    import multiprocessing

    workers = options.jobs_for(len(jobs))
    threads = options.threads or threads_per_job(workers)
    device = jobs[0].device if jobs else "cpu"
    with environment(worker_environment(threads, device)), ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_job, _with_threads(job, threads)): job for job in jobs}
        try:
            for future in as_completed(futures):
                finished(_result_of(future, futures[future]))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _with_threads(job: RunJob, threads: int) -> RunJob:
    from dataclasses import replace

    return replace(job, threads=threads)


def _result_of(future, job: RunJob) -> JobResult:
    try:
        return future.result()
    except Exception as exc:  # the worker died (killed for memory, a crash): the run is resumable
        return _lost(job, f"its worker process died ({type(exc).__name__}: {exc})".splitlines()[0])


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ExecutorError("--executor dask needs dask.distributed: pip install 'cnnlab[dask]'") from None


SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss")  # Dask's protocols that need no extra package


def _check_scheduler(address: str) -> None:
    """An ExecutorError at once for an empty address, or one whose port refuses connections."""
    if not address.strip():
        raise ExecutorError("--scheduler: an empty address; give the scheduler's, e.g. tcp://host:8786")
    scheme = address.split("://", 1)[0] if "://" in address else "tcp"
    if scheme not in SCHEDULER_SCHEMES:
        raise ExecutorError(f"--scheduler {address[:200]}: the {scheme[:20]}:// protocol is not one cnnlab connects "
                            f"with; use {', '.join(s + '://' for s in SCHEDULER_SCHEMES)}")
    if refused := _refused(address):
        raise ExecutorError(f"cannot reach the Dask scheduler at {address} ({refused})")


def _refused(address: str) -> str | None:
    """Why a TCP scheduler address refuses connections, else None (Dask then connects and reports the rest).

    A closed port or an unknown host is known at once, but Dask retries them until its connect timeout
    (30 s by default): one plain connection first says so in milliseconds. A host that does not answer
    at all is left to Dask's own timeout.
    """
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls", "ws", "wss"):  # the schemes that are a host and a port
            return None
        with socket.create_connection(parse_host_port(location), timeout=PROBE_TIMEOUT_S):
            return None
    except ConnectionRefusedError:
        return "connection refused: nothing listens on that port"
    except socket.gaierror as exc:
        return f"unknown host: {exc.strerror}"
    except (OSError, ValueError, TypeError):  # no answer in time, a malformed address: Dask says what it finds
        return None


def _run_dask(jobs: list[RunJob], options: ExecutorOptions, finished: Callable[[JobResult], None]) -> None:
    """On a Dask cluster: the one at ``options.scheduler``, else a LocalCluster of single-task worker processes."""
    device = jobs[0].device if jobs else "cpu"
    with _dask_client(options, len(jobs), device) as (client, threads):
        from distributed import as_completed as dask_completed

        futures = {client.submit(run_job, _with_threads(job, threads) if threads else job, pure=False,
                                 key=f"cnnlab-{Path(job.run_dir).name}-{os.urandom(4).hex()}"): job for job in jobs}
        for future in dask_completed(list(futures)):
            finished(_result_of(future, futures[future]))


@contextmanager
def _dask_client(options: ExecutorOptions, runs: int, device: str) -> Iterator[tuple[object, int | None]]:
    """``(client, torch threads per run)``: to the scheduler given, else to a LocalCluster started here."""
    _require_dask()
    import dask
    from distributed import Client, LocalCluster

    if options.scheduler:
        _check_scheduler(options.scheduler)
        try:
            client = Client(options.scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect"))
        except Exception as exc:  # Dask's comm layers raise their own kinds (TypeError for UCX unset): one line
            lines = str(exc).strip().splitlines()
            why = f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__
            raise ExecutorError(f"cannot reach the Dask scheduler at {options.scheduler} ({why})") from None
        with client:
            yield client, options.threads  # None: each worker shares its own cores among its tasks
        return
    workers = options.jobs_for(runs)
    threads = options.threads or threads_per_job(workers)
    # Each nanny puts these in this process's environment before it spawns its worker (which reads them
    # as it starts, before torch loads); they are restored when the cluster is closed.
    spawn_env = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **worker_environment(threads, device)}
    with preserved_environment([*spawn_env, "PYTHONHASHSEED"]), dask.config.set(
            {"distributed.nanny.pre-spawn-environ": spawn_env}), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(
            cluster) as client:
        yield client, threads
