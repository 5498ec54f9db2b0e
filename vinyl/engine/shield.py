"""Run an awaitable to its end inside the calling task, cancellation or not.

A statement on a connection must not be cut short: a driver interrupted
between sending a query and reading its result leaves the connection in a
state nobody can use. :func:`finish` drives the awaitable from the caller's
own task (no task of its own, so no extra turns of the event loop) and
never hands the driver's futures to the task: the task waits on a stand-in
future instead, and a cancellation only cancels the stand-in. The work goes
on; the cancellation is raised when it ends, and wins over its result.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Generator, TypeVar

from vinyl._compat import release_future

T = TypeVar("T")


def finish(awaitable: Awaitable[T]) -> Awaitable[T]:
    """``await finish(x)``: await ``x`` to its end even if the caller is
    cancelled meanwhile; the cancellation is re-raised once ``x`` is done."""
    return _ToTheEnd(awaitable)


class _ToTheEnd:
    __slots__ = ("_awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, None, Any]:
        inner = self._awaitable.__await__()
        cancelled = False
        try:
            while True:
                try:
                    waited = inner.send(None)
                except StopIteration as stop:
                    if cancelled:
                        raise asyncio.CancelledError() from None
                    return stop.value
                except BaseException:
                    if cancelled:  # the cancellation wins over an error too
                        raise asyncio.CancelledError() from None
                    raise
                if waited is None:  # a bare yield: one turn of the loop
                    try:
                        yield None
                    except asyncio.CancelledError:
                        cancelled = True
                    continue
                # A future the work waits on: the task waits on a stand-in.
                release_future(waited)
                while not waited.done():
                    stand_in = _stand_in(waited)
                    try:
                        yield from stand_in.__await__()
                    except asyncio.CancelledError:
                        cancelled = True
        except GeneratorExit:
            # The caller's coroutine is being closed (its loop is going
            # away): nothing can drive the work any more.
            inner.close()
            raise


def _stand_in(waited: asyncio.Future) -> asyncio.Future:
    stand_in = waited.get_loop().create_future()

    def relay(_: asyncio.Future) -> None:
        if not stand_in.done():
            stand_in.set_result(None)

    waited.add_done_callback(relay)
    return stand_in
