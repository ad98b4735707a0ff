"""The cyclic collector while the model runs: what was loaded before is frozen.

The model works over millions of long-lived Python objects (a geometry for every community,
incident and footprint) and allocates enough while it runs to set off many full collections,
each of which would walk all of them. Frozen, they are never walked (refcounting still frees
them). What it saves: ``bench/README.md``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0


@contextmanager
def frozen() -> Iterator[None]:
    """Everything alive now out of the collector's sight until the outermost ``frozen`` ends."""
    global _depth
    gc.freeze()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.unfreeze()
