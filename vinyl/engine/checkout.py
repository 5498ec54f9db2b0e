"""Checkout and release: a pooled connection for a transaction scope, and
the ways it goes back (commit, rollback, discard).

A task that has to wait for a connection stops waiting when another
task's connect fails (server down: fail fast with the connect error).
A connection whose state is unknown (interrupted mid-statement, lost) is
discarded, never given back to the pool.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from django.db import utils as django_db
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio.engine import AsyncConnection
from sqlalchemy.util import greenlet_spawn

from vinyl._compat import max_overflow
from vinyl.engine.callbacks import run_callbacks, take_callbacks
from vinyl.engine.disconnects import is_disconnect, raise_as_django
from vinyl.engine.engines import (
    EngineEntry,
    engine_entry,
    ensure_facts,
    fair_queue_of,
    held_pair,
    keep_block_connection,
    kept_connection,
    room_in_pool,
    take_idle_pooled,
)
from vinyl.engine.fairpool import fair_queue, no_connection_left
from vinyl.engine.savepoints import savepoint
from vinyl.engine.scope import Scope, active_scope
from vinyl.engine.shield import finish
from vinyl.exceptions import connection_error, pool_exhausted

T = TypeVar("T")

logger = logging.getLogger("vinyl.transaction")


async def checkout(alias: str, *, in_block: bool = False, transactional: bool = True) -> Scope:
    """Check a connection out of the pool of ``alias`` for a transaction.

    The transaction is begun lazily, right before its first statement (see
    :meth:`Scope.begin`): a block that runs none sends neither BEGIN nor
    COMMIT. Without ``transactional`` no transaction begins: the connection
    is for statements that each commit on their own, in autocommit where
    switching to it costs no round trip. Waits up to the pool's
    ``pool_timeout`` for a free connection, then raises
    :class:`vinyl.exceptions.PoolExhausted`.
    """
    entry = engine_entry(alias)
    # (A spare at hand: no wait is due, see FairQueue.exhausted.)
    if entry.facts is not None and (entry.spares or not _must_wait(entry)):
        options = None if transactional else entry.autocommit_options
        conn = None if options else _connect_quietly(entry)
        if conn is None:
            conn = await _connect(alias, entry, options)
        return Scope(alias, conn, entry, in_block=in_block, transactional=transactional)
    conn = await _pooled(alias, entry, entry.engine.connect)
    try:
        if entry.facts is None:
            await ensure_facts(entry, conn)
            if conn.in_transaction():
                # The facts were read in a transaction of their own: end it
                # before the operation's statements run.
                await conn.rollback()
        if not transactional and entry.autocommit_options:
            conn = await conn.execution_options(**entry.autocommit_options)
    except BaseException as exc:
        await discard(conn)
        raise_as_django(entry, exc)
        raise
    return Scope(alias, conn, entry, in_block=in_block, transactional=transactional)


def _connect_quietly(entry: EngineEntry) -> AsyncConnection | None:
    """A connection from an idle pooled one, without I/O (so without the
    greenlet), or None where checking one out may talk to the server."""
    pooled = take_idle_pooled(entry)
    if pooled is None:
        return None
    return kept_connection(entry, pooled) or AsyncConnection(entry.engine, Connection(entry.engine.sync_engine, pooled))


async def _connect(alias: str, entry: EngineEntry, options: dict | None) -> AsyncConnection:
    """:func:`checkout` when no wait for the pool is due and the engine's
    facts are known: the pool checkout (and the switch to autocommit) in one
    trip through the greenlet, in the caller's task. A failure after the
    checkout (a cancellation included) discards the connection and raises as
    Django's error, as a connect failure does not.

    (A checkout that may wait for the pool takes the other path: there the
    connection is awaited in a task of its own, which a cancellation of the
    caller cancels.)
    """
    sync_connection, failure = await _pooled(
        alias, entry, lambda: greenlet_spawn(_checkout_sync, entry.engine.sync_engine, options)
    )
    conn = AsyncConnection(entry.engine, sync_connection)
    if failure is not None:
        await discard(conn)
        raise_as_django(entry, failure)
        raise failure
    return conn


def _checkout_sync(sync_engine: Any, options: dict | None) -> tuple[Any, BaseException | None]:
    # In the greenlet: a connect error propagates (the pool's errors); what
    # fails after it (a cancellation included) is handed back with the
    # connection, which the caller discards.
    connection = sync_engine.connect()
    try:
        if options:
            connection.execution_options(**options)
    except BaseException as exc:
        return connection, exc
    return connection, None


async def _pooled(alias: str, entry: EngineEntry, acquire: Callable[[], Awaitable[T]]) -> T:
    """Get a connection from the pool of ``alias``, errors named for the alias.

    A task that has to wait for a connection (none idle, no overflow left)
    stops waiting when another task's connect fails: with the server down,
    every operation fails at once with the connect error instead of waiting
    for a connection that will never come back (``pool_timeout``).
    """
    try:
        if _must_wait(entry):
            return await _wait_for_connection(alias, entry, acquire)
        return await acquire()
    except sa_exc.TimeoutError as exc:
        raise pool_exhausted(alias, entry.engine) from exc
    except Exception as exc:
        if isinstance(exc, django_db.OperationalError):
            raise
        _connect_failed(entry, exc)
        raise connection_error(alias, entry, exc) from exc


def _must_wait(entry: EngineEntry) -> bool:
    """Must a checkout wait for a connection to come back to the pool?"""
    pool: Any = entry.engine.sync_engine.pool
    queue = fair_queue_of(entry)
    if queue is not None:
        return queue.exhausted(pool)
    limit = max_overflow(pool)  # a QueuePool of the application's choice, or None: another pool class
    return limit is not None and no_connection_left(pool.checkedin(), pool.overflow(), limit)


def _connect_failed(entry: EngineEntry, exc: Exception) -> None:
    """Tell the tasks waiting for a connection that connecting failed."""
    failure = entry.connect_failure
    entry.connect_failure = None
    if failure is not None and not failure.done():
        failure.set_result(exc)
    queue = fair_queue(entry.engine.sync_engine.pool)
    if queue is not None:
        queue.fail_waiting(exc)  # the statements waiting in line (turns.py)


async def _wait_for_connection(alias: str, entry: EngineEntry, acquire: Callable[[], Awaitable[T]]) -> T:
    loop = asyncio.get_running_loop()
    failure = entry.connect_failure
    if failure is None or failure.done():
        failure = entry.connect_failure = loop.create_future()
    waiting = loop.create_task(_acquired(acquire))
    try:
        await asyncio.wait((waiting, failure), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled while waiting
        arrived = await _stop_waiting(waiting)
        if arrived is not None:
            await finish(_close_acquired(arrived))
        raise
    if waiting.done():
        return waiting.result()
    arrived = await _stop_waiting(waiting)
    if arrived is not None:
        return arrived  # it came at the same moment
    exc = failure.result()
    raise connection_error(alias, entry, exc) from exc


async def _acquired(acquire: Callable[[], Awaitable[T]]) -> T:
    return await acquire()  # engine.connect() gives an awaitable, not a coroutine


async def _stop_waiting(waiting: asyncio.Task) -> Any:
    """Cancel a wait for a pooled connection and return the connection if
    it arrived anyway (None otherwise). A cancellation of the caller meanwhile
    gives such a connection back to the pool before it propagates."""
    waiting.cancel()
    arrived: list = []
    try:
        await finish(_collect(waiting, arrived))
    except BaseException:
        if arrived:
            await finish(_close_acquired(arrived[0]))
        raise
    return arrived[0] if arrived else None


async def _collect(waiting: asyncio.Task, arrived: list) -> None:
    try:
        arrived.append(await waiting)
    except BaseException:  # cancelled as asked, or the checkout failed
        return


async def _close_acquired(connection: Any) -> None:
    if isinstance(connection, AsyncConnection):
        await connection.close()
    else:
        await greenlet_spawn(connection.close)


async def discard(conn: AsyncConnection) -> None:
    """Close ``conn`` without giving it back to the pool as a clean one.

    A connection interrupted mid-statement may be in any state: it is
    invalidated (the server rolls its transaction back) and the pool opens
    a new one when needed.
    """
    try:
        await finish(_invalidate_and_close(conn))
    except asyncio.CancelledError:
        raise
    except Exception:  # pragma: no cover - the connection is gone anyway
        pass


async def _invalidate_and_close(conn: AsyncConnection) -> None:
    try:
        await conn.invalidate()
    except Exception:  # pragma: no cover - already unusable
        pass
    finally:
        await conn.close()


async def release(scope: Scope, *, commit: bool) -> None:
    """End the transaction of a root scope vinyl owns and return its connection.

    A failed commit raises Django's error (a deferred constraint checked at
    commit is an ``IntegrityError``); a failed rollback only discards the
    connection, since the server rolls back a connection that goes away.
    An invalid scope (see ``State.INVALID``) is never given back: it is
    discarded, and a commit of it raises.
    """
    conn = scope.connection
    if scope.invalid:
        failure = None
        if commit:
            try:
                scope.check_transaction()
            except Exception as exc:  # always: the scope is invalid
                failure = exc
        scope.close()
        await discard(conn)
        if failure is not None:
            raise failure
        return
    scope.close()
    if not scope.transactional:
        # Statements committed on their own; the pool's reset ends anything
        # a driver left open.
        await conn.close()
        return
    sync_connection: Any = conn.sync_connection
    if not sync_connection.in_transaction():
        # No statement ran: no transaction was begun, none to end; kept as
        # a spare, or given back, without I/O (so without the greenlet, or
        # a coroutine) where the pool takes it back quietly.
        if not _given_back_quietly(scope, conn):
            await conn.close()
        return
    ended: list[bool] = []
    try:
        if commit:
            scope.check_transaction()
        await greenlet_spawn(_end_sync, scope, commit, ended)
    except BaseException as exc:
        if ended:
            raise  # the transaction ended; giving the connection back failed
        await discard(conn)
        if commit:
            raise_as_django(scope.entry, exc)
        if commit or not isinstance(exc, Exception):
            raise
        logger.info("vinyl: a rollback failed, the connection was discarded: %r", exc)


def _end_sync(scope: Scope, commit: bool, ended: list[bool]) -> None:
    # In the greenlet: COMMIT (or ROLLBACK), then kept as a spare or back to
    # the pool, in one trip.
    conn = scope.connection
    connection: Any = conn.sync_connection
    if commit:
        connection.commit()
    else:
        connection.rollback()
    ended.append(True)
    if not _given_back_quietly(scope, conn):
        connection.close()


def _given_back_quietly(scope: Scope, conn: AsyncConnection) -> bool:
    """Keep the idle connection of a transaction that ended (or never
    began) as a spare, with its SQLAlchemy connection (see
    keep_block_connection), or check it in where that needs no I/O; False
    if neither (the caller closes it, with I/O where needed)."""
    entry = scope.entry
    sync_connection: Any = conn.sync_connection
    if not entry.quiet_checkin or sync_connection.invalidated:
        return False  # (an invalidated one's pooled connection would reconnect)
    pooled = sync_connection.connection
    held = held_pair(pooled)
    if not entry.config.idle(held[1]):  # type: ignore[misc]
        return False
    if not room_in_pool(entry):
        return False  # (a full pool closes it: not kept either, as before blocks kept any)
    if not (scope.transactional and keep_block_connection(entry, conn, held)):
        sync_connection.close()
    return True


async def end_interrupted(scope: Scope, exc: BaseException, *, lost: bool) -> None:
    """End a root scope vinyl owns that ``exc`` interrupted.

    After an error its statements are done (or a stream was closed early,
    GeneratorExit): roll back and give the connection back. Cancelled at an
    arbitrary point, or ``lost`` (the server closed it), the connection may
    be mid-statement: it is discarded, never given back to the pool.
    """
    if isinstance(exc, GeneratorExit) or (isinstance(exc, Exception) and not lost):
        await release(scope, commit=False)
        return
    scope.invalidate()
    scope.close()
    await discard(scope.connection)


@asynccontextmanager
async def operation(
    alias: str, *, isolate: bool = True, readonly: bool = False, single_write: bool = False
) -> AsyncIterator[Scope]:
    """Give the scope one vinyl operation runs in.

    Inside an ``atomic`` / ``use_connection`` block this is the block's scope.
    Otherwise a pooled connection is checked out for the operation alone and
    its transaction commits when the operation succeeds, so a multi-statement
    operation is all-or-nothing and each operation commits on its own.
    Under a transparent root (a test's transaction) the operation gets a
    savepoint instead, unless ``isolate`` is false (a read that streams).
    A ``readonly`` operation outside a block runs without a transaction, and
    so does a ``single_write`` (one write statement) where the driver
    autocommits it by itself.
    """
    scope = active_scope(alias)
    if scope is not None:
        scope.check_open()
        if scope.transparent and isolate:
            async with savepoint(scope, in_block=False) as level:
                yield level
            return
        yield scope
        return
    if single_write and not readonly:
        readonly = engine_entry(alias).autocommit_options is not None
    scope = await checkout(alias, transactional=not readonly)
    try:
        yield scope
    except BaseException as exc:
        await end_interrupted(scope, exc, lost=is_disconnect(scope, exc))
        raise
    else:
        committed = not scope.needs_rollback
        await release(scope, commit=committed)
        if committed:
            pending = take_callbacks(scope)
            if pending:
                await run_callbacks(pending)
