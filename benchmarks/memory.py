"""Peak resident memory of training, each measurement in a child process of its own.

    python benchmarks/memory.py                 # full: CIFAR-10 side by side, then 200,000 generated images
    python benchmarks/memory.py --skip-large    # CIFAR-10 only (about 5 minutes on 2 cores)
    python benchmarks/memory.py --quick         # smoke test: small generated caches, a few steps, seconds

Measurements (one epoch of the experiment's ``cnn``, Adam, batch 32, 20% validation, CPU):

* ``cifar10-uint8``: CIFAR-10 from the JPEG tree in ``../shared/datasets`` loaded with
  ``cnnlab.data.load_dataset`` (its memory-mapped cache), trained as cnnlab trains:
  uint8 pixels, each batch converted as it is used. Target: at most 0.6 GB peak resident.
* ``cifar10-float32``: the same run with the training and validation parts converted to
  float32 ``(N, C, H, W)`` up front, as cnnlab did before (the baseline). Target: the
  uint8 run's training time per epoch within 5% of this one's. With ``--repeats`` the two
  alternate, and the medians are compared.
* ``large-uint8``: 200,000 random 64x64x3 images (2.4 GB), written straight into the
  cache format ``load_image_folder`` reads (``cnnlab.data.mapped``; decoding 200,000
  JPEG files would measure the decoder, not training), loaded with that loader's
  ``load_image_cache``, hashed as a run's manifest hashes it, and trained for one epoch.
  Target: under 1.5 GB peak resident.

Peak resident is the child's VmHWM (``/proc/self/status``; ``ru_maxrss`` elsewhere): it
counts the pages of a memory map the process has read as well as its own allocations.
Each child starts fresh, so one measurement's memory never counts in another's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
GB = 1e9
CIFAR_TARGET_BYTES = 0.6 * GB
LARGE_TARGET_BYTES = 1.5 * GB
TIME_TOLERANCE = 1.05  # uint8 s/epoch at most 5% above float32's
LARGE_COUNT, LARGE_SHAPE = 200_000, (64, 64, 3)
QUICK = {"small": (320, (32, 32, 3)), "large": (160, (64, 64, 3))}


# ----------------------------------------------------------------- child side


def peak_resident_bytes() -> int:
    """This process's peak resident set (VmHWM), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB (KiB)
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def load_source(job: dict):
    """``(x_train, y_train, class_names, dataset or None)`` of the job's data."""
    from cnnlab.data import Dataset, load_dataset
    from cnnlab.data.mapped import load_image_cache

    if job["source"] == "dataset":
        data = load_dataset(job["path"])
        return data.x_train, data.y_train, data.class_names, data
    arrays = load_image_cache(Path(job["path"]))
    if arrays is None:
        raise SystemExit(f"{job['path']}: no usable cache")
    names = [str(name) for name in arrays["class_names"]]
    data = Dataset("generated", names, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])
    return data.x_train, data.y_train, names, data


def float32_baseline(session, x: np.ndarray):
    """The training and validation parts as float32 ``(N, C, H, W)`` tensors, made up front (cnnlab before)."""
    import torch

    from cnnlab.engine.batches import images_to_tensor
    from cnnlab.engine.loop import TensorData

    cpu, split, tensors = torch.device("cpu"), session.split, session.tensors
    return TensorData(images_to_tensor(np.asarray(x[split.train_idx]), cpu), tensors.y_train,
                      images_to_tensor(np.asarray(x[split.val_idx]), cpu), tensors.y_val)


def run_child(job: dict) -> dict:
    """Train one epoch as ``job`` says; the measurement as a dict."""
    import torch

    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.loop import run_epochs
    from cnnlab.engine.session import open_session
    from cnnlab.net.builder import build_model
    from cnnlab.net.resolve import fit_spec, resolve_spec

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    imported = peak_resident_bytes()
    x, y, names, data = load_source(job)
    if job.get("hash") and data is not None:
        data.content_sha256()  # as a run's manifest does: every pixel read once
    config = TrainConfig(epochs=1, device="cpu")
    spec = fit_spec(resolve_spec(job["model"]), x.shape[1:], len(names))
    session = open_session(lambda: build_model(spec), x, y, config, class_names=names)
    tensors = float32_baseline(session, x) if job["mode"] == "float32" else session.tensors
    record = run_epochs(session.state, tensors, config)[-1]
    return {"name": job["name"], "mode": job["mode"], "images": int(len(y)), "train_images": len(tensors.y_train),
            "peak_rss_bytes": peak_resident_bytes(), "rss_after_imports_bytes": imported,
            "train_seconds": record.train_time, "epoch_seconds": record.time,
            "threads": torch.get_num_threads()}


# ----------------------------------------------------------------- parent side


