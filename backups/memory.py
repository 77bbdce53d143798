"""Keep a long-running worker's memory flat across backups (glibc's malloc).

The pipeline moves 1 MiB chunks between threads. glibc serves blocks that large with mmap,
but raises its mmap threshold each time such a block is freed (up to 32 MiB): from then on
the chunks come from the threads' heap arenas, whose freed pages are rarely given back, so a
worker grew by some MB with every backup (113 -> 185 MB over twelve, bench_worker_rss.py).
A fixed threshold turns that adjustment off: chunks are mapped and unmapped again, and the
worker's RSS after a backup stays where it was after the first.

No Django imports; a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, now kept


def fix_malloc_threshold() -> bool:
    """Fix glibc's mmap threshold in this process; True when it was set."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        logger.warning("could not fix the C library's mmap threshold")
        return False
    return True


def fix_malloc_at_worker_start(sender: object, proc_name: str = "", **kwargs: object) -> None:
    """django-q2's ``post_spawn``: each worker process fixes its threshold before any task."""
    fix_malloc_threshold()
