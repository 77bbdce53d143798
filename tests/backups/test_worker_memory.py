"""A worker's malloc keeps large chunks mapped, so freed pipeline chunks do not pile up in
the heap from one backup to the next (backups/memory.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django_q.signals import post_spawn

from backups.memory import fix_malloc_at_worker_start

# In a fresh interpreter: free a 1 MiB block (glibc then raises its mmap threshold unless it
# is fixed), allocate 1 MiB blocks again and print how much the brk heap grew.
PROBE = """
import ctypes, sys
from backups.memory import fix_malloc_threshold

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    fix_malloc_threshold()
block = bytearray(1 << 20)
del block
before = libc.mallinfo2().arena
kept = [bytearray(1 << 20) for _ in range(8)]
print(libc.mallinfo2().arena - before)
"""


def heap_growth(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


def test_without_the_fix_freed_chunks_come_back_from_the_heap() -> None:
    if not hasattr(__import__("ctypes").CDLL(None), "mallinfo2"):
        pytest.skip("not glibc 2.33 or later")

    assert heap_growth("default") >= 8 << 20


def test_with_the_fix_large_chunks_stay_out_of_the_heap() -> None:
    assert heap_growth("fixed") < 1 << 20


def test_every_worker_process_fixes_it_when_it_starts() -> None:
    receivers = [entry[1]() for entry in post_spawn.receivers]  # (key, weak ref, ...)

    assert fix_malloc_at_worker_start in receivers
