"""cnnlab.engine.heap: freed memory kept during CPU training (no page faults per large tensor), defaults after."""

import ctypes
import json
import platform
import subprocess
import sys

import pytest

from cnnlab.engine.heap import retained_heap, user_tuned_malloc

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
MALLINFO2 = GLIBC and hasattr(ctypes.CDLL(None), "mallinfo2")

# A fresh process (malloc's state is process-wide): where glibc puts a 64 MB tensor, read from its own
# books (mallinfo2) rather than from page faults, whose count depends on transparent huge pages and on
# what else the machine does (benchmarks/heap_faults.py counts them): "mapped" is how much the bytes in
# mmap-ed blocks grew while the tensor lived, "kept" the free bytes malloc holds once it is freed, and
# "returned" how much resident memory leaving the context handed back to the system.
PLACES = """
import ctypes, json, os, torch
from cnnlab.engine.heap import retained_heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def resident():  # bytes of this process in RAM
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def place():
    before = libc.mallinfo2()
    tensor = torch.ones(16 * 2**20)  # 64 MB
    held = libc.mallinfo2()
    del tensor
    freed = libc.mallinfo2()
    return {"mapped": held.hblkhd - before.hblkhd, "kept": freed.fordblks, "resident": resident()}

first = place()
with retained_heap("cpu") as applied:
    inside = place()
returned = inside["resident"] - resident()  # what leaving the context (malloc_trim) gave back to the system
after = place()
print(json.dumps({"applied": applied, "first": first, "inside": inside, "after": after, "returned": returned}))
"""
BLOCK = 64 * 2**20


def run_places(env: dict | None = None) -> dict:
    import os

    environ = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", PLACES], capture_output=True, text=True, check=True,
                            env={**environ, **(env or {})})
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not MALLINFO2, reason="mallopt and mallinfo2 are glibc's (2.33 and later)")
def test_large_tensors_stay_in_the_heap_inside_and_go_back_to_the_system_after():
    got = run_places()
    assert got["applied"] is True
    assert got["first"]["mapped"] >= BLOCK  # glibc's default: a block this large is an mmap of its own
    assert got["inside"]["mapped"] < BLOCK and got["inside"]["kept"] >= BLOCK  # from the heap, kept when freed
    # malloc_trim gave the kept pages back to the system (they may stay on malloc's free list, unbacked)
    assert got["returned"] >= BLOCK * 0.9
    # the defaults are back: a block this large is an mmap of its own again (malloc's free list may still count
    # the pages malloc_trim handed back, so its free bytes say nothing here)
    assert got["after"]["mapped"] >= BLOCK


@pytest.mark.skipif(not MALLINFO2, reason="mallopt and mallinfo2 are glibc's (2.33 and later)")
def test_a_user_who_tuned_malloc_is_left_alone():
    got = run_places({"MALLOC_ARENA_MAX": "2"})
    assert got["applied"] is False
    assert got["inside"]["mapped"] >= BLOCK and got["inside"]["kept"] < BLOCK


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
