"""cnnlab.engine.heap: freed memory kept during CPU training (no page faults per large tensor), defaults after."""

import json
import platform
import subprocess
import sys

import pytest

from cnnlab.engine.heap import retained_heap, user_tuned_malloc

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A fresh process (malloc's state is process-wide): page faults of filling a 64 MB tensor 5 times, before,
# inside and after retained_heap(). With the defaults each fill maps fresh pages (16,384 faults per 64 MB).
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


def run_faults(env: dict | None = None) -> dict:
    import os

    environ = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", FAULTS], capture_output=True, text=True, check=True,
                            env={**environ, **(env or {})})
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_large_tensors_stop_page_faulting_inside_and_start_again_after():
    got = run_faults()
    assert got["applied"] is True
    assert got["first"] > 5 * 8000  # each 64 MB fill maps its pages afresh
    assert got["inside"] < 2000  # the same memory, reused
    assert got["after"] > 5 * 8000  # the defaults are back: large blocks go back to the system on free


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_a_user_who_tuned_malloc_is_left_alone():
    got = run_faults({"MALLOC_ARENA_MAX": "2"})
    assert got["applied"] is False
    assert got["inside"] > 5 * 8000


def test_user_tuned_malloc_reads_glibc_variables_and_tunables():
    assert not user_tuned_malloc({"PATH": "/bin"})
    assert user_tuned_malloc({"MALLOC_MMAP_MAX_": "0"})
    assert user_tuned_malloc({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"})
    assert not user_tuned_malloc({"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=1"})


def test_not_applied_off_the_cpu_and_nesting_keeps_it_until_the_last_exit():
    with retained_heap("cuda") as applied:
        assert applied is False
    with retained_heap("cpu") as outer:
        with retained_heap("cpu") as inner:
            assert inner == outer
        from cnnlab.engine import heap

        assert heap._holders == (1 if outer else 0)
    assert heap._holders == 0
