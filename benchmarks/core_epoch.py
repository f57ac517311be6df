"""One CIFAR-10 epoch of a preset, by two source trees of cnnlab side by side: is a change to the core slower?

    python benchmarks/core_epoch.py --tree /tmp/old-cnnlab --tree . --repeats 2 --out docs/core_epoch.json

Each run is a fresh process (``PYTHONPATH=TREE/src``) training ``--model`` (the homework's
``cnn`` by default) for one epoch with the homework recipe on the CIFAR-10 JPEG tree in
``../shared/datasets`` (digits where it is absent); the trees alternate, so a machine that
slows down slows both. It reports each run's training seconds (the epoch without
validation) and the ratio of the trees' medians, with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"

CHILD = """
import json, sys
from cnnlab import runs
from cnnlab.engine.config import TrainConfig
result = runs.train(sys.argv[1], sys.argv[2], TrainConfig(epochs=1, device="cpu"), out=sys.argv[3], name="r")
record = result.history[0]
get = (lambda key: record[key]) if isinstance(record, dict) else (lambda key: getattr(record, key))
print(json.dumps({"train_time": get("train_time"), "time": get("time"), "val_accuracy": get("val_accuracy")}))
"""

# --synthetic N: the training epoch alone (train_epoch) on N generated images, 3 times in one process;
# no data load, no validation, no checkpoint: a finer look at the hot loop than a whole run.
SYNTHETIC_CHILD = """
import json, sys, time
import cnnlab  # before torch: cnnlab sets OpenMP's wait policy
import numpy as np, torch
from cnnlab.engine.callbacks import CallbackList
from cnnlab.engine.config import TrainConfig
from cnnlab.engine.loop import train_epoch
from cnnlab.engine.session import prepare
from cnnlab.net.builder import build_model
from cnnlab.net.presets import preset
n = int(sys.argv[2])
rng = np.random.default_rng(0)
x, y = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)
torch.manual_seed(0)
config = TrainConfig(epochs=1, device="cpu", val_split=0.0)
state, data, _ = prepare(build_model(preset(sys.argv[1]), (32, 32, 3)), x, y, config)
seconds = []
for _ in range(3):
    start = time.perf_counter()
    train_epoch(state, data, config, CallbackList([]))
    seconds.append(time.perf_counter() - start)
print(json.dumps({"train_time": min(seconds), "each": seconds}))
"""


def cpu() -> dict:
    """The CPU's model and its vector units, as /proc/cpuinfo names them."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    return {"cpu": model, "cores": os.cpu_count(),
            "capabilities": [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]}


def one_epoch(tree: Path, model: str, dataset: str, synthetic: int = 0) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve() / "src")}
    with tempfile.TemporaryDirectory() as out:
        command = [SYNTHETIC_CHILD, model, str(synthetic)] if synthetic else [CHILD, model, dataset, out]
        done = subprocess.run([sys.executable, "-c", *command], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="a cnnlab checkout (twice: before, after)")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="time the training epoch alone on N generated images (best of 3 in each process)")
    parser.add_argument("--out")
    args = parser.parse_args()
    dataset = str(SHARED) if SHARED.exists() else "digits"
    runs: dict[str, list[dict]] = {tree: [] for tree in args.tree}
    for repeat in range(args.repeats):
        for tree in args.tree:
            runs[tree].append(one_epoch(Path(tree), args.model, dataset, args.synthetic))
            print(f"{tree} run {repeat + 1}: {runs[tree][-1]}", file=sys.stderr, flush=True)
    medians = {tree: statistics.median(r["train_time"] for r in rows) for tree, rows in runs.items()}
    first = args.tree[0]
    source = f"{args.synthetic} generated images" if args.synthetic else dataset
    result = {"machine": cpu(), "model": args.model, "dataset": source, "runs": runs, "median_train_seconds": medians,
              "ratio_to_first": {tree: medians[tree] / medians[first] for tree in args.tree}}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