def generate_cache(stem: Path, count: int, shape: tuple[int, int, int], classes: int = 10, chunk: int = 5000):
    """Write ``count`` random uint8 images of ``shape`` as an image cache at ``stem``, ``chunk`` at a time."""
    from cnnlab.data.mapped import save_image_cache

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, count).astype(np.int64)
    chunks = (rng.integers(0, 256, (min(chunk, count - start), *shape), dtype=np.uint8)
              for start in range(0, count, chunk))
    meta = {"y_train": labels, "y_test": np.zeros(0, np.int64),
            "class_names": np.array([f"class{i}" for i in range(classes)]), "notes": np.array([], dtype=str)}
    save_image_cache(stem, (count, *shape), chunks, meta)
    return stem


def measure(job: dict) -> dict:
    """Run ``job`` in a fresh Python process; its measurement."""
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"measurement {job['name']} failed:\n{result.stderr[-4000:]}")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"  {record['name']:<16} peak {record['peak_rss_bytes'] / GB:.3f} GB, "
          f"train {record['train_seconds']:.2f} s", file=sys.stderr)
    return record


def cifar_jobs(args, work: Path) -> list[dict]:
    """The side-by-side pair on CIFAR-10 (a small generated cache in quick mode), ``--repeats`` times."""
    if args.quick:
        count, shape = QUICK["small"]
        source = {"source": "cache", "path": str(generate_cache(work / "small", count, shape))}
    else:
        if not SHARED.exists():
            raise SystemExit(f"{SHARED}: absent; the CIFAR-10 measurement needs it (or use --quick)")
        source = {"source": "dataset", "path": str(SHARED)}
        measure({**source, "name": "convert-once", "mode": "uint8", "model": "mlp", "threads": args.threads})
    pair = [{**source, "name": f"cifar10-{mode}", "mode": mode, "model": "cnn", "threads": args.threads}
            for mode in ("uint8", "float32")]
    return [job for _ in range(args.repeats) for job in pair]


def large_job(args, work: Path) -> dict:
    count, shape = QUICK["large"] if args.quick else (LARGE_COUNT, LARGE_SHAPE)
    print(f"writing {count:,} images of {'x'.join(map(str, shape))} as a cache in {work}", file=sys.stderr)
    stem = generate_cache(work / "large", count, shape)
    return {"source": "cache", "path": str(stem), "name": "large-uint8", "mode": "uint8", "model": "cnn",
            "threads": args.threads, "hash": True}


def summarize(records: list[dict], quick: bool) -> dict:
    """The medians per measurement, against the targets (not judged in quick mode: sizes are tiny)."""
    rows = {}
    for name in dict.fromkeys(r["name"] for r in records):
        runs = [r for r in records if r["name"] == name]
        rows[name] = {"name": name, "runs": len(runs), "images": runs[0]["images"],
                      "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
                      "train_seconds": statistics.median(r["train_seconds"] for r in runs)}
    targets = {"cifar10-uint8": CIFAR_TARGET_BYTES, "large-uint8": LARGE_TARGET_BYTES}
    for name, target in targets.items():
        if name in rows:
            rows[name]["target_bytes"] = target
            rows[name]["meets_target"] = None if quick else rows[name]["peak_rss_bytes"] <= target
    summary = {"rows": list(rows.values())}
    if {"cifar10-uint8", "cifar10-float32"} <= set(rows):
        ratio = rows["cifar10-uint8"]["train_seconds"] / rows["cifar10-float32"]["train_seconds"]
        summary["time_ratio_uint8_over_float32"] = ratio
        summary["time_within_tolerance"] = None if quick else ratio <= TIME_TOLERANCE
    return summary


def print_table(summary: dict) -> None:
    print(f"{'measurement':<16} {'images':>8} {'peak RSS':>10} {'target':>9} {'train s':>8}  verdict")
    for row in summary["rows"]:
        target = f"{row['target_bytes'] / GB:.2f} GB" if "target_bytes" in row else "-"
        verdict = ("baseline" if "target_bytes" not in row else
                   {True: "meets target", False: "OVER TARGET", None: "not judged (quick)"}[row["meets_target"]])
        print(f"{row['name']:<16} {row['images']:>8,} {row['peak_rss_bytes'] / GB:>7.3f} GB {target:>9} "
              f"{row['train_seconds']:>8.2f}  {verdict}")
    if "time_ratio_uint8_over_float32" in summary:
        print(f"time per epoch, uint8 / float32: {summary['time_ratio_uint8_over_float32']:.3f} "
              f"(target at most {TIME_TOLERANCE:.2f})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small generated caches, a few steps (smoke test)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of the CIFAR-10 pair, alternating")
    parser.add_argument("--skip-large", action="store_true", help="leave out the 200,000-image measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per child (default: torch's)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the generated caches go (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="write the measurements here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="cnnlab-memory-") as folder:
        work = Path(folder)
        jobs = cifar_jobs(args, work) + ([] if args.skip_large else [large_job(args, work)])
        records = [measure(job) for job in jobs]
    summary = summarize(records, args.quick)
    print_table(summary)
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "python": platform.python_version(),
                                         "machine": platform.machine(), "records": records, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
