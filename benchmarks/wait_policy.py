"""How the OpenMP wait policy changes a CPU training epoch: ACTIVE, PASSIVE, unset, spin counts.

    python benchmarks/wait_policy.py [--repeats 5] [--busy-neighbour]

Each setting runs in a fresh process (the OpenMP runtime reads its environment once, when
torch loads it), in turn, ``--repeats`` times: a CNN epoch on digits and one on a few
hundred random 32x32x3 images, each timed as its second epoch (the first pays one-time
costs). ``--busy-neighbour`` starts a process spinning on one core meanwhile. The median
epoch time per setting is printed, with its ratio to the first setting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "unset": {},
    **{f"GOMP_SPINCOUNT={count}": {"GOMP_SPINCOUNT": str(count)} for count in (1000, 3000, 10000, 30000, 100000)},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},  # one thread: no pool to wait, nothing to spin
}
VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")  # unset unless the setting sets one
SPIN = "while True: pass"


def child(images: int) -> None:
    """Print the second-epoch times (seconds) of the CNN on digits and on random 32x32x3 images."""
    import numpy as np

    from cnnlab.data import load_dataset
    from cnnlab.engine.config import TrainConfig
    from cnnlab.engine.session import train_model
    from cnnlab.net.builder import build_model
    from cnnlab.net.resolve import fit_spec, resolve_spec

    def epoch_seconds(x, y, classes) -> float:
        spec = fit_spec(resolve_spec("cnn"), x.shape[1:], classes)
        session = train_model(lambda: build_model(spec), x, y, TrainConfig(epochs=2, device="cpu"))
        return session.state.history[-1].train_time

    digits = load_dataset("digits")
    rng = np.random.default_rng(0)
    random_x = rng.integers(0, 256, size=(images, 32, 32, 3), dtype=np.uint8)
    random_y = rng.integers(0, 10, size=images)
    print(json.dumps({"digits": epoch_seconds(digits.x_train, digits.y_train, digits.num_classes),
                      "random32": epoch_seconds(random_x, random_y, 10)}))


def measure(settings: list[str], repeats: int, images: int) -> dict[str, dict[str, list[float]]]:
    """Every setting, ``repeats`` times, interleaved so that a change of load hits them all alike."""
    times = {name: {"digits": [], "random32": []} for name in settings}
    for _ in range(repeats):
        for name in settings:
            env = {key: value for key, value in os.environ.items() if key not in VARIABLES}
            out = subprocess.run([sys.executable, __file__, "--child", "--images", str(images)],
                                 env={**env, **SETTINGS[name]}, capture_output=True, text=True, check=True)
            for task, seconds in json.loads(out.stdout.strip().splitlines()[-1]).items():
                times[name][task].append(seconds)
    return times


def busy_seconds() -> float:
    """CPU seconds every process on the machine has run for (from /proc/stat), to tell how busy it was."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=512, help="random 32x32x3 images (default 512)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--busy-neighbour", action="store_true", help="spin a process on one core meanwhile")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.images)
    neighbour = subprocess.Popen([sys.executable, "-c", SPIN]) if args.busy_neighbour else None
    start, busy, mine = time.perf_counter(), busy_seconds(), children_seconds()
    try:
        times = measure(args.settings, args.repeats, args.images)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    elapsed = time.perf_counter() - start
    others = busy_seconds() - busy - (children_seconds() - mine)  # the neighbour is a child: counted as ours
    print(f"other processes kept {others / elapsed:.2f} of {os.cpu_count()} cores busy meanwhile")
    base = {task: statistics.median(values) for task, values in times[args.settings[0]].items()}
    print(f"median epoch seconds over {args.repeats} runs; load average {os.getloadavg()[0]:.2f}"
          f"{'; busy neighbour on one core' if neighbour else ''}")
    for name, tasks in times.items():
        cells = [f"{task} {statistics.median(v):.3f} s (x{statistics.median(v) / base[task]:.3f}; "
                 f"{min(v):.3f}-{max(v):.3f})" for task, v in tasks.items()]
        print(f"{name:<24}" + "   ".join(cells))


if __name__ == "__main__":
    main()
