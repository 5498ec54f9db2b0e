"""Run an awaitable to its end inside the calling task, cancellation or not.

A statement on a connection must not be cut short: a driver interrupted
between sending a query and reading its result leaves the connection in a
state nobody can use. :func:`finish` drives the awaitable from the caller's
own task (no task of its own, so no extra turns of the event loop) and
never hands the driver's futures to the task: the task waits on a guard of
the future instead (:class:`_Guard`), which the task cannot cancel. The
task wakes when the driver's future is done, in the same turn of the loop
as if it had waited on the future itself; a cancellation meanwhile is kept
by the task and raised into :func:`finish`, which lets the work go on and
raises the cancellation when it ends, over its result or error (its cause).
"""

from __future__ import annotations

import asyncio
import types
from typing import Any, Awaitable, Callable, Generator, TypeVar

from vinyl._compat import TaskWaitable, release_future

T = TypeVar("T")

_NONE: Callable[[], None] = type(None)


@types.coroutine
def finish(awaitable: Awaitable[T]) -> Generator[Any, None, T]:
    """``await finish(x)``: await ``x`` to its end even if the caller is
    cancelled meanwhile; the cancellation is re-raised once ``x`` is done.

    (A generator-based coroutine: calling it makes the generator the
    caller's ``await`` drives, with no object of its own built first: it
    runs on every statement.)
    """
    inner = awaitable.__await__()
    cancelled = False
    try:
        while True:
            try:
                waited = inner.send(None)
            except StopIteration as stop:
                if cancelled:
                    raise asyncio.CancelledError() from None
                return stop.value
            except BaseException as error:
                if cancelled:  # the cancellation wins, the error its cause
                    raise asyncio.CancelledError() from error
                raise
            if waited is None:  # a bare yield: one turn of the loop
                try:
                    yield None
                except asyncio.CancelledError:
                    cancelled = True
                continue
            # A future the work waits on: the task waits on its guard.
            if waited.done():
                release_future(waited)
                continue
            try:
                yield _Guard(waited)
            except asyncio.CancelledError:
                # Raised by the task once the future is done (the guard
                # refused to be cancelled): the work reads its result.
                cancelled = True
    except GeneratorExit:
        # The caller's coroutine is being closed (its loop is going
        # away): nothing can drive the work any more.
        inner.close()
        raise


class _Guard(TaskWaitable):
    """What the task waits on in place of a future of the work.

    The task registers its wake-up on the guard; the guard passes it on to
    the future, so the task resumes in the turn the future completes in
    (no stand-in future to complete first). ``Task.cancel()`` asks the
    thing it waits on to cancel: the guard refuses, so the future is never
    cancelled, and the task raises the cancellation when it resumes.
    """

    # (_waited and get_loop, the future's own: TaskWaitable's; _wake is set
    # by add_done_callback, which the task calls before anything can call
    # _done)
    __slots__ = ("_wake",)

    def add_done_callback(self, fn: Callable[[Any], object], *, context: Any = None) -> None:
        # One waiter: the task that was handed the guard.
        self._wake: Callable[[Any], object] = fn
        self._waited.add_done_callback(self._done, context=context)

    def _done(self, _waited: Any) -> None:
        self._wake(self)

    def done(self) -> bool:
        return self._waited.done()

    def cancelled(self) -> bool:
        return False

    def cancel(self, msg: Any = None) -> bool:
        return False  # the work runs to its end (see the module's doc)

    # The task's wake-up reads it (None); the work reads the future's own.
    # (NoneType() is None: a call without a Python frame, once per wait.)
    result = staticmethod(_NONE)
