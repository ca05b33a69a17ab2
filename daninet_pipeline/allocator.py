"""Keep freed memory in the process instead of returning it to the kernel (glibc).

The networks and the volumes allocate tensors of tens to hundreds of MB on every step.
glibc serves any block over 32 MB with a fresh ``mmap`` and unmaps it on ``free``, so each
step pays the kernel to zero those pages again: on the 2-core development machine half of
a training step's CPU time was system time in page faults. Telling glibc never to use
``mmap`` for the heap and never to trim it keeps those pages for reuse: a width-16
training step at batch 32, 128 px went from 4.7 s to 1.8 s (docs/benchmarks.md), for
about a third more peak resident memory.

:func:`keep_freed_memory` does that with ``mallopt`` at run time (the same switches as
``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=...``). It is a no-op
where the C library is not glibc, and when ``DANINET_KEEP_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

LOGGER = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: the largest trim threshold mallopt accepts (an int): 2 GiB of free heap top is kept
TRIM_THRESHOLD = 2**31 - 1


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Switch glibc's allocator to keep freed memory; True if it was switched.

    Idempotent. Call it once before the large allocations (training, simulation,
    pre-processing); blocks allocated before keep their mapping.
    """
    if os.environ.get("DANINET_KEEP_FREED_MEMORY", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    LOGGER.debug("glibc allocator keeps freed memory: %s", ok)
    return ok
