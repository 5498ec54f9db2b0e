"""Building many objects at once with the cyclic garbage collector paused.

A result of a few hundred rows allocates thousands of container objects
(instances, their ``__dict__`` and ``_state``) that all survive. Every 700
allocations trigger a collection, and now and then one walks every object
of the process: with Django loaded, most of the time spent building went
there. Builders do no I/O and never yield to the event loop, so pausing the
collector while they run is safe; it runs once, later, over the whole batch.
A collector the application disabled stays disabled.
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Sized

#: From this many objects on, a batch is built with the collector paused.
GC_PAUSE_ROWS = 64


class paused_gc:
    """``with paused_gc(n):`` pauses the collector if ``n`` objects is a batch."""

    __slots__ = ("paused",)

    def __init__(self, count: int) -> None:
        self.paused = count >= GC_PAUSE_ROWS and gc.isenabled()

    def __enter__(self) -> None:
        if self.paused:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            gc.enable()


def batched(build: Callable[..., Any]) -> Callable[..., Any]:
    """``build(rows, *args)`` run with the collector paused for large ``rows``."""

    def build_batch(rows: Sized, *args: Any) -> Any:
        if len(rows) < GC_PAUSE_ROWS:  # the usual small result: nothing to set up
            return build(rows, *args)
        with paused_gc(len(rows)):
            return build(rows, *args)

    return build_batch
