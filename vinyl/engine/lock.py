"""The lock a transaction level's statements hold, one at a time.

Every statement of a block takes it: :meth:`StatementLock.try_acquire`
takes a free lock without a coroutine (``asyncio.Lock.acquire`` is one to
create and run even when the lock is free). Waiters are served first come,
first served; a release hands the lock straight to the first waiter still
waiting, so no task can take it in between.

A level inside a transaction (a nested ``atomic`` block) holds its parent's
lock for its whole life and names its task with :meth:`StatementLock.hold_for`.
A task waiting for the lock while that task awaits it (directly, or through
other tasks, ``gather``, ``wait_for``, ``shield``, ``asyncio.wait`` or
``as_completed`` without a timeout, of tasks or of a ``gather``, and a
``TaskGroup``'s exit) would wait forever. A ``gather`` without
``return_exceptions`` and a group's exit end at their first failed task,
``asyncio.wait`` with ``FIRST_COMPLETED``/``FIRST_EXCEPTION`` and
``as_completed`` at the first task to end, so a wait on them is stuck only
when every unfinished one is. While such a
level holds the lock and tasks wait for it, the lock looks for that cycle
every :data:`CYCLE_CHECK_S` seconds and fails the wait of each task in it
with Django's ``TransactionManagementError``, which the level's task then
gets from its await. A lock no level holds, or that nobody waits for, sets
no timer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from django.db.transaction import TransactionManagementError

from vinyl._compat import Waits, awaited, ended_by

#: How often (seconds) a lock a level holds looks for a waiter that level awaits.
CYCLE_CHECK_S = 0.1
#: How many futures the search visits at most (chains of awaits are short).
CYCLE_SEARCH_LIMIT = 1000


class StatementLock:
    """A first-come, first-served lock of one event loop (``asyncio.Lock``'s
    API: ``async with``, ``acquire``, ``release``, ``locked``)."""

    __slots__ = ("_held", "_waiters", "_holder", "_watch")

    def __init__(self) -> None:
        self._held = False
        # Futures of the tasks waiting, in order; one set to a result was
        # handed the lock.
        self._waiters: deque[asyncio.Future[None]] | None = None
        # The task of the level holding the lock until it ends (hold_for),
        # and the timer looking for a waiter it awaits (see _check_cycle).
        self._holder: asyncio.Task | None = None
        self._watch: asyncio.TimerHandle | None = None

    def hold_for(self, task: asyncio.Task | None) -> None:
        """The lock, just taken, stays held for the life of a level of ``task``."""
        self._holder = task
        if self._waiters and task is not None:
            self._arm()

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
        if self._holder is not None and self._watch is None:
            self._arm()
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
        return True

    def release(self) -> None:
        """Hand the lock to the first task still waiting, else free it."""
        if not self._held:
            raise RuntimeError("Lock is not acquired.")
        if self._holder is not None:
            self._holder = None
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # still held: it is the waiter's now
                return
        self._held = False

    def _arm(self) -> None:
        self._watch = asyncio.get_running_loop().call_later(CYCLE_CHECK_S, self._check_cycle)

    def _check_cycle(self) -> None:
        """Fail the wait of each task the holding level's task awaits."""
        self._watch = None
        holder, waiters = self._holder, self._waiters
        if holder is None or not waiters:
            return
        stuck = _stuck(holder, waiters)
        for waiter in waiters:
            task = stuck.get(id(waiter))
            if task is not None and not waiter.done():
                waiter.set_exception(TransactionManagementError(
                    f"task {task.get_name()} waits for a transaction level that a nested atomic block of task "
                    f"{holder.get_name()} holds until the block ends, and that task awaits it: neither could go "
                    f"on. Start that work inside the nested block, or await it before entering the block."
                ))
        if any(not waiter.done() for waiter in waiters):
            self._arm()

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


def _stuck(holder: asyncio.Task, waiters: Iterable[asyncio.Future]) -> dict[int, Any]:
    """The ``waiters`` (by id) whose wait ends only when ``holder``'s does,
    while ``holder`` waits for them to end, each mapped to the task waiting
    on it; {} when something else may still end ``holder``'s wait.

    From ``holder``, what each task or future waits on is read (through
    tasks, gathers, the futures of asyncio.wait, wait_for, shield,
    as_completed and a TaskGroup's exit): all of it, or any of it (a gather
    without return_exceptions and a group's exit end at their first failed
    task, asyncio.wait FIRST_COMPLETED/FIRST_EXCEPTION and as_completed at
    the first to end). What may end is then worked out from what surely
    may: a running,
    finished or sleeping task, a future nothing known resolves, one past the
    search's limit. A waiter of this lock ends when ``holder`` does; what
    that leaves stuck is the deadlock, and its waiters are the ones to fail.
    """
    ours = {id(waiter) for waiter in waiters if not waiter.done()}
    seen: dict[int, Any] = {id(holder): holder}
    # What each node read waits on (ids, once each), and the any-of ones.
    waits_on: dict[int, list[int]] = {}
    any_of: set[int] = set()
    pending: list[Any] = [holder]
    # The futures that only tasks' ends resolve, read from every task's
    # done-callbacks the first time the search reaches such a future (about
    # a microsecond a task, in a search that runs only while a task waits
    # for a level a nested block holds).
    ends: dict[int, Waits] | None = None
    while pending and len(waits_on) < CYCLE_SEARCH_LIMIT:
        node = pending.pop()
        found: Iterable[Any]
        if id(node) in ours:
            found = (holder,)  # the lock is handed on when the holder's level ends
        elif node.done():
            found = ()
        else:
            waits = awaited(node)
            if waits is None:
                if ends is None:
                    ends = ended_by(asyncio.all_tasks(holder.get_loop()))
                waits = ends.get(id(node))
            found = waits.futures if waits is not None else ()
            if waits is not None and waits.any_of:
                any_of.add(id(node))
        waits_on[id(node)] = list(dict.fromkeys(id(f) for f in found))
        for future in found:
            if id(future) not in seen:
                seen[id(future)] = future
                pending.append(future)
    # What may end: leaves and what was not read, then each node all (or,
    # any-of, one) of whose awaited may.
    may_end: set[int] = set()
    needs: dict[int, int] = {}
    waited_by: dict[int, list[int]] = {}
    ready: list[int] = []
    for key in seen:
        ids = waits_on.get(key, [])
        if not ids:
            may_end.add(key)
            ready.append(key)
            continue
        needs[key] = 1 if key in any_of else len(ids)
        for waited in ids:
            waited_by.setdefault(waited, []).append(key)
    while ready:
        for key in waited_by.get(ready.pop(), ()):
            if key not in may_end:
                needs[key] -= 1
                if not needs[key]:
                    may_end.add(key)
                    ready.append(key)
    if id(holder) in may_end:
        return {}
    # The waiters the stuck nodes reach, through stuck nodes only.
    stuck: dict[int, Any] = {}
    visited = {id(holder)}
    pending = [holder]
    while pending:
        node = pending.pop()
        for key in waits_on.get(id(node), ()):
            if key in may_end or key in visited:
                continue
            visited.add(key)
            if key in ours:
                stuck[key] = node
            pending.append(seen[key])
    return stuck
