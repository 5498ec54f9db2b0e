"""The lock a transaction level's statements hold, one at a time.

Every statement of a block takes it: :meth:`StatementLock.try_acquire`
takes a free lock without a coroutine (``asyncio.Lock.acquire`` is one to
create and run even when the lock is free). Waiters are served first come,
first served; a release hands the lock straight to the first waiter still
waiting, so no task can take it in between.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class StatementLock:
    """A first-come, first-served lock of one event loop (``asyncio.Lock``'s
    API: ``async with``, ``acquire``, ``release``, ``locked``)."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        # Futures of the tasks waiting, in order; one set to a result was
        # handed the lock.
        self._waiters: deque[asyncio.Future[None]] | None = None

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
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed the lock, then cancelled before it resumed: pass it on.
                self.release()
            else:
                waiter.cancel()
                try:
                    waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        return True

    def release(self) -> None:
        """Hand the lock to the first task still waiting, else free it."""
        if not self._held:
            raise RuntimeError("Lock is not acquired.")
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
