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


#: A nested prefetch holds the collector paused across its reads while it
#: has built at most this many objects (see :class:`held_gc`).
GC_HOLD_ROWS = 2000


class held_gc:
    """``with held_gc(n) as hold:`` the collector paused over a read of several
    steps that await in between (a nested prefetch's levels, ``n`` the
    objects its first built), so that none of its collections walks the
    instances it built, all alive, before the read returns them.

    Unlike :class:`paused_gc` the pause spans round trips, where other tasks
    run: it is bounded. It is taken only for a first level of at most
    :data:`GC_HOLD_ROWS` objects, and :meth:`grow`, told each further
    level's count, resumes the collector as soon as more were built (the
    steps after it pause per batch again). It composes as ``paused_gc``
    does: taken only if the collector runs, and the pauses of the steps
    inside it find it paused and do nothing. Resumed on any way out (an
    error, a cancellation).
    """

    __slots__ = ("paused", "count")

    def __init__(self, count: int) -> None:
        self.count = count
        self.paused = count <= GC_HOLD_ROWS and gc.isenabled()

    def __enter__(self) -> held_gc:
        if self.paused:
            gc.disable()
        return self

    def grow(self, count: int) -> None:
        """``count`` more objects built: past the bound, the collector runs again."""
        self.count += count
        if self.paused and self.count > GC_HOLD_ROWS:
            self.paused = False
            gc.enable()

    def __exit__(self, *exc: object) -> None:
        if self.paused:
            self.paused = False
            gc.enable()


def batched(build: Callable[..., Any]) -> Callable[..., Any]:
    """``build(rows, *args)`` run with the collector paused for large ``rows``."""

    def build_batch(rows: Sized, *args: Any) -> Any:
        if len(rows) < GC_PAUSE_ROWS:  # the usual small result: nothing to set up
            return build(rows, *args)
        with paused_gc(len(rows)):
            return build(rows, *args)

    return build_batch


def batched_rows(build: Callable[..., Any]) -> Callable[..., Any]:
    """``build(rows)`` of a driver's rows, as :func:`batched` runs it; a
    list of a batch's rows is emptied once built.

    The driver's list stays referenced after the read (asyncpg's finished
    future holds it until the task's step ends), so the next collection,
    often at the caller's next statement in that same step, walked every
    row, all alive, and moved them to an older generation. Emptied, the
    rows are freed at once, as a driver's rows are once read; the list is
    the driver's answer to this read, which nothing reads after the build.
    """

    def build_rows(rows: Sized) -> Any:
        if len(rows) < GC_PAUSE_ROWS:  # the usual small result: nothing to set up
            return build(rows)
        with paused_gc(len(rows)):
            built = build(rows)
        if type(rows) is list:
            rows.clear()
        return built

    return build_rows
