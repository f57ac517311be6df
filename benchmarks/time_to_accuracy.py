"""Time to accuracy on CIFAR-10: ``fast`` with its recipe against the homework's ``cnn``, side by side.

    python benchmarks/time_to_accuracy.py                    # 3 seeds of fast, 1 of cnn, fp32
    python benchmarks/time_to_accuracy.py --precisions fp32,bf16 # also fast in bf16 (on a CPU with bf16 units)
    python benchmarks/time_to_accuracy.py --quick            # smoke test: a tiny generated image folder
    python benchmarks/time_to_accuracy.py --against airbench --seeds 2  # fast beside the airbench93 peer

Every run is a fresh process (``--child``) timed from its start to its exit: Python and torch
loading, the dataset's load (cnnlab's decoded cache, which the parent fills once, untimed, before
the first run, so that the baseline and ``fast`` load the same way),
building, training and the final test evaluation (fast with ``--tta flip_translate``) are all included.
After each epoch a probe scores the test set from the epoch's checkpoint, so that accuracy can
be plotted against time; the probe's own seconds are measured and subtracted. The figures go
to a JSON file and a plot, with the machine (CPU model and its bf16 capability), versions and seeds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airbench_peer import PEER, against_summary, alternate, peer_arrays, peer_jobs, run_peer

from cnnlab.engine.callbacks import TrainingCallback
from cnnlab.net.presets import recipe_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


class TestProbe(TrainingCallback):
    """An engine callback: after each epoch, the test accuracy of the epoch's checkpoint, self-timed."""

    def __init__(self, run_dir: Path, data):
        self.run_dir, self.data, self.start = run_dir, data, time.perf_counter()
        self.points, self.probe_seconds = [], 0.0

    def note(self, text): print(text, file=sys.stderr)

    def on_epoch_end(self, record, state):
        now = time.perf_counter()
        seconds = now - self.start - self.probe_seconds  # training time so far, earlier probes left out
        accuracy = checkpoint_accuracy(self.run_dir, self.data)
        self.probe_seconds += time.perf_counter() - now
        self.points.append({"epoch": record.epoch, "seconds": seconds, "test_accuracy": accuracy})
        print(f"  epoch {record.epoch}: test accuracy {accuracy:.4f}", file=sys.stderr)


def checkpoint_accuracy(run_dir: Path, data) -> float:
    """Test accuracy of the weights the run's checkpoint holds (the moving average's, when it keeps one)."""
    import torch

    from cnnlab.engine.averaging import WeightAverage
    from cnnlab.engine.batches import images_to_tensor, labels_to_tensor
    from cnnlab.engine.checkpoint import CHECKPOINT, read_checkpoint
    from cnnlab.engine.loop import evaluate_tensors
    from cnnlab.net.builder import build_model
    from cnnlab.net.spec import parse_spec

    saved = json.loads((run_dir / "config.json").read_text())
    model = build_model(parse_spec(saved["spec"]))
    payload = read_checkpoint(run_dir / CHECKPOINT)
    model.load_state_dict(payload["model"])
    if "average" in payload:  # the moving average is what the run evaluates and keeps
        average = WeightAverage(model, payload["average"]["momentum"])
        average.load_state_dict(payload["average"])
        average.copy_to(model)
    device = torch.device("cpu")
    x = images_to_tensor(data.x_test, device)
    return evaluate_tensors(model.to(memory_format=torch.channels_last), x, labels_to_tensor(data.y_test, device))[
        "accuracy"]


def child(job: dict) -> dict:
    """One run in this (fresh) process: load, train with the probe, evaluate on the test set."""
    began = time.perf_counter()
    from cnnlab import runs
    from cnnlab.data import load_dataset
    from cnnlab.engine.recipes import get_recipe

    data = load_dataset(job["data"], progress=False)
    loaded = time.perf_counter()
    config = get_recipe(job["recipe"]).config({"seed": job["seed"], "precision": job["precision"], **job["options"]})
    run_dir = Path(job["out"]) / job["name"]
    probe = TestProbe(run_dir, data)
    runs.train(job["spec"], job["data"], config, out=job["out"], name=job["name"], callback=probe, data=data)
    trained = time.perf_counter()
    final = runs.evaluate(run_dir, "test", tta=job["tta"])
    evaluated = time.perf_counter()
    # Untimed, like the probe: the same weights under each test-time augmentation, for comparison.
    by_tta = {str(tta): runs.evaluate(run_dir, "test", tta=tta).accuracy for tta in (None, "flip", "flip_translate")}
    history = json.loads((run_dir / "history.json").read_text())
    precision = json.loads((run_dir / "config.json").read_text())["train"].get("precision")
    untimed = probe.probe_seconds + time.perf_counter() - evaluated
    return {"load_seconds": loaded - began, "train_seconds": trained - loaded - probe.probe_seconds,
            "evaluate_seconds": evaluated - trained, "probe_seconds": untimed, "accuracy_by_tta": by_tta,
            "curve": probe.points, "test_accuracy": final.accuracy, "tta": job["tta"],
            "epoch_seconds": [row["time"] for row in history], "precision_used": precision}


