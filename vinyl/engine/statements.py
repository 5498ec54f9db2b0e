"""Statements straight on the driver (cached plans): reads, writes, and
the pooled connections they run on outside a block.

Inside a block a statement runs on the block's connection, holding the
scope's lock, to its end even if its task is cancelled (other tasks share
the connection). Outside one it takes an idle pooled connection, without
I/O where the pool allows, and gives it back the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

from sqlalchemy.util import greenlet_spawn

from vinyl import _querylog
from vinyl._compat import quiet_checkout
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
    Held,
    check_in_spares,
    engine_entry,
    fair_queue_of,
    invalidate_pool,
    keep_spare,
    room_in_pool,
    take_idle,
)
from vinyl.engine.fairpool import HANDED
from vinyl.engine.savepoints import savepoint
from vinyl.engine.scope import Scope, State, _active, active_scope, refuse_if_broken
from vinyl.engine.shield import finish
from vinyl.engine.turns import leave_line, pooled_in_turn, turn_given

T = TypeVar("T")

_CLOSED, _INVALID = State.CLOSED, State.INVALID

# _querylog.observing() and active_scope(), written out where every statement
# outside a block asks (a call less each).
_recorders, _sql_debug, _DEBUG = _querylog._recorders, _querylog.logger.isEnabledFor, logging.DEBUG


def fetch(alias: str, sql: str, params: tuple, entry: EngineEntry | None = None) -> Awaitable[list]:
    """Run one read statement straight on the driver (see :func:`_fetch`).

    Outside a block, a read that hit a connection the server closed runs
    once more on a fresh one (inside one, an error is the block's).
    ``entry``: ``engine_entry(alias)`` where the caller has it at hand.
    """
    scope = _active.get().get(alias)
    if scope is not None:
        return _in_scope(alias, scope, sql, params, True, False)
    return _fetch_outside(alias, sql, params, entry)


async def _fetch_outside(alias: str, sql: str, params: tuple, entry: EngineEntry | None) -> list:
    """:func:`fetch` outside a block.

    The usual read (an idle connection at hand without I/O) runs here in
    one coroutine: the steps of :func:`_fetch_pooled` written out, in their
    order, without a coroutine for each (every layer costs its frame at the
    call and at each resumption).
    """
    if entry is None:
        entry = engine_entry(alias)
    try:
        held = take_idle(entry)
        if held is None:
            # pooled_in_turn()'s wait in line written out (a coroutine less
            # to create, and to resume at the hand-over, for each read that
            # waits for the pool).
            pool = entry.engine.sync_engine.pool
            queue = entry.queue if pool is entry.queue_pool else fair_queue_of(entry)
            if queue is None or not queue.exhausted(pool):
                held = await pooled_in_turn(alias, entry)
            else:
                waiter = queue.join(queue.timeout, entry.loop)
                try:
                    given = await waiter
                except asyncio.CancelledError:
                    leave_line(entry, queue, waiter)
                    raise
                held = given[1] if given[0] == HANDED else await turn_given(alias, entry, queue, given)
    except Exception as exc:
        if not await recover_from_disconnect(alias, exc):
            raise
        held = None
    if held is not None:
        config = entry.config
        pooled, driver = held
        started = time.perf_counter() if _recorders.get() or _sql_debug(_DEBUG) else None
        try:
            try:
                rows = await config.fetch(driver, sql, params)  # type: ignore[misc]
            except Exception as exc:
                note_lost_connection(entry, exc)
                _raise_as_django(config, exc)
                raise
            finally:
                if started is not None:
                    _querylog.record(alias, sql, params, started)
        except BaseException as exc:
            await _drop(entry, pooled, exc)
            if not isinstance(exc, Exception) or not await recover_from_disconnect(alias, exc):
                raise
        else:
            if not _give_back_now(entry, held):
                await finish(greenlet_spawn(pooled.close))
            return rows
    return await _fetch(alias, sql, params)  # once more, after a lost connection


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


def write(
    alias: str, sql: str, params: tuple, *, rows: bool | str = False, marks_block: bool = True, entry: EngineEntry | None = None
) -> Awaitable[Any]:
    """Run one write statement straight on the driver; ``NotImplemented`` if
    it cannot run there (the caller goes through the bridge instead).

    Outside a block it autocommits on a pooled connection, where the engine
    lets a statement commit by itself; inside a block it runs in the block's
    transaction, and an error marks the level for rollback, as Django's
    atomic does (unless ``marks_block`` is false: an operation Django runs
    unmarked); under a test's transaction it gets a savepoint. Never
    retried: a write may have reached the server. Returns the rows of a
    RETURNING statement (``rows``), else the number of rows matched; with
    ``rows="insert_id"``, an INSERT's new auto-increment key as that row.
    ``entry``: ``engine_entry(alias)`` where the caller has it at hand.
    """
    scope = _active.get().get(alias)
    if scope is None:
        if entry is None:
            entry = engine_entry(alias)
        if entry.autocommit_options is None:
            return _not_implemented()
        return _fetch_pooled(alias, entry, sql, params, rows)
    if scope.transparent:
        return _write_in_savepoint(alias, scope, sql, params, rows)
    return _in_scope(alias, scope, sql, params, rows, marks_block)


async def _not_implemented() -> Any:
    return NotImplemented


async def _write_in_savepoint(alias: str, scope: Scope, sql: str, params: tuple, rows: bool | str) -> Any:
    async with savepoint(scope, in_block=False):
        return await _fetch(alias, sql, params, rows)


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
        return _in_scope(alias, scope, sql, params, rows, False)
    return _fetch_pooled(alias, engine_entry(alias), sql, params, rows)


async def _fetch_pooled(alias: str, entry: EngineEntry, sql: str, params: tuple, rows: bool | str) -> Any:
    """:func:`_fetch` outside a block: on a pooled connection of ``entry``.

    The steps of :func:`_on_driver` and :func:`_give_back_now` are written out
    here, in their order (one coroutine, see :func:`_fetch_outside`).
    """
    held = take_idle(entry) or await pooled_in_turn(alias, entry)
    config = entry.config
    run = config.fetch if rows is True else config.execute if rows is False else config.insert_id
    pooled, driver = held
    started = time.perf_counter() if _recorders.get() or _sql_debug(_DEBUG) else None
    try:
        try:
            result = await run(driver, sql, params)  # type: ignore[misc]
        except Exception as exc:
            note_lost_connection(entry, exc)
            _raise_as_django(config, exc)
            raise
        finally:
            if started is not None:
                _querylog.record(alias, sql, params, started)
    except BaseException as exc:
        await _drop(entry, pooled, exc)
        raise
    if not _give_back_now(entry, held):
        await finish(greenlet_spawn(pooled.close))
    return result


async def _drop(entry: EngineEntry, pooled: Any, exc: BaseException) -> None:
    """Give back a pooled connection whose statement raised ``exc``."""
    if isinstance(exc, Exception) and not _driver_disconnect(entry, exc):
        await finish(greenlet_spawn(pooled.close))
    else:
        # Interrupted mid-statement, or the server closed the connection.
        await finish(greenlet_spawn(pooled.invalidate, exc if isinstance(exc, Exception) else None))
        if isinstance(exc, Exception):
            await finish(greenlet_spawn(pooled.close))


def _give_back_now(entry: EngineEntry, held: Held) -> bool:
    """Return a driver connection to the pool after a statement that
    succeeded, where that needs no I/O; False if it needs some (a
    transaction to roll back, or a full pool that closes an overflow
    connection: the caller closes it in the greenlet).

    On an engine vinyl built, a connection with no transaction open goes
    back without I/O (its reset only rolls back open transactions), and
    where checkouts need no I/O either it is kept checked out for the next
    statement (see keep_spare), unless tasks wait for one: then it goes to
    the first of them, still checked out (see turns.py).
    """
    if entry.quiet_checkin and entry.config.idle(held[1]):  # type: ignore[misc]
        pool = entry.engine.sync_engine.pool
        # (quiet_pool's usual answer; kept on the entry for vinyl's pool)
        if not entry.stale and (pool is entry.quiet_queue_pool or quiet_checkout(pool, entry.invalidated_at)):
            queue = entry.queue if pool is entry.queue_pool else fair_queue_of(entry)
            if queue is None or not queue.waiters:
                if entry.spare_check is None:
                    keep_spare(entry, held)
                else:  # (keep_spare() where its timer is armed: no call)
                    entry.spares.append(held)
                return True
            if queue.hand_over(held):
                return True
        if room_in_pool(entry):
            held[0].close()
            return True
    return False


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
        except asyncio.CancelledError as cancel:
            scope.note_failure_under_cancel(cancel)  # (as its error alone)
            raise


async def _in_scope(alias: str, scope: Scope, sql: str, params: tuple, rows: bool | str, marks_block: bool) -> Any:
    """A statement of a block, on its connection, holding its lock (the steps
    of :func:`_locked`, :func:`_driver_in_scope` and :func:`_on_driver`
    written out in one coroutine, see :func:`_fetch_outside`).

    Each step that talks to the server runs to its end (see ``finish``): the
    transaction's BEGIN, where it is still to send, and the statement. A
    write's error marks the level for rollback (``marks_block``), as Django's
    atomic does, even if its task was cancelled meanwhile; a write that ran
    whole, cancelled or not, does not.
    """
    try:
        # (check_open() and check_transaction(), called only where they may
        # refuse: every statement of a block passes here)
        if scope.state is _CLOSED or scope.root.state is _CLOSED:
            scope.check_open()
        if scope.needs_rollback:
            # (At once, without waiting for the connection, which a
            # sibling's nested block may hold for its whole life.)
            refuse_if_broken(scope)
        lock = scope.lock
        # (try_acquire() written out: a free lock is taken without a call,
        # nor a coroutine)
        if lock._held:
            await lock.acquire()
        else:
            lock._held = True
        try:
            root = scope.root
            if scope.state is _CLOSED or root.state is _CLOSED:
                scope.check_open()
            # Asked again holding the lock: a sibling task's write may have
            # failed while this statement waited for the connection.
            if scope.needs_rollback:
                refuse_if_broken(scope)
            entry = scope.entry
            # (the drivers the transaction check asked for, if it did: the
            # transaction has begun, and the statement runs on them)
            checked = None
            if root.state is _INVALID or entry.checks_transaction:
                checked = scope.check_transaction()
            try:
                config = entry.config
                run = config.fetch if rows is True else config.execute if rows is False else config.insert_id
                started = time.perf_counter() if _recorders.get() or _sql_debug(_DEBUG) else None
                try:
                    if checked is not None:
                        adapter, driver = checked
                    else:
                        if scope.begins_lazily and not scope.connection.sync_connection.in_transaction():  # type: ignore[union-attr]  # (unbegun())
                            # The block's first statement: its BEGIN and it
                            # run to their end together.
                            return await finish(_begin_and_run(scope, run, sql, params))
                        # (drivers() written out: its usual answer, the
                        # driver connections of the pooled connection the
                        # block's statements ran on so far)
                        pooled = root.known_pooled
                        adapter = pooled.dbapi_connection if pooled is not None else None
                        if adapter is not None and adapter is root.known_adapter:
                            driver = root.known_driver
                        else:
                            adapter, driver = scope.drivers()
                    start = config.start_transaction
                    if start is not None:
                        starting = start(adapter)
                        if starting is not None:
                            return await finish(_start_and_run(scope, starting, run, driver, sql, params))
                    return await finish(run(driver, sql, params))  # type: ignore[misc]
                except Exception as exc:
                    note_lost_connection(entry, exc)
                    _raise_as_django(config, exc)
                    raise
                except asyncio.CancelledError as cancel:
                    # The statement ran to its end: if it failed, the level
                    # is marked as its error alone marks it.
                    if scope.note_failure_under_cancel(cancel) and marks_block:
                        scope.needs_rollback = True
                    raise
                finally:
                    if started is not None:
                        _querylog.record(alias, sql, params, started)
            except Exception as exc:
                scope.note_error(exc)
                raise
        finally:
            # (release() written out where nobody waits and no level holds
            # the lock: its usual case)
            if lock._waiters or lock._holder is not None:
                lock.release()
            else:
                lock._held = False
    except Exception:
        # (Any error, as Django's atomic: a driver refusing a value before
        # sending it, e.g. SQLite's OverflowError, fails the write too.)
        if marks_block:
            scope.needs_rollback = True
        raise


async def _begin_and_run(scope: Scope, run: Any, sql: str, params: tuple) -> Any:
    """Begin the transaction of ``scope``, then ``run`` the statement on its driver connection."""
    return await run(await _driver_in_scope(scope), sql, params)


async def _start_and_run(scope: Scope, starting: Awaitable[None], run: Any, driver: Any, sql: str, params: tuple) -> Any:
    """Send the BEGIN the driver adapter of ``scope`` had pending, then ``run`` the statement."""
    await _started(scope, starting)
    return await run(driver, sql, params)


async def _driver_in_scope(scope: Scope) -> Any:
    """The driver connection of ``scope``, its transaction started."""
    if scope.unbegun():
        await scope.begin()
    adapter, driver = scope.drivers()
    start = scope.entry.config.start_transaction
    if start is not None:
        starting = start(adapter)
        if starting is not None:
            await _started(scope, starting)
    return driver


async def _started(scope: Scope, starting: Awaitable[None]) -> None:
    """Await the BEGIN the driver adapter of ``scope`` had pending."""
    try:
        await starting
    except Exception as exc:  # the BEGIN of a connection the server closed
        raise_as_django(scope.entry, exc)
        raise


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
