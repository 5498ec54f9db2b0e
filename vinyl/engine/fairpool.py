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

Two kinds of task wait in the same line: those inside SQLAlchemy's checkout
(in the greenlet, :meth:`FairQueue.get`), which take a pool entry, and
vinyl's statements outside a block (:meth:`FairQueue.join`, see
vinyl.engine.turns), which also take a connection still checked out,
handed over by the task that used it last (:meth:`FairQueue.hand_over`):
no checkin, checkout, task or greenlet per handoff.

The queue also holds vinyl's spare connections (:attr:`FairQueue.spares`,
see vinyl.engine.engines.keep_spare): idle ones left checked out between
statements. Any checkout through the pool that finds no idle connection
takes a spare back first (:meth:`FairQueue.get`), so a spare never makes
anyone wait and never makes the pool open a connection.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from time import monotonic
from typing import Any, Callable, Generic, Optional, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_ as _sa_await
from sqlalchemy.util import queue as sa_queue

from vinyl._compat import QueueCommon, max_overflow, pool_queue

_T = TypeVar("_T")

_BASE_LOOP: Any = asyncio.BaseEventLoop

# What a task waiting in line (FairQueue.join) is given: its waiter's result
# is (kind, value).
HANDED = 0  # value: a connection checked out of the pool, idle, for this task
# (as its holder gives it: vinyl's statements give a (pooled, driver) pair)
ENTRY = 1  # value: a pool entry, to check out at once (FairQueue.reinstate)
FAILED = 2  # value: the error of another task's connect (the server is down)
TIMED_OUT = 3  # value: None; pool_timeout passed


def no_connection_left(idle: int, overflow: int, max_overflow: int) -> bool:
    """The rule by which a checkout from a QueuePool waits: no idle
    connection, and no overflow left to open one (``max_overflow`` -1: no
    limit, never wait)."""
    return idle == 0 and 0 <= max_overflow <= overflow


