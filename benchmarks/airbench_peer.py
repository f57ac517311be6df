"""The airbench peer beside cnnlab in ``time_to_accuracy.py --against airbench``.

The peer is ``../shared/peers/airbench_cpu.py`` (a CPU port of Keller Jordan's airbench93; MIT
licence, attributed there): it is run, never copied. Each of its runs is a fresh process timed
from its start to its exit, as cnnlab's runs are, and reads the same decoded pixels: the arrays
cnnlab's loader gives for the image tree (the official order), written once, untimed, as the
``.npz`` the peer takes. The peer and cnnlab alternate, seed by seed, so that a machine that
slows down during the session slows both alike. Accuracy is reported raw and with each side's
test-time augmentation (the peer's 6 views, ``fast``'s ``flip_translate``); time as the ratio to
the peer's mean.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "airbench_cpu.py"


PEER_BATCH = 1024  # the peer trains on whole batches of 1024 (drop_last) and needs two steps at least


def peer_arrays(data: str, folder: Path, quick: bool = False) -> Path:
    """cnnlab's decoded arrays of ``data`` as the ``.npz`` the peer reads (x/y train/test, official order);
    in quick mode the few generated training images are repeated up to two of the peer's batches."""
    import numpy as np

    from cnnlab.data import load_dataset

    loaded = load_dataset(data, progress=False)
    x_train, y_train = loaded.x_train, loaded.y_train
    if quick:
        repeats = -(-2 * PEER_BATCH // len(y_train))
        x_train, y_train = np.concatenate([x_train] * repeats), np.concatenate([y_train] * repeats)
    path = folder / "peer-arrays.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=loaded.x_test, y_test=loaded.y_test)
    return path


def peer_jobs(seeds: int, peer: Path, arrays: Path, quick: bool) -> list[dict]:
    """One airbench93 run per seed (widths 64,128,128, 11 epochs; one epoch in quick mode)."""
    return [{"name": f"airbench93-peer-seed{seed}", "peer": str(peer), "arrays": str(arrays), "seed": seed,
             "epochs": 1 if quick else None} for seed in range(seeds)]


def alternate(peers: list[dict], ours: list[dict]) -> list[dict]:
    """Peer, cnnlab, peer, cnnlab...: seed by seed, the rest after."""
    order = []
    for index in range(max(len(peers), len(ours))):
        order += peers[index:index + 1] + ours[index:index + 1]
    return order


def run_peer(job: dict) -> dict:
    """The peer in a fresh process; its wall-clock seconds from start to exit and the accuracy it printed."""
    command = [sys.executable, job["peer"], job["arrays"], "--seed", str(job["seed"])]
    if job["epochs"]:
        command += ["--epochs", str(job["epochs"])]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{job['name']} failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {**job, "peer_report": report, "precision_used": "fp32", "seconds": wall,
            "raw_accuracy": report["acc"], "test_accuracy": report["tta_acc"], "load_seconds": 0.0,
            "curve": [{"epoch": report["epochs"], "seconds": wall, "test_accuracy": report["acc"]}]}


def raw_accuracy(run: dict) -> float:
    """Accuracy without test-time augmentation: the peer's own figure, or cnnlab's untimed re-score."""
    if "raw_accuracy" in run:
        return run["raw_accuracy"]
    return run.get("accuracy_by_tta", {}).get("None", run["test_accuracy"])  # the homework has no TTA


def against_summary(results: list[dict], machine: dict) -> str:
    """One Markdown table: each run, then each group's mean, time as the ratio to the peer's mean."""
    peers = [run for run in results if "peer" in run]
    base = sum(run["seconds"] for run in peers) / len(peers)
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} torch threads; AVX2 "
             f"{machine['avx2']}, AVX-512F {machine['avx512f']}, bf16 units {machine['bf16_units']}; "
             f"torch {machine['torch']}, {machine['date']}.", "",
             "| run | precision | acc raw | acc TTA | seconds | x peer |", "|---|---|---|---|---|---|"]
    lines += [_row(_label(run), run["precision_used"], [run], base) for run in results]
    for group in dict.fromkeys(run["name"].rsplit("-seed", 1)[0] for run in results):
        members = [run for run in results if run["name"].rsplit("-seed", 1)[0] == group]
        lines.append(_row(f"**{group}, mean of {len(members)}**", "", members, base))
    return "\n".join(lines)


def _label(run: dict) -> str:
    """The run's name; a run taken from an earlier JSON (``--baseline``) says so."""
    return f"{run['name']} (from {run['from']})" if "from" in run else run["name"]


def _row(name: str, precision: str, runs: list[dict], base: float) -> str:
    raw = sum(raw_accuracy(run) for run in runs) / len(runs)
    tta = sum(run["test_accuracy"] for run in runs) / len(runs)
    seconds = sum(run["seconds"] for run in runs) / len(runs)
    return f"| {name} | {precision} | {raw:.4f} | {tta:.4f} | {seconds:.0f} | {seconds / base:.2f} |"
