"""Page faults of large tensors before, inside and after ``retained_heap`` (cnnlab.engine.heap).

    python benchmarks/heap_faults.py [--repeats 3]

Each repeat runs in a fresh process (malloc's state is process-wide) and fills a 64 MB
tensor 5 times with glibc's defaults, inside ``retained_heap("cpu")`` (after one fill that
grows the heap) and after it, printing the minor page faults of each phase as JSON. With
4 KiB pages each default fill faults about 16,384 times, inside almost never. A measurement,
not a test: transparent huge pages (a 2 MiB page is one fault) and what else the machine
runs change the counts (32,767 instead of 81,920 for the first phase was seen on a busy
2-core machine). tests/test_heap.py checks where glibc puts the blocks instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

FAULTS = """
import json, resource, torch
from cnnlab.engine.heap import retained_heap
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(16 * 2**20)  # 64 MB, written and freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
first = faults()
with retained_heap("cpu") as applied:
    faults()  # the heap grows once here
    inside = faults()
after = faults()
print(json.dumps({"applied": applied, "first": first, "inside": inside, "after": after}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    environ = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    for _ in range(args.repeats):
        done = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, check=True,
                              env=environ)
        print(done.stdout.strip().splitlines()[-1])
    thp = "/sys/kernel/mm/transparent_hugepage/enabled"
    if os.path.exists(thp):
        with open(thp) as handle:
            print(json.dumps({"transparent_hugepage": handle.read().strip()}))


if __name__ == "__main__":
    main()
