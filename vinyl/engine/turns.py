"""A pooled connection for one statement outside a block, served in turn.

When the pool is at its limit, a statement waits in the pool's line
(vinyl.engine.fairpool) in its own task: no task, greenlet or
``asyncio.wait`` of its own. The task that finishes a statement ahead of
it hands its connection over still checked out (statements._give_back_now), so a
handoff costs one wake-up of the waiting task and no checkin, reset or
checkout. A waiting task gets up to ``pool_timeout`` (then
``PoolExhausted``), and stops waiting when another task's connect fails.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import exc as sa_exc

from vinyl.engine.checkout import _must_wait, _pooled
from vinyl.engine.engines import EngineEntry, close_later, quiet_pool, room_in_pool
from vinyl.engine.fairpool import ENTRY, FAILED, HANDED, FairQueue, fair_queue
from vinyl.exceptions import connection_error, pool_exhausted


async def pooled_in_turn(alias: str, entry: EngineEntry) -> Any:
    """A connection checked out of the pool of ``entry`` for one statement,
    waiting in line behind the tasks that asked first if none is free."""
    pool: Any = entry.engine.sync_engine.pool
    queue = fair_queue(pool)
    if queue is None or not _must_wait(entry):
        return await _pooled(alias, entry, entry.engine.raw_connection)
    waiter = queue.join(pool.timeout())
    try:
        kind, value = await waiter
    except asyncio.CancelledError:
        if waiter.done() and not waiter.cancelled():
            _pass_on(entry, queue, waiter.result())
        else:
            queue.leave(waiter)
        raise
    if kind == HANDED:
        return value
    if kind == ENTRY:
        # The pool entry is this task's: check it out now, before any other
        # task runs (the greenlet path too runs the pool's get at once).
        queue.reinstate(value)
        if quiet_pool(entry):
            try:
                return entry.engine.sync_engine.raw_connection()
            except sa_exc.MissingGreenlet:
                entry.quiet_checkin = False  # as engines.take_idle
        return await _pooled(alias, entry, entry.engine.raw_connection)
    if kind == FAILED:
        raise connection_error(alias, entry, value) from value
    raise pool_exhausted(alias, entry.engine) from sa_exc.TimeoutError(
        f"no connection came back within pool_timeout={pool.timeout()}s"
    )


def _pass_on(entry: EngineEntry, queue: FairQueue, given: tuple[int, Any]) -> None:
    """Give what a task cancelled in line was handed to the next in line."""
    kind, value = given
    if kind == ENTRY:
        queue.put_nowait(value)
    elif kind == HANDED:
        if quiet_pool(entry) and queue.hand_over(value):
            return
        if entry.quiet_checkin and entry.config.idle(value.driver_connection) and room_in_pool(entry):  # type: ignore[misc]
            value.close()  # idle: the quiet checkin does no I/O
        else:
            close_later(value)