def run_child(job: dict) -> dict:
    """``job`` in a fresh process; its wall-clock time from start to exit, less the probe's seconds."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True,
                            text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{job['name']} failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return {**job, **measured, "seconds": wall - measured["probe_seconds"]}


def machine() -> dict:
    """The CPU's model and bf16 capability, the thread count, and the versions."""
    import torch

    from cnnlab.engine.precision import cpu_has_bf16

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")),
                 platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "avx2": " avx2" in flags, "avx512f": " avx512f" in flags, "bf16_units": cpu_has_bf16(),
            "torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def jobs(args, data: str, out: str) -> list[dict]:
    """The homework's cnn first (the baseline of the ratio), then fast for each seed and precision."""
    quick = {"epochs": 1, "batch_size": 64} if args.quick else {}
    homework = {"spec": "cnn", "recipe": "homework", "seed": 0, "precision": "fp32", "tta": None,
                "options": {"epochs": 1} if args.quick else {}, "name": "cnn-homework-seed0"}
    runs = [] if args.baseline or args.against else [homework]  # against a peer, the peer is the baseline
    options = {**quick, **({"warmup_epochs": 0.5} if args.quick else {}), **dict(args.overrides)}
    tta = None if args.tta == "none" else args.tta
    for network, epochs, precision in itertools.product(args.network, args.epochs or [None], args.precisions):
        suffix = f"-{epochs}ep" if epochs else ""
        recipe = recipe_of(network) if recipe_of(network) != "homework" else "fast"  # a preset's own, else fast's
        runs += [{"spec": network, "recipe": recipe, "seed": seed, "precision": precision, "tta": tta,
                  "options": {**options, **({"epochs": epochs} if epochs else {})},
                  "name": f"{Path(network).stem}-{precision}{suffix}-seed{seed}"} for seed in range(args.seeds)]
    return [{**job, "data": data, "out": out} for job in runs]


def override(text: str) -> tuple[str, object]:
    """``lr=0.3`` -> ('lr', 0.3): a training option and its JSON value (a bare word is a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def precision_list(text: str) -> list[str]:
    """``fp32,bf16`` -> ['fp32', 'bf16'], refusing anything else."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or set(names) - {"fp32", "bf16"}:
        raise argparse.ArgumentTypeError(f"{text!r}: give fp32, bf16 or fp32,bf16")
    return names


def quick_dataset(root: Path) -> str:
    """A generated image folder of 32x32 RGB PNGs, 3 classes told apart by colour (the CI smoke test)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 64), ("test", 16)):
        for label, colour in enumerate(((200, 40, 40), (40, 200, 40), (40, 40, 200))):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = np.clip(rng.normal(colour, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return str(root)


def earlier_baseline(path: str) -> dict:
    """The homework run of an earlier run of this script on this machine (so a second run need not repeat it)."""
    record = json.loads(Path(path).read_text())
    if record["machine"]["cpu"] != machine()["cpu"] or record["quick"]:
        raise SystemExit(f"{path}: its homework run was measured on another machine or in quick mode")
    return {**record["runs"][0], "from": path}


def earlier_peer(path: str, seeds: int) -> list[dict]:
    """The peer's first ``seeds`` runs from an earlier ``--against`` JSON of this machine, marked as taken from it."""
    record = json.loads(Path(path).read_text())
    peers = [run for run in record["runs"] if "peer" in run][:seeds]
    if record["machine"]["cpu"] != machine()["cpu"] or record["quick"] or len(peers) < seeds:
        raise SystemExit(f"{path}: not {seeds} peer runs measured on this machine")
    return [{**run, "from": path} for run in peers]


def replotted(paths: list[str]) -> list[dict]:
    """The runs of earlier JSON files of one machine, each once (a run one file took from another is the same)."""
    records = [json.loads(Path(path).read_text()) for path in paths]
    if len({record["machine"]["cpu"] for record in records}) > 1:
        raise SystemExit("--replot: the files were measured on different machines")
    runs, seen = [], set()
    for run in (run for record in records for run in record["runs"]):
        if (run["name"], run["seconds"]) not in seen:
            seen.add((run["name"], run["seconds"]))
            runs.append(run)
    return runs


def warm_cache(data: str) -> None:
    """Decode the image tree into cnnlab's cache once, so every timed run reads the same cache."""
    from cnnlab.data import load_dataset

    load_dataset(data, progress=False)


