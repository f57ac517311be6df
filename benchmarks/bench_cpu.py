"""cnnlab's engine against the usual PyTorch loop, same data, same process, same threads.

    python benchmarks/bench_cpu.py              # full: CIFAR-10 JPEG tree, 5 epochs each
    python benchmarks/bench_cpu.py --quick      # smoke test: a few thousand images, 1 epoch

For each of the MLP and the CNN it alternates (a) cnnlab's engine and (b) the baseline
in benchmarks/baseline.py, epoch by epoch in one process, and reports images per second, seconds per
epoch, achieved GFLOP/s (6 x forward MACs per training image: forward, and backward at
twice the forward's work), the ratio (b)/(a), and the final validation accuracy of both.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import BaselineTrainer, baseline_cnn, baseline_mlp  # noqa: E402

from cnnlab.data import load_dataset  # noqa: E402
from cnnlab.engine.config import TrainConfig  # noqa: E402
from cnnlab.engine.loop import run_epochs  # noqa: E402
from cnnlab.engine.session import open_session  # noqa: E402
from cnnlab.net.builder import build_model  # noqa: E402
from cnnlab.net.resolve import (  # noqa: E402
    fit_spec,  # noqa: E402
    resolve_spec,
    summarize,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
BASELINES = {"mlp": baseline_mlp, "cnn": baseline_cnn}


def load(quick: bool, limit: int | None):
    source = str(SHARED) if SHARED.exists() else "digits"
    data = load_dataset(source)
    count = limit or (4000 if quick else len(data.y_train))
    return data, data.x_train[:count], data.y_train[:count]


class CnnlabTrainer:
    """cnnlab's engine, one epoch per call (the state carries over, as in one long run)."""

    def __init__(self, name, data, x, y, precision: str = "fp32"):
        self.config = TrainConfig(epochs=1, device="cpu", precision=precision)
        spec = fit_spec(resolve_spec(name), data.image_shape, data.num_classes)
        session = open_session(lambda: build_model(spec), x, y, self.config, class_names=data.class_names)
        self.state, self.tensors = session.state, session.tensors

    def epoch(self) -> dict:
        self.config.epochs = self.state.epoch + 1
        return run_epochs(self.state, self.tensors, self.config)[-1].to_dict()


def baseline_trainer(name, data, x, y) -> BaselineTrainer:
    from cnnlab.data.split import split_labels

    split = split_labels(y, data.class_names, 0.2, "stratified", 0)
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float().div(255).contiguous()  # noqa: E731
    torch.manual_seed(0)
    model = BASELINES[name](data.image_shape, data.num_classes)
    return BaselineTrainer(model, as_tensor(x[split.train_idx]), torch.from_numpy(y[split.train_idx]),
                           as_tensor(x[split.val_idx]), torch.from_numpy(y[split.val_idx]))


def summarise(history: list[dict], macs: int, train_count: int) -> dict:
    train_time = sum(r["train_time"] for r in history)
    epoch_time = sum(r["time"] for r in history) / len(history)
    return {"seconds_per_epoch": epoch_time, "train_seconds_per_epoch": train_time / len(history),
            "images_per_second": train_count * len(history) / train_time,
            "gflops": 6 * macs * train_count * len(history) / train_time / 1e9,
            "final_val_accuracy": history[-1]["val_accuracy"], "epochs": history}


def bench(name: str, data, x, y, epochs: int, bf16: bool) -> dict:
    macs = summarize(resolve_spec(name), data.image_shape).macs
    train_count = len(y) - round(0.2 * len(y))
    start = time.perf_counter()
    trainers = {"cnnlab": CnnlabTrainer(name, data, x, y), "baseline": baseline_trainer(name, data, x, y)}
    if bf16:
        trainers["cnnlab bf16"] = CnnlabTrainer(name, data, x, y, "bf16")
    histories: dict[str, list[dict]] = {engine: [] for engine in trainers}
    for _ in range(epochs):  # alternate epoch by epoch, so drift in the machine's speed hits all alike
        for engine, trainer in trainers.items():
            histories[engine].append(trainer.epoch())
    engines = {engine: summarise(history, macs, train_count) for engine, history in histories.items()}
    base = engines["baseline"]["seconds_per_epoch"]
    ratios = {engine: base / r["seconds_per_epoch"] for engine, r in engines.items() if engine != "baseline"}
    return {"model": name, "engines": engines, "ratios": ratios, "wall_seconds": time.perf_counter() - start}


def machine() -> dict:
    import os

    from cnnlab.runs.records import describe_device

    return {"cpu": describe_device(torch.device("cpu")), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}


def table(results: list[dict]) -> str:
    lines = ["| model | engine | s/epoch | train img/s | GFLOP/s | final val acc | baseline / engine |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        for engine, r in result["engines"].items():
            ratio = f"**{result['ratios'][engine]:.2f}x**" if engine in result["ratios"] else "1.00x"
            lines.append(f"| {result['model']} | {engine} | {r['seconds_per_epoch']:.2f} | "
                         f"{r['images_per_second']:,.0f} | {r['gflops']:.1f} | {r['final_val_accuracy']:.4f} | "
                         f"{ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few thousand images, 1 epoch")
    parser.add_argument("--epochs", type=int, help="default: 5 (1 with --quick)")
    parser.add_argument("--limit", type=int, help="use only the first N training images")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--bf16", action="store_true", help="also run cnnlab with --precision bf16")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 5)
    data, x, y = load(args.quick, args.limit)
    results = [bench(name, data, x, y, epochs, args.bf16) for name in args.models.split(",")]
    report = {"machine": machine(), "dataset": data.name, "train_images": len(y), "epochs": epochs,
              "results": results}
    print(f"{data.name}: {len(y):,} images (80% trained, 20% validated), {epochs} epoch(s); {report['machine']}")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
