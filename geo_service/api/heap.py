"""The process's memory around a swap: what the collector walks, and what the allocator keeps.

A build in memory is some hundreds of thousands of Python objects. Left alone, the cyclic
collector would walk them on every full collection (a pause for every open request), and the C
allocator would keep the pages a build swapped out has freed, the resident size growing with
every swap (figures in ``bench/README.md``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
import weakref
from typing import Any


def settle_collector(full: bool = False) -> None:
    """Take what is alive now out of the cyclic collector's sight.

    What is alive after a build has loaded (the libraries' modules, classes and functions, the
    layers) lives as long as the build. Left to the collector, each full collection walks all
    of it, a pause for every open request a few times a minute under load; frozen, it is never
    walked again (refcounting still frees it, and frees a build swapped out: it holds no
    reference cycle). ``full`` (at start-up) collects everything first, what an earlier freeze
    kept included; after a swap only the young generations are collected: a full collection of
    two builds would pause every request far longer.
    """
    if full:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None elsewhere (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release(gone: weakref.ref[Any], wait_s: float = 60.0) -> None:
    """Once ``gone``'s object has been freed (its last request ended; at most ``wait_s``),
    hand the allocator's free pages back to the system."""
    deadline = time.monotonic() + wait_s
    while gone() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if _TRIM is not None:
        _TRIM(0)  # ctypes lets go of the GIL meanwhile: requests go on
