"""`reuse_freed_memory`: a large block freed and allocated again by a worker thread stops page-faulting."""

import subprocess
import sys

import pytest

from next_jax import host_memory

# A fresh interpreter (the settings are process-wide and must precede the allocating thread): a new thread
# allocates, touches and frees a 64 MiB block 6 times; prints the minor page faults of the last 4 rounds.
WORKER = r"""
import ctypes, ctypes.util, resource, sys, threading
from next_jax import host_memory
if sys.argv[1] == "on":
    assert host_memory.reuse_freed_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size, faults = 64 << 20, []
def rounds():
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
thread = threading.Thread(target=rounds)
thread.start()
thread.join()
print(sum(faults[2:]))
"""


def faults_per_round(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", WORKER, mode], capture_output=True, text=True, timeout=120, check=True
    )
    return int(out.stdout.split()[-1]) / 4


@pytest.mark.skipif(host_memory._glibc() is None, reason="glibc only")
def test_freed_block_is_reused_without_page_faults():
    without, with_reuse = faults_per_round("off"), faults_per_round("on")
    # glibc's default: each round maps a fresh block (16k faults with 4 KiB pages, fewer with huge pages).
    assert without >= 16
    assert with_reuse <= without / 20
