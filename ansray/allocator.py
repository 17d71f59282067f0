"""Process-wide allocator settings for CPU inference, applied by the entry points that own the
process (the denoise job's actors, `ansray.enhance`), not by any model code."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@functools.cache
def retain_freed_memory() -> bool:
    """Has glibc keep freed memory for reuse (no mmap for large blocks, no trimming); True if applied.

    A 10 s segment's activations are tens to hundreds of MB each. By default glibc maps every such
    block fresh and unmaps it when freed, so each forward pass faults in and zeroes all of its
    memory again: on a 2-core machine that was ~17% of the fused path's time (~40% of the
    reference's). Retained, the pages are reused; the process keeps its peak (which segmenting
    bounds) instead of returning it between passes. Process-wide, once; a no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
