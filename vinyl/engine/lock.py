"""The lock a transaction level's statements hold, one at a time.

Every statement of a block takes it: :meth:`StatementLock.try_acquire`
takes a free lock without a coroutine (``asyncio.Lock.acquire`` is one to
create and run even when the lock is free). Waiters are served first come,
first served; a release hands the lock straight to the first waiter still
waiting, so no task can take it in between.

A level inside a transaction (a nested ``atomic`` block) holds its parent's
lock for its whole life and names its task as the lock's ``holder``. A task
that waits for such a lock while the holder awaits that very task (directly
or through other tasks and ``gather``) would wait forever: every
:data:`CYCLE_CHECK_S` seconds of its wait the waiter looks for that cycle,
and if it finds it, its wait fails with Django's
``TransactionManagementError`` instead, which the holder then gets from its
await.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from django.db.transaction import TransactionManagementError

from vinyl._compat import awaited

#: How often (seconds) a task waiting for a held level looks for a cycle.
CYCLE_CHECK_S = 0.1
#: How deep the search follows what tasks await (a bound: chains are short).
CYCLE_SEARCH_LIMIT = 1000


class StatementLock:
    """A first-come, first-served lock of one event loop (``asyncio.Lock``'s
    API: ``async with``, ``acquire``, ``release``, ``locked``)."""

    __slots__ = ("_held", "_waiters", "holder")

    def __init__(self) -> None:
        self._held = False
        # Futures of the tasks waiting, in order; one set to a result was
        # handed the lock.
        self._waiters: deque[asyncio.Future[None]] | None = None
        #: The task of the level that holds the lock until it ends (a nested
        #: block), set by that level; None while a statement holds it.
        self.holder: asyncio.Task | None = None

    def locked(self) -> bool:
        return self._held

    def try_acquire(self) -> bool:
        """Take the lock if it is free (nobody waits then: a release hands
        it to the first waiter); False if it is held."""
        if self._held:
            return False
        self._held = True
        return True

    async def acquire(self) -> bool:
        if not self._held:
            self._held = True
            return True
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        waiters.append(waiter)
        watch = _CycleWatch(self, waiter, loop)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed the lock, then cancelled before it resumed: pass it on.
                self.release()
            else:
                waiter.cancel()
                try:
                    waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        finally:
            watch.stop()
        return True

    def release(self) -> None:
        """Hand the lock to the first task still waiting, else free it."""
        if not self._held:
            raise RuntimeError("Lock is not acquired.")
        self.holder = None
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # still held: it is the waiter's now
                return
        self._held = False

    async def __aenter__(self) -> None:
        if not self._held:
            self._held = True
            return
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        waiting = len(self._waiters) if self._waiters else 0
        return f"<vinyl StatementLock {'locked' if self._held else 'unlocked'}, {waiting} waiting>"


class _CycleWatch:
    """Looks, every :data:`CYCLE_CHECK_S` seconds, whether the lock's holder
    awaits the waiting task: then fails the wait (see the module docstring)."""

    __slots__ = ("lock", "waiter", "task", "loop", "timer")

    def __init__(self, lock: StatementLock, waiter: asyncio.Future[None], loop: asyncio.AbstractEventLoop) -> None:
        self.lock = lock
        self.waiter = waiter
        self.task = asyncio.current_task(loop)
        self.loop = loop
        self.timer: asyncio.TimerHandle | None = loop.call_later(CYCLE_CHECK_S, self.check)

    def check(self) -> None:
        self.timer = None
        if self.waiter.done():
            return
        holder = self.lock.holder
        if holder is not None and self.task is not None and holder is not self.task and _awaits(holder, self.task):
            self.waiter.set_exception(TransactionManagementError(
                f"this task ({self.task.get_name()}) waits for a transaction level that a nested atomic block of "
                f"task {holder.get_name()} holds until the block ends, and that task awaits this one: neither "
                f"could go on. Start this work inside the nested block, or await it before entering the block."
            ))
            return
        self.timer = self.loop.call_later(CYCLE_CHECK_S, self.check)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _awaits(task: asyncio.Task, target: asyncio.Task) -> bool:
    """Does ``task`` wait, through the tasks and gathers it awaits, for ``target``?"""
    pending: list = [task]
    seen: set[int] = set()
    while pending and len(seen) < CYCLE_SEARCH_LIMIT:
        for waited in awaited(pending.pop()):
            if waited is target:
                return True
            if id(waited) not in seen:
                seen.add(id(waited))
                pending.append(waited)
    return False