def summary(results: list[dict]) -> str:
    """A Markdown table: one row per run, then each group's mean, and fast's time against the homework's."""
    base = results[0]["seconds"]
    lines = ["| run | precision | test acc | seconds (total) | load s | train s | eval s | x homework cnn |",
             "|---|---|---|---|---|---|---|---|"]
    for run in results:
        lines.append(f"| {run['name']} | {run['precision_used']} | {run['test_accuracy']:.4f} | {run['seconds']:.0f} "
                     f"| {run['load_seconds']:.1f} | {run['train_seconds']:.0f} | {run['evaluate_seconds']:.1f} "
                     f"| {run['seconds'] / base:.2f} |")
    for name in dict.fromkeys(run["name"].rsplit("-seed", 1)[0] for run in results[1:]):
        group = [run for run in results[1:] if run["name"].rsplit("-seed", 1)[0] == name]
        accuracy = sum(run["test_accuracy"] for run in group) / len(group)
        seconds = sum(run["seconds"] for run in group) / len(group)
        lines.append(f"| **{name}, mean of {len(group)}** | | **{accuracy:.4f}** | **{seconds:.0f}** "
                     f"| | | | **{seconds / base:.2f}** |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    """Test accuracy against wall-clock seconds, one line per run."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    for run in results:
        offset = run["load_seconds"]
        axes.plot([offset + point["seconds"] for point in run["curve"]],
                  [point["test_accuracy"] for point in run["curve"]], marker="o", markersize=3,
                  label=f"{run['name']} ({run['precision_used']})")
    axes.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("wall-clock seconds (data load included)")
    axes.set_ylabel("test accuracy")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of fast (default 3)")
    parser.add_argument("--precisions", type=precision_list, default=["fp32"], metavar="LIST",
                        help="fast's precisions, comma-separated (default fp32; bf16 where the CPU has bf16 units)")
    parser.add_argument("--epochs", type=lambda text: [int(n) for n in text.split(",")], default=None,
                        metavar="LIST", help="fast's epochs instead of its recipe's, comma-separated (the frontier)")
    parser.add_argument("--baseline", help="take the homework cnn's run from this earlier JSON of this "
                        "machine instead of running it again (with --against: a row and a line of the plot)")
    parser.add_argument("--network", default=["fast"], type=lambda text: [n.strip() for n in text.split(",")],
                        help="the networks to time, comma-separated: presets (each with its own recipe: fast, "
                        "airbench93) or spec files (with fast's recipe); default fast")
    parser.add_argument("--set", dest="overrides", action="append", default=[], type=override, metavar="KEY=VALUE",
                        help="a training option over fast's recipe, e.g. --set lr=0.3 (repeatable; JSON values)")
    parser.add_argument("--tta", default="flip_translate", choices=("none", "flip", "flip_translate"),
                        help="test-time augmentation of fast's final evaluation (default flip_translate)")
    parser.add_argument("--quick", action="store_true", help="smoke test: a tiny generated dataset, one epoch")
    parser.add_argument("--data", default=str(SHARED), help="the CIFAR-10 image tree (.tar.gz or folder)")
    parser.add_argument("--json", default="time_to_accuracy.json", help="where the figures go")
    parser.add_argument("--plot", default="time_to_accuracy.png", help="where the plot goes")
    parser.add_argument("--against", choices=("airbench",), help="run the airbench93 peer (../shared/peers/"
                        "airbench_cpu.py) and fast alternately, seed by seed, and give time as the ratio to the peer")
    parser.add_argument("--peer", default=str(PEER), help="the peer's script (default: the shared airbench port)")
    parser.add_argument("--peer-from", help="with --against: take the peer's runs from this earlier JSON of this "
                        "machine (measured the same session) instead of running them again")
    parser.add_argument("--replot", nargs="+", metavar="JSON", help="no runs: one plot (--plot) of the runs of "
                        "these earlier JSON files of one machine (a run taken from an earlier file, once)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.replot:
        plot(replotted(args.replot), Path(args.plot))
        return
    with tempfile.TemporaryDirectory() as scratch:
        data = quick_dataset(Path(scratch) / "images") if args.quick else args.data
        if not args.quick and not Path(data).exists():
            raise SystemExit(f"{data}: not found (the shared CIFAR-10 image tree); use --data or --quick")
        warm_cache(data)
        results = [earlier_baseline(args.baseline)] if args.baseline else []  # against a peer: on the plot
        ours = jobs(args, data, str(Path(scratch) / "runs"))
        if args.against:
            if not Path(args.peer).is_file():
                raise SystemExit(f"{args.peer}: the airbench peer is not there; give --peer")
            if args.peer_from:
                results += earlier_peer(args.peer_from, args.seeds)
            else:
                arrays = peer_arrays(data, Path(scratch), args.quick)  # the same decoded pixels for the peer, untimed
                ours = alternate(peer_jobs(args.seeds, Path(args.peer), arrays, args.quick), ours)
        for job in ours:
            print(f"{job['name']} ...", file=sys.stderr, flush=True)
            results.append(run_peer(job) if "peer" in job else run_child(job))
            print(f"  {results[-1]['test_accuracy']:.4f} in {results[-1]['seconds']:.0f} s", file=sys.stderr)
            Path(args.json).write_text(json.dumps({"machine": machine(), "quick": args.quick, "runs": results},
                                                  indent=2))  # each run kept as it lands
    record = {"machine": machine(), "quick": args.quick, "against": args.against, "runs": results}
    Path(args.json).write_text(json.dumps(record, indent=2))
    plot(results, Path(args.plot))
    print(json.dumps(record["machine"]))
    print(against_summary(results, record["machine"]) if args.against else summary(results))


if __name__ == "__main__":
    main()
