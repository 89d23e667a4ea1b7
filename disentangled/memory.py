"""The allocator setting for work that frees and reallocates the same memory over and over.

A training step allocates and frees the same few dozen MiB of activations and gradients every
time, and the metrics' cross-validated logistic regression allocates and frees arrays of a
few MB thousands of times. glibc serves blocks over its (dynamic) mmap threshold with fresh
pages and trims the top of the heap once more than its trim threshold is free, so such work
spends much of its time in page faults (a training step on the CPU page-faulted about 8,700
pages, 34 MiB, back in every time; measurements in ``docs/benchmarks.md``).
:func:`keep_freed_memory` raises both thresholds once per process: blocks up to
:data:`MMAP_THRESHOLD` come from the heap, and up to :data:`TRIM_THRESHOLD` of freed heap is
kept for the next use. The numbers computed are the same; only where memory comes from
changes, and a process may hold on to its peak heap. glibc only: elsewhere, or with
``DISENTANGLED_DEFAULT_MALLOC=1`` in the environment, nothing is changed.
"""

from __future__ import annotations

import os

MMAP_THRESHOLD = 32 << 20  # bytes
TRIM_THRESHOLD = 1 << 30  # bytes
_TUNED: bool | None = None  # None: not tried yet in this process


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds in this process (once); True if applied."""
    global _TUNED
    if _TUNED is not None:
        return _TUNED
    if os.environ.get("DISENTANGLED_DEFAULT_MALLOC") == "1":
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # glibc only; AttributeError elsewhere
    except (OSError, AttributeError):
        _TUNED = False
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h (setting either ends glibc's own adjusting of both)
    _TUNED = bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))
    return _TUNED
