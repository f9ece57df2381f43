"""Helpers for code that builds millions of Python objects at once.

CPython's cycle collector runs every few hundred container allocations, and
each full pass walks every live object. Reading a million contacts into
columns allocates millions of tuples, lists and dicts while millions more are
alive, so the collector ends up costing more than the work itself (four times
as much when decoding a million attribute objects next to the other columns).
Bulk data holds no reference cycles, so pausing the collector around such a
step loses nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cycle collector for the block, or for each call of a function it
    decorates (``@collector_paused()``); nested pauses are fine."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
