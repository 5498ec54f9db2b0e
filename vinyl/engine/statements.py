"""Statements straight on the driver (cached plans): reads, writes, and
the pooled connections they run on outside a block.

Inside a block a statement runs on the block's connection, holding the
scope's lock, to its end even if its task is cancelled (other tasks share
the connection). Outside one it takes an idle pooled connection, without
I/O where the pool allows, and gives it back the same way.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, TypeVar

from django.db import utils as django_db
from sqlalchemy.util import greenlet_spawn

from vinyl import _querylog
from vinyl.engine.disconnects import (
    _driver_disconnect,
    _lost_connection,
    _raise_as_django,
    note_lost_connection,
    raise_as_django,
)
from vinyl.engine.engines import (
    EngineConfig,
    EngineEntry,
    check_in_spares,
    engine_entry,
    invalidate_pool,
    keep_for_this_step,
    quiet_pool,
    room_in_pool,
    take_idle,
)
from vinyl.engine.fairpool import fair_queue
from vinyl.engine.savepoints import savepoint
from vinyl.engine.scope import Scope, active_scope
from vinyl.engine.shield import finish
from vinyl.engine.turns import pooled_in_turn

T = TypeVar("T")


async def fetch(alias: str, sql: str, params: tuple) -> list:
    """Run one read statement straight on the driver (see :func:`_fetch`).

    Outside a block, a read that hit a connection the server closed runs
    once more on a fresh one.
    """
    try:
        return await _fetch(alias, sql, params)
    except Exception as exc:
        if not await recover_from_disconnect(alias, exc):
            raise
    return await _fetch(alias, sql, params)


async def recover_from_disconnect(alias: str, exc: BaseException) -> bool:
    """After a lost connection outside a block, refresh the pool; True if so.

    A server restart or an idle timeout closes every pooled connection, not
    only the one that failed: every connection the pool opened so far is
    marked stale, so that a retried read, and the next statements, get live
    connections. The pool itself stays: idle connections are replaced when
    next checked out, those other tasks hold when they come back, and tasks
    waiting for a connection keep waiting on the same pool.
    """
    if active_scope(alias) is not None:
        return False
    entry = engine_entry(alias)
    if not _lost_connection(entry, exc):
        return False
    check_in_spares(entry)
    invalidate_pool(entry)
    return True


async def write(alias: str, sql: str, params: tuple, *, rows: bool | str = False) -> Any:
    """Run one write statement straight on the driver; ``NotImplemented`` if
    it cannot run there (the caller goes through the bridge instead).

    Outside a block it autocommits on a pooled connection, where the engine
    lets a statement commit by itself; inside a block it runs in the block's
    transaction, and an error marks the level for rollback, as Django's
    atomic does; under a test's transaction it gets a savepoint. Never
    retried: a write may have reached the server. Returns the rows of a
    RETURNING statement (``rows``), else the number of rows matched; with
    ``rows="insert_id"``, an INSERT's new auto-increment key as that row.
    """
    scope = active_scope(alias)
    if scope is None:
        entry = engine_entry(alias)
        if entry.autocommit_options is None:
            return NotImplemented
        return await _fetch_pooled(alias, entry, sql, params, rows)
    if scope.transparent:
        async with savepoint(scope, in_block=False):
            return await _fetch(alias, sql, params, rows)
    try:
        return await _fetch(alias, sql, params, rows)
    except django_db.DatabaseError:
        scope.needs_rollback = True
        raise


def _fetch(alias: str, sql: str, params: tuple, rows: bool | str = True) -> Awaitable[Any]:
    """Run one statement straight on the driver, outside the bridge.

    Inside a block (or a signal receiver's level) it runs on the block's
    connection, one statement at a time; otherwise on a pooled driver
    connection with no transaction begun (the pool's reset ends any the
    driver opened by itself). Returns the driver's rows, or with ``rows``
    false the number of rows the statement matched.
    """
    scope = active_scope(alias)
    if scope is not None:
        return _locked(scope, _run_in_scope, alias, scope, sql, params, rows)
    return _fetch_pooled(alias, engine_entry(alias), sql, params, rows)


async def _fetch_pooled(alias: str, entry: EngineEntry, sql: str, params: tuple, rows: bool | str) -> Any:
    """:func:`_fetch` outside a block: on a pooled connection of ``entry``."""
    pooled = take_idle(entry) or await pooled_in_turn(alias, entry)
    try:
        result = await _run_on_driver(alias, entry, pooled.driver_connection, sql, params, rows)
    except BaseException as exc:
        if isinstance(exc, Exception) and not _driver_disconnect(entry, exc):
            await finish(greenlet_spawn(pooled.close))
        else:
            # Interrupted mid-statement, or the server closed the connection.
            await finish(greenlet_spawn(pooled.invalidate, exc if isinstance(exc, Exception) else None))
            if isinstance(exc, Exception):
                await finish(greenlet_spawn(pooled.close))
        raise
    await _give_back(entry, pooled)
    return result


async def _give_back(entry: EngineEntry, pooled: Any) -> None:
    """Return a driver connection to the pool after a statement that succeeded.

    On an engine vinyl built, a connection with no transaction open goes
    back without I/O (its reset only rolls back open transactions), and
    where checkouts need no I/O either it is kept for the next statement of
    this loop step first (see keep_for_this_step), unless tasks wait for one:
    then it goes to the first of them, still checked out (see turns.py).
    """
    if entry.quiet_checkin and entry.config.idle(pooled.driver_connection):  # type: ignore[misc]
        if quiet_pool(entry):
            queue = fair_queue(entry.engine.sync_engine.pool)
            if queue is None or not queue.waiting():
                keep_for_this_step(entry, pooled)
                return
            if queue.hand_over(pooled):
                return
        if room_in_pool(entry):
            pooled.close()
            return
    # A transaction to roll back, or a full pool that closes an overflow
    # connection: I/O, in the greenlet.
    await finish(greenlet_spawn(pooled.close))


async def _locked(scope: Scope, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Await ``fn(*args)`` on the connection of ``scope``, holding its lock.

    Tasks share this connection: a statement cut short by a cancellation
    would leave it mid-statement, so the statement runs to its end first.
    """
    scope.check_open()
    async with scope.lock:
        scope.check_open()
        scope.check_transaction()
        try:
            return await finish(fn(*args))
        except Exception as exc:
            scope.note_error(exc)
            raise


async def _driver_in_scope(scope: Scope) -> Any:
    """The driver connection of ``scope``, its transaction started."""
    if scope.unbegun():
        await scope.begin()
    start = scope.entry.config.start_transaction
    if start is not None:
        try:
            await start(scope.dbapi_connection())
        except Exception as exc:  # the BEGIN of a connection the server closed
            raise_as_django(scope.entry, exc)
            raise
    return scope.connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]


async def _run_in_scope(alias: str, scope: Scope, sql: str, params: tuple, rows: bool | str) -> Any:
    driver = await _driver_in_scope(scope)
    return await _run_on_driver(alias, scope.entry, driver, sql, params, rows)


def _run_on_driver(alias: str, entry: EngineEntry, driver: Any, sql: str, params: tuple, rows: bool | str) -> Awaitable[Any]:
    config = entry.config
    run = config.fetch if rows is True else config.execute if rows is False else config.insert_id
    return _on_driver(alias, config, run(driver, sql, params), sql, params)  # type: ignore[misc]


async def _on_driver(alias: str, config: EngineConfig, call: Awaitable[T], sql: str, params: tuple) -> T:
    """Await a driver call for ``sql``: its errors raised as Django's, the
    statement logged on vinyl.sql and recorded by capture_queries like the
    bridge's."""
    started = time.perf_counter() if _querylog.observing() else None
    try:
        return await call
    except Exception as exc:
        note_lost_connection(engine_entry(alias), exc)
        _raise_as_django(config, exc)
        raise
    finally:
        if started is not None:
            _querylog.record(alias, sql, params, started)