class FairQueue(QueueCommon[_T], Generic[_T]):
    """The pool's queue of idle connections, handing them over in order.

    Invariant: idle items and waiting tasks never coexist (an item put while
    tasks wait goes to the first of them), so an item found idle is free.
    Each waiter is ``(future, deadline)``: for a task that waits through
    :meth:`join` (its future gets ``(kind, value)``) the loop time its wait
    ends, else None (the future of :meth:`get`, which gets the item and has
    a timer of its own). Tasks that join share one timer, armed for the
    first of them: all wait the same pool_timeout, in the order they came.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._items: deque[_T] = deque()
        # The tasks in line (their futures and deadlines): its truth is read
        # by every statement outside a block, in C (see waiting()); changed
        # in place only.
        self.waiters: deque[tuple[asyncio.Future, Optional[float]]] = deque()
        self._timer: Optional[asyncio.TimerHandle] = None
        # The loop the timer runs on: a timer of a loop that ended never fires.
        self._timer_loop: Optional[asyncio.AbstractEventLoop] = None
        # The last loop whose futures and clock were found to be asyncio's
        # own (see join).
        self._plain_loop: Optional[asyncio.AbstractEventLoop] = None
        # The pool's max_overflow (-1: no limit) and pool_timeout, set by
        # FairAsyncQueuePool: read by every statement that waits in line,
        # without calls into the pool for each.
        self.max_overflow = -1
        self.timeout: Optional[float] = None
        # Idle connections vinyl keeps checked out for its next statements
        # (``(pooled, driver)`` pairs, see vinyl.engine.engines.keep_spare):
        # never while tasks wait (see get). The engine entry's own list, set
        # by it (engines.fair_queue_of), which reads it on every statement.
        self.spares: list[Any] = []
        # Called when the pool is invalidated (see FairAsyncQueuePool), set
        # with spares: the entry finds the connections that made stale.
        self.invalidated: Optional[Callable[[], None]] = None

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def waiting(self) -> int:
        """How many tasks wait for an item."""
        return len(self.waiters)

    def exhausted(self, pool: Any) -> bool:
        """Must a checkout from ``pool`` (whose queue this is) wait? The
        pool's limit and idle count are read here, not through calls into
        the pool; a spare counts as idle (a checkout takes it back)."""
        # (no_connection_left() written out: asked by every statement that
        # waits in line)
        if self._items or self.spares:
            return False
        limit = self.max_overflow
        return 0 <= limit <= pool.overflow()

    def put_nowait(self, item: _T) -> None:
        waiters = self.waiters
        while waiters:
            waiter, deadline = waiters.popleft()
            if not waiter.done():
                waiter.set_result(item if deadline is None else (ENTRY, item))
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
        while not self._items and self.spares:
            self.take_back_spare()
        if self._items or not block:
            return self.get_nowait()
        return _sa_await(self._wait(timeout))

    def next_item(self) -> Any:
        """The idle item a get takes next (None if none is idle)."""
        items = self._items
        if not items:
            return None
        return items[-1] if self.use_lifo else items[0]

    def stale_first(self, stale: Callable[[Any], bool]) -> None:
        """Put the idle items for which ``stale`` is true where a get takes
        them first, in their order (after a pool invalidation: the next
        checkouts reconnect them, see vinyl.engine.engines.quiet_pool)."""
        items = self._items
        marked = [(stale(item), item) for item in items]
        first = [item for is_stale, item in marked if is_stale]
        rest = [item for is_stale, item in marked if not is_stale]
        items.clear()
        items.extend(rest + first if self.use_lifo else first + rest)

    def take_back_spare(self) -> None:
        """Check the last spare connection in (see :attr:`spares`), for a
        checkout that finds no idle one: SQLAlchemy code sharing the pool,
        vinyl's checkouts through the greenlet, or the pool's dispose (which
        so closes every spare with the idle connections).

        The spare is idle and the queue empty: its checkin does no I/O
        (vinyl's reset listener only rolls back an open transaction) and the
        pool keeps it. (One that left a pool since replaced goes back to that
        pool, as any connection checked out across a dispose does.)
        """
        pooled = self.spares.pop()[0]
        pooled.close()

    def join(self, timeout: Optional[float], loop: Optional[asyncio.AbstractEventLoop] = None) -> asyncio.Future:
        """Wait in line: a future that gets ``(kind, value)`` (HANDED, ENTRY,
        FAILED, or TIMED_OUT after ``timeout`` seconds).

        ``loop``: the running loop, where the caller knows it (asking
        asyncio costs a getpid() system call per wait on Python 3.11). The
        caller awaits the future; cancelled while waiting, it calls
        :meth:`leave`, and passes on what it was given meanwhile.
        """
        if loop is None:
            loop = asyncio.get_running_loop()
        # (asyncio's own loop: its future and clock made here, without its
        # create_future() and time() methods, a Python call each per wait)
        plain = loop is self._plain_loop or self._found_plain(loop)
        waiter: asyncio.Future = asyncio.Future(loop=loop) if plain else loop.create_future()
        if timeout is None:
            self.waiters.append((waiter, math.inf))
            return waiter
        deadline = (monotonic() if plain else loop.time()) + timeout
        self.waiters.append((waiter, deadline))
        if self._timer is None or self._timer_loop is not loop:
            self._timer = loop.call_at(deadline, self._time_out)
            self._timer_loop = loop
        return waiter

    def _found_plain(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Are the futures and the clock of ``loop`` asyncio's own (a
        ``Future`` of the loop, ``time.monotonic()``)? Remembered if so."""
        kind: Any = type(loop)
        if kind.create_future is _BASE_LOOP.create_future and kind.time is _BASE_LOOP.time:
            self._plain_loop = loop
            return True
        return False

    def leave(self, waiter: asyncio.Future) -> None:
        """Take a waiter of :meth:`join` out of the line (if still in it)."""
        self._remove(waiter)

    def _remove(self, waiter: asyncio.Future) -> None:
        waiters = self.waiters
        for i, (queued, _deadline) in enumerate(waiters):
            if queued is waiter:
                del waiters[i]
                return

    def _time_out(self) -> None:
        """End the waits of the tasks that joined whose time is up; arm the
        timer for the next one."""
        self._timer = None
        loop = asyncio.get_running_loop()
        # A timer may run up to the clock's resolution early.
        now = loop.time() + 0.001
        kept: deque[tuple[asyncio.Future, Optional[float]]] = deque()
        first: Optional[float] = None
        for waiter, deadline in self.waiters:
            if waiter.done():
                continue
            if deadline is not None:
                if deadline <= now:
                    waiter.set_result((TIMED_OUT, None))
                    continue
                if deadline != math.inf and (first is None or deadline < first):
                    first = deadline
            kept.append((waiter, deadline))
        self.waiters.clear()
        self.waiters.extend(kept)
        if first is not None:
            self._timer = loop.call_at(first, self._time_out)

    def hand_over(self, connection: Any) -> bool:
        """Give a checked-out idle ``connection`` to the first waiting task,
        if that task waits through :meth:`join`; False otherwise (nobody
        waits, or the first in line waits for a pool entry: check the
        connection in, and it goes to that task)."""
        waiters = self.waiters
        while waiters:
            waiter, deadline = waiters[0]
            if waiter.done():  # cancelled, not yet out of line
                waiters.popleft()
                continue
            if deadline is None:
                return False
            waiters.popleft()
            waiter.set_result((HANDED, connection))
            return True
        return False

    def reinstate(self, item: _T) -> None:
        """Make ``item``, given to a waiter of :meth:`join`, the next one a
        get takes: that task checks it out at once, in the same step."""
        if self.use_lifo:
            self._items.append(item)
        else:
            self._items.appendleft(item)

    def fail_waiting(self, exc: BaseException) -> None:
        """End the wait of every task waiting through :meth:`join` with
        ``exc`` (another task's connect failed: the server is down)."""
        waiters = self.waiters
        if not waiters:
            return
        kept: deque[tuple[asyncio.Future, Optional[float]]] = deque()
        for waiter, deadline in waiters:
            if deadline is None:
                kept.append((waiter, deadline))
            elif not waiter.done():
                waiter.set_result((FAILED, exc))
        waiters.clear()
        waiters.extend(kept)

    async def _wait(self, timeout: Optional[float]) -> _T:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future = loop.create_future()
        self.waiters.append((waiter, None))
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
            if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
                self._remove(waiter)  # (handed an item: put_nowait took it out)


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(sa_queue.Empty())


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """``AsyncAdaptedQueuePool`` whose waiting tasks are served in order."""

    _queue_class = FairQueue  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        queue: FairQueue = pool_queue(self)
        queue.max_overflow = max_overflow(self)  # type: ignore[assignment]  # (an int on a QueuePool)
        queue.timeout = self.timeout()

    def _invalidate(self, connection: Any, exception: Optional[BaseException] = None, _checkin: bool = True) -> None:
        # Every connection opened before is stale now (see Pool._invalidate):
        # vinyl stops taking its spares without the pool's checkout at once,
        # whoever invalidated the pool (SQLAlchemy fires no event for it).
        super()._invalidate(connection, exception, _checkin)
        invalidated = pool_queue(self).invalidated
        if invalidated is not None:
            invalidated()


def fair_queue(pool: Any) -> Optional[FairQueue]:
    """The fair queue of ``pool``, or None (another pool class)."""
    queue = pool_queue(pool)
    return queue if isinstance(queue, FairQueue) else None
