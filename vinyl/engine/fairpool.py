"""A first-come, first-served connection pool for vinyl's engines.

SQLAlchemy's ``AsyncAdaptedQueuePool`` keeps idle connections in an
``asyncio.Queue``. A connection given back wakes the oldest waiting task, but
stays in the queue until that task runs; a task that asks meanwhile (the
one that gave it back, starting its next operation in the same loop step)
takes it first, and the woken task queues again at the end. Under steady
load with more tasks than connections the same tasks keep the connections
and the waiting ones time out after ``pool_timeout`` (``PoolExhausted``)
although connections were free many times over (50 tasks on a pool of 10:
40 timeouts in 40 s, none of them needed).

Here a connection given back while tasks wait goes to the oldest of them
directly; a task only takes an idle connection when nobody waits. The rest
is SQLAlchemy's pool.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Generic, Optional, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_ as _sa_await
from sqlalchemy.util import queue as sa_queue

from vinyl._compat import QueueCommon, pool_queue

_T = TypeVar("_T")


class FairQueue(QueueCommon[_T], Generic[_T]):
    """The pool's queue of idle connections, handing them over in order.

    Invariant: idle items and waiting tasks never coexist (an item put while
    tasks wait goes to the first of them), so an item found idle is free.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._items: deque[_T] = deque()
        self._waiters: deque[asyncio.Future] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def waiting(self) -> int:
        """How many tasks wait for an item."""
        return len(self._waiters)

    def put_nowait(self, item: _T) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        if self.full():
            raise sa_queue.Full()
        self._items.append(item)

    def put(self, item: _T, block: bool = True, timeout: Optional[float] = None) -> None:
        # The pool only puts without blocking: a full pool closes the item.
        self.put_nowait(item)

    def get_nowait(self) -> _T:
        if not self._items:
            raise sa_queue.Empty()
        return self._items.pop() if self.use_lifo else self._items.popleft()

    def get(self, block: bool = True, timeout: Optional[float] = None) -> _T:
        if self._items or not block:
            return self.get_nowait()
        return _sa_await(self._wait(timeout))

    async def _wait(self, timeout: Optional[float]) -> _T:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed an item as the task was cancelled: pass it on.
                self.put_nowait(waiter.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()
            try:
                self._waiters.remove(waiter)
            except ValueError:  # handed an item: put_nowait took it out
                pass


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(sa_queue.Empty())


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """``AsyncAdaptedQueuePool`` whose waiting tasks are served in order."""

    _queue_class = FairQueue  # type: ignore[assignment]


def waiting_tasks(pool: Any) -> int:
    """How many tasks wait for a connection of ``pool`` (0 for pools that
    do not say)."""
    queue = pool_queue(pool)
    return queue.waiting() if isinstance(queue, FairQueue) else 0
