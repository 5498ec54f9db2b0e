"""A pooled connection for one statement outside a block, served in turn.

When the pool is at its limit, a statement waits in the pool's line
(vinyl.engine.fairpool) in its own task: no task, greenlet or
``asyncio.wait`` of its own. The task that finishes a statement ahead of
it hands its connection over still checked out (statements._give_back_now), so a
handoff costs one wake-up of the waiting task and no checkin, reset or
checkout; the connection comes with its driver connection (a ``Held``
pair), resolved once when it left the pool. A task that finds others in
line joins them without trying the pool (engines.take_idle). A waiting task
gets up to ``pool_timeout`` (then ``PoolExhausted``), and stops waiting when
another task's connect fails.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import exc as sa_exc

from vinyl.engine.checkout import _pooled
from vinyl.engine.engines import EngineEntry, Held, close_later, fair_queue_of, fresh_next, held_pair, quiet_pool, room_in_pool
from vinyl.engine.fairpool import ENTRY, FAILED, HANDED, FairQueue
from vinyl.exceptions import connection_error, pool_exhausted


async def pooled_in_turn(alias: str, entry: EngineEntry) -> Held:
    """A connection checked out of the pool of ``entry`` for one statement,
    with its driver connection, waiting in line behind the tasks that asked
    first if none is free."""
    pool: Any = entry.engine.sync_engine.pool
    queue = entry.queue if pool is entry.queue_pool else fair_queue_of(entry)
    if queue is None or not queue.exhausted(pool):
        return held_pair(await _pooled(alias, entry, entry.engine.raw_connection))
    # (entry.loop: the running loop, whose engine_entry() this is)
    waiter = queue.join(queue.timeout, entry.loop)
    try:
        given = await waiter
    except asyncio.CancelledError:
        leave_line(entry, queue, waiter)
        raise
    if given[0] == HANDED:
        return given[1]
    return await turn_given(alias, entry, queue, given)


def leave_line(entry: EngineEntry, queue: FairQueue, waiter: asyncio.Future) -> None:
    """Take the waiter of a task cancelled in the line of ``queue`` out of
    it, passing on to the next in line what it was given meanwhile."""
    if waiter.done() and not waiter.cancelled():
        _pass_on(entry, queue, waiter.result())
    else:
        queue.leave(waiter)


async def turn_given(alias: str, entry: EngineEntry, queue: FairQueue, given: tuple[int, Any]) -> Held:
    """What a task's wait in the line of ``queue`` ended with, other than a
    connection handed over: a pool entry to check out, or an error."""
    kind, value = given
    if kind == HANDED:
        return value
    if kind == ENTRY:
        # The pool entry is this task's: check it out now, before any other
        # task runs (the greenlet path too runs the pool's get at once).
        queue.reinstate(value)
        if quiet_pool(entry) and fresh_next(entry, queue):
            try:
                return held_pair(entry.engine.sync_engine.raw_connection())
            except sa_exc.MissingGreenlet:
                entry.quiet_checkin = False  # as engines.take_idle
        return held_pair(await _pooled(alias, entry, entry.engine.raw_connection))
    if kind == FAILED:
        raise connection_error(alias, entry, value) from value
    raise pool_exhausted(alias, entry.engine) from sa_exc.TimeoutError(
        f"no connection came back within pool_timeout={queue.timeout}s"
    )


def _pass_on(entry: EngineEntry, queue: FairQueue, given: tuple[int, Any]) -> None:
    """Give what a task cancelled in line was handed to the next in line."""
    kind, value = given
    if kind == ENTRY:
        queue.put_nowait(value)
    elif kind == HANDED:  # value: a Held pair
        if quiet_pool(entry) and queue.hand_over(value):
            return
        pooled, driver = value
        if entry.quiet_checkin and entry.config.idle(driver) and room_in_pool(entry):  # type: ignore[misc]
            pooled.close()  # idle: the quiet checkin does no I/O
        else:
            close_later(pooled)
