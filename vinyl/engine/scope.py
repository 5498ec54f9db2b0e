"""The connection a task's statements run on, and the bridge to sync code.

A :class:`Scope` is one level of a transaction on one SQLAlchemy
``AsyncConnection``:

- a *root* scope is the whole transaction: the one of a single operation
  (outside any block, see :func:`operation`), or the one of an ``atomic`` /
  ``use_connection`` block, shared by every task started inside the block;
- a *child* scope is a level inside it: a savepoint (a nested ``atomic``
  block) or the coroutines that sync code in the bridge awaits (signal
  receivers, see :func:`joined`).

Statements run one at a time per connection. Each scope has a lock; a
statement holds the lock of its scope, and a child holds its parent's lock
for its whole life. So while a task is inside a savepoint block, sibling
tasks that use the enclosing level wait until the block ends: their writes
can never land inside a savepoint that another task rolls back, and two
siblings never open interleaved savepoints. (Consequence: inside a nested
block, do not await a sibling task that uses the enclosing level; start the
work inside the nested block instead.)

Two context variables say which scope is in force:

- ``_active`` maps an alias to the scope of the enclosing ``async with``
  block (``atomic``, ``use_connection``); child tasks inherit it.
- ``_bound`` maps an alias to the scope whose connection the sync code that
  runs inside :meth:`Scope.run_sync` must use. It is set only for the
  duration of one ``run_sync`` call, so it never leaks across an ``await``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from django.db import utils as django_db
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import greenlet_spawn

from vinyl import _querylog
from vinyl.engine.shield import finish
from vinyl.engine.engines import (
    DriverCursor,
    EngineConfig,
    EngineEntry,
    check_in_spares,
    checkout_needs_no_io,
    invalidate_pool,
    room_in_pool,
    keep_for_this_step,
    quiet_pool,
    take_spare,
    engine_entry,
    ensure_facts,
)
from vinyl.exceptions import (
    MYSQL_CONNECTION_CODES,
    TransactionScopeEnded,
    connection_error,
    django_error,
    pool_exhausted,
    server_ended_transaction,
)

try:  # SQLAlchemy 2.1
    from sqlalchemy.util.concurrency import in_greenlet as _in_greenlet
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    from sqlalchemy.util._concurrency_py3k import in_greenlet as _in_greenlet

T = TypeVar("T")

logger = logging.getLogger("vinyl.transaction")

_active: ContextVar[dict[str, "Scope"]] = ContextVar("vinyl_active_scopes", default={})
_bound: ContextVar[dict[str, "Scope"]] = ContextVar("vinyl_bound_scopes", default={})


class Scope:
    """One level of a transaction on one connection.

    Use :func:`operation` to get the scope a statement runs in; the
    ``atomic`` and ``use_connection`` blocks of ``vinyl.transaction`` make
    the others.
    """

    __slots__ = (
        "alias",
        "connection",
        "entry",
        "lock",
        "parent",
        "root",
        "connection_state",
        "attachments",
        "ended",
        "owned",
        "in_block",
        "transparent",
        "needs_rollback",
        "bridge_task",
        "transactional",
        "lost_transaction",
    )

    def __init__(
        self,
        alias: str,
        connection: AsyncConnection,
        entry: EngineEntry,
        *,
        owned: bool = True,
        in_block: bool = False,
        transparent: bool = False,
        parent: Scope | None = None,
        transactional: bool = True,
    ) -> None:
        self.alias = alias
        self.connection = connection
        self.entry = entry
        self.lock = asyncio.Lock()
        self.parent = parent
        self.root: Scope = parent.root if parent is not None else self
        # State of the connection that upper layers keep here (the Django
        # wrapper's flags); shared by every level of the transaction.
        self.connection_state: dict[str, Any] = (
            parent.connection_state if parent is not None else {}
        )
        # State of this level only (on_commit callbacks of a savepoint).
        self.attachments: dict[str, Any] = {}
        self.ended = False
        # Did vinyl check this connection out (and so must give it back)?
        self.owned = owned
        # Is the transaction owned by a block (atomic, use_connection) rather
        # than by a single operation that commits on its own?
        self.in_block = in_block
        # Is this a root whose transaction is not the application's (the one
        # a test runs in)? Levels under it behave as if it were not there:
        # each operation gets a savepoint, on_commit callbacks that reach it
        # run at once, a durable block may open.
        self.transparent = transparent
        # Must this level roll back (an error or a cancellation interrupted
        # an operation in it)?
        self.needs_rollback = False
        # The task whose sync code is running in run_sync() right now.
        self.bridge_task: asyncio.Task | None = None
        # Did vinyl begin a transaction? A root without one (a read, or a
        # single write where the driver autocommits) commits each statement
        # on its own, and Django's own code may begin one, as on its
        # connections.
        self.transactional = transactional if parent is None else parent.transactional
        # Did the server end this root's transaction on its own (a MySQL
        # deadlock)? Then no statement may run in it any more.
        self.lost_transaction = False

    def __repr__(self) -> str:
        kind = "root" if self.parent is None else "child"
        state = "ended" if self.ended else "open"
        return f"<vinyl Scope {kind} of {self.alias!r}, {state}>"

    @property
    def facts(self) -> dict[str, Any]:
        return self.entry.facts or {}

    def child(self, in_block: bool | None = None) -> Scope:
        """Return a new level of this transaction (see :func:`savepoint`)."""
        return Scope(
            self.alias,
            self.connection,
            self.entry,
            owned=False,
            in_block=self.in_block if in_block is None else in_block,
            parent=self,
        )

    @property
    def exclusive(self) -> bool:
        """Is the connection used by one operation alone (nothing interleaves)?"""
        root = self.root
        return root.owned and not root.in_block and not root.transparent

    def dbapi_connection(self) -> Any:
        """Return the driver-level connection, for sync code in ``run_sync``."""
        return self.connection.sync_connection.connection.dbapi_connection

    def check_open(self) -> None:
        if self.ended or self.root.ended:
            raise TransactionScopeEnded(
                f"this task inherited a vinyl transaction on {self.alias!r} that "
                f"has already ended: await the task inside its `async with "
                f"vinyl.atomic()` block, or start it outside the block"
            )

    def check_transaction(self) -> None:
        """Refuse to run a statement in a transaction the server has ended.

        MySQL rolls a whole transaction back on a deadlock and then commits
        each following statement on its own: the rest of an ``atomic`` block
        would be half committed. (A cheap check of the driver's last status,
        no round trip.)
        """
        root = self.root
        if root.lost_transaction:
            raise _lost_transaction_error(self.alias)
        config = self.entry.config
        if not (root.transactional and self.entry.checks_transaction and config.in_transaction):
            return
        driver = self.connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]
        if not config.in_transaction(driver):
            root.lost_transaction = True
            self.needs_rollback = True
            raise _lost_transaction_error(self.alias)

    def note_error(self, exc: BaseException) -> None:
        """Remember an error after which the server has ended the transaction."""
        if self.entry.checks_transaction and server_ended_transaction(exc):
            self.root.lost_transaction = True
            self.needs_rollback = True

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run sync code whose database calls execute on this scope's connection."""
        self.check_open()
        async with self.lock:
            self.check_open()
            self.check_transaction()
            token = _bound.set({**_bound.get(), self.alias: self})
            task = asyncio.current_task()
            self.bridge_task = task
            try:
                if self.exclusive:
                    return await self.connection.run_sync(_call, fn, args)
                # Tasks share this connection: a statement cut short by a
                # cancellation would leave it unusable for them (SQLAlchemy
                # invalidates it, asyncmy closes it), so it runs to its end
                # and the cancellation is raised after.
                return await finish(self.connection.run_sync(_call, fn, args))
            except BaseException as exc:
                if isinstance(exc, Exception) and not _cancel_turned_error(task, exc):
                    self.note_error(exc)
                    note_lost_connection(self.entry, exc)
                    # Errors raised outside Django's cursor (SQLAlchemy's
                    # BEGIN at the first statement...) are Django's too.
                    raise_as_django(self.entry, exc)
                    raise
                # Interrupted mid-operation: what ran of it cannot be kept.
                self.needs_rollback = True
                if isinstance(exc, Exception):
                    # asyncmy turns a cancellation into InterfaceError
                    # ("Cancelled during execution"): keep the cancellation.
                    raise asyncio.CancelledError() from exc
                raise
            finally:
                self.bridge_task = None
                _bound.reset(token)


def _lost_transaction_error(alias: str) -> Exception:
    return django_db.OperationalError(
        f"the server rolled back the transaction on {alias!r} by itself (after a "
        f"deadlock or a lock wait timeout): the statements of this atomic block "
        f"were undone, and none may run after it; leave the block and run it again"
    )


def _call(_sync_conn: Any, fn: Callable[..., T], args: tuple) -> T:
    return fn(*args)


def _cancelling(task: asyncio.Task | None) -> bool:
    return task is not None and task.cancelling() > 0


def _cancel_turned_error(task: asyncio.Task | None, exc: BaseException) -> bool:
    """Is ``exc`` a driver's report of this task's cancellation?

    asyncmy closes the connection and raises InterfaceError("Cancelled during
    execution"). (``cancelling()`` alone is not enough: a TaskGroup whose
    child failed can leave it set on its parent.)
    """
    if not _cancelling(task):
        return False
    error: BaseException | None = exc
    while error is not None:
        if any(cls.__name__ == "InterfaceError" for cls in type(error).__mro__):
            return True
        error = error.__cause__
    return False


def active_scope(alias: str) -> Scope | None:
    """Return the scope of the enclosing block for ``alias``, if any."""
    return _active.get().get(alias)


def bound_scope(alias: str) -> Scope | None:
    """Return the scope that sync code running in ``run_sync`` is bound to."""
    return _bound.get().get(alias)


def in_bridge() -> bool:
    """Is the caller sync code running inside :meth:`Scope.run_sync`?

    Coroutines that such code awaits (signal receivers) are not: they run
    in the task's own greenlet, and use the async API.
    """
    return bool(_bound.get()) and _in_greenlet()


async def close_rows(scope: Scope, rows: Any) -> None:
    """Close a generator of rows that sync code opened on ``scope``.

    Its driver cursor closes inside the bridge; if the scope has ended
    meanwhile (a stream abandoned inside an ``atomic`` block and collected
    after it), the cursor is closed without the connection, which is no
    longer this stream's.
    """
    if not scope.ended:
        try:
            await scope.run_sync(rows.close)
            return
        except TransactionScopeEnded:
            pass
    try:
        await greenlet_spawn(rows.close)
    except Exception:  # the transaction that held the cursor is gone
        pass


# -- checkout and release -----------------------------------------------------


async def checkout(alias: str, *, in_block: bool = False, transactional: bool = True) -> Scope:
    """Check a connection out of the pool of ``alias`` and begin a transaction.

    Without ``transactional`` no transaction begins: the connection is for
    statements that each commit on their own, in autocommit where switching
    to it costs no round trip. Waits up to the pool's ``pool_timeout`` for a
    free connection, then raises :class:`vinyl.exceptions.PoolExhausted`.
    """
    entry = engine_entry(alias)
    conn = await _pooled(alias, entry, entry.engine.connect)
    try:
        if entry.facts is None:
            await ensure_facts(entry, conn)
            if conn.in_transaction():
                # The facts were read in a transaction of their own: end it
                # before the operation's statements run.
                await conn.rollback()
        if transactional:
            await conn.begin()
        elif entry.autocommit_options:
            conn = await conn.execution_options(**entry.autocommit_options)
    except BaseException as exc:
        await discard(conn)
        raise_as_django(entry, exc)
        raise
    return Scope(alias, conn, entry, in_block=in_block, transactional=transactional)


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
    pool: Any = entry.engine.sync_engine.pool
    try:
        return pool.checkedin() == 0 and pool.overflow() >= pool._max_overflow
    except AttributeError:  # another pool class: no waiting
        return False


def _connect_failed(entry: EngineEntry, exc: Exception) -> None:
    """Tell the tasks waiting for a connection that connecting failed."""
    failure = entry.connect_failure
    entry.connect_failure = None
    if failure is not None and not failure.done():
        failure.set_result(exc)


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
    """
    scope.ended = True
    conn = scope.connection
    if not scope.transactional:
        # Statements committed on their own; the pool's reset ends anything
        # a driver left open.
        await conn.close()
        return
    try:
        if commit:
            scope.check_transaction()
            await conn.commit()
        else:
            await conn.rollback()
    except BaseException as exc:
        await discard(conn)
        if commit:
            raise_as_django(scope.entry, exc)
        if commit or not isinstance(exc, Exception):
            raise
        logger.info("vinyl: a rollback failed, the connection was discarded: %r", exc)
        return
    await conn.close()


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
    scope.ended = True
    await discard(scope.connection)


def is_disconnect(scope: Scope, exc: BaseException) -> bool:
    """Did ``exc`` come from a connection the server (or network) closed?

    vinyl runs statements on the driver connection, below SQLAlchemy's own
    disconnect handling, so it asks the dialect itself.
    """
    dialect = scope.connection.dialect
    dbapi_error = getattr(dialect.loaded_dbapi, "Error", None)
    error: BaseException | None = exc
    while error is not None and dbapi_error is not None:
        if isinstance(error, dbapi_error):
            try:
                return bool(dialect.is_disconnect(error, scope.dbapi_connection(), None))
            except Exception:
                return True
        error = error.__cause__
    return False


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
            await run_callbacks(take_callbacks(scope))


# -- cached plans: statements straight on the driver ---------------------------


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


def note_lost_connection(entry: EngineEntry, exc: BaseException) -> None:
    """After an error from a connection the server closed, mark every
    connection of the pool stale (see :func:`invalidate_pool`): a server
    restart or a kill of all sessions leaves the idle ones dead too, and the
    next operations must not each fail on one of them."""
    if _lost_connection(entry, exc):
        check_in_spares(entry)
        invalidate_pool(entry)


def _lost_connection(entry: EngineEntry, exc: BaseException) -> bool:
    dialect = entry.engine.dialect
    error: BaseException | None = exc
    while error is not None:
        if isinstance(error, (OSError, ConnectionError)):
            return True
        args = getattr(error, "args", None)
        if args and isinstance(args[0], int) and args[0] in MYSQL_CONNECTION_CODES and type(error).__module__.startswith("asyncmy"):
            return True
        state = getattr(error, "sqlstate", None) or ""
        if not isinstance(state, str):
            state = ""
        if state.startswith("08") or state in ("57P01", "57P02", "57P03"):
            return True  # connection exception; server shutting down/terminated us
        name = type(error).__name__
        if type(error).__module__.startswith("asyncpg") and (
            "ConnectionDoesNotExist" in name or name in ("InterfaceError", "InternalClientError")
        ):
            # InternalClientError: the server's notice that it ended the
            # session arrived before the socket closed, or the protocol is
            # in the state a lost connection left it in.
            return True
        try:
            if dialect.is_disconnect(error, None, None):
                return True
        except Exception:
            pass
        error = error.__cause__ or error.__context__
    return False


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
    pooled = _take_idle(entry) or await _pooled(alias, entry, entry.engine.raw_connection)
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


def _take_idle(entry: EngineEntry) -> Any:
    """An idle pooled connection taken without the greenlet, or None."""
    spare = take_spare(entry)
    if spare is not None:
        return spare
    if not checkout_needs_no_io(entry):
        return None
    try:
        return entry.engine.sync_engine.raw_connection()
    except sa_exc.MissingGreenlet:
        # Checkout wanted I/O after all (the pool took the connection back):
        # this engine's checkouts take the greenlet path from now on.
        entry.quiet_checkin = False
        return None


async def _give_back(entry: EngineEntry, pooled: Any) -> None:
    """Return a driver connection to the pool after a statement that succeeded.

    On an engine vinyl built, a connection with no transaction open goes
    back without I/O (its reset only rolls back open transactions), and
    where checkouts need no I/O either it is kept for the next statement of
    this loop step first (see keep_for_this_step).
    """
    if entry.quiet_checkin and entry.config.idle(pooled.driver_connection):  # type: ignore[misc]
        if quiet_pool(entry):
            keep_for_this_step(entry, pooled)
            return
        if room_in_pool(entry):
            pooled.close()
            return
    # A transaction to roll back, or a full pool that closes an overflow
    # connection: I/O, in the greenlet.
    await finish(greenlet_spawn(pooled.close))


def _driver_disconnect(entry: EngineEntry, exc: BaseException) -> bool:
    # Connection errors reach here mapped to Django's OperationalError /
    # InterfaceError; a needless invalidation only costs a reconnect.
    return isinstance(exc, (django_db.OperationalError, django_db.InterfaceError)) or _lost_connection(entry, exc)


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


def _raise_as_django(config: EngineConfig, exc: BaseException) -> None:
    """Raise the Django exception for a driver's error, if it has another."""
    mapped = config.map_error(exc) if config.map_error is not None else django_error(exc)
    if mapped is not exc:
        raise mapped from exc


def raise_as_django(entry: EngineEntry, exc: BaseException) -> None:
    """Raise Django's exception for a driver or SQLAlchemy error (the
    backend's mapping, see :func:`vinyl.exceptions.django_error`); return
    for anything else (a cancellation, an application's error)."""
    if isinstance(exc, Exception):
        note_lost_connection(entry, exc)
        _raise_as_django(entry.config, exc)


# -- streamed reads: a server-side cursor straight on the driver ----------------


def stream(alias: str, sql: str, params: tuple, size: int) -> AsyncIterator[list]:
    """Stream the rows of one read, ``size`` at a time, from a driver cursor.

    Inside a block (or a signal receiver's level) the cursor is on the
    block's connection, and the scope's lock is held only while a chunk is
    fetched: the block's other statements (this task's and its siblings')
    run between two chunks. MySQL buffers the result there, since an
    unbuffered one would have to hold the connection for the stream's life.
    Otherwise a connection is checked out for the stream alone, in a
    transaction where the driver's cursor needs one (asyncpg's portals).

    Close the iterator (``aclosing``) to free its cursor early. A stream cut
    short by an error or a cancellation discards a connection of its own,
    which may be mid-result; on a block's connection each fetch runs to its
    end first.
    """
    scope = active_scope(alias)
    if scope is not None:
        return _stream_in_scope(alias, scope, sql, params, size)
    return _stream_alone(alias, sql, params, size)


async def _stream_in_scope(alias: str, scope: Scope, sql: str, params: tuple, size: int) -> AsyncIterator[list]:
    config = scope.entry.config
    cursor = await _locked(scope, _open_cursor, alias, scope, sql, params, True)
    try:
        while True:
            rows = await _locked(scope, _fetch_chunk, config, cursor, size)
            if rows:
                yield rows
            if len(rows) < size:
                return
    finally:
        await _close_in_scope(scope, cursor)


async def _close_in_scope(scope: Scope, cursor: DriverCursor) -> None:
    """Close a stream's cursor on a block's connection, even if cancelled.

    Not once the block has ended: the connection is no longer the stream's
    (the cursor went with its transaction). A failure to close is left to
    the transaction's end as well.
    """
    try:
        await finish(_close_locked(scope, cursor))
    except Exception:
        pass


async def _close_locked(scope: Scope, cursor: DriverCursor) -> None:
    async with scope.lock:
        if not (scope.ended or scope.root.ended):
            await cursor.close()


async def _stream_alone(alias: str, sql: str, params: tuple, size: int) -> AsyncIterator[list]:
    entry = engine_entry(alias)
    scope, cursor = await _open_alone(alias, entry, sql, params)
    clean = False
    try:
        while True:
            rows = await _fetch_chunk(entry.config, cursor, size)
            if rows:
                yield rows
            if len(rows) < size:
                break
        clean = True
    except GeneratorExit:
        clean = True  # closed early by its consumer, between two chunks
        raise
    finally:
        await _end_alone(scope, cursor, clean)


async def _open_alone(alias: str, entry: EngineEntry, sql: str, params: tuple) -> tuple[Scope, DriverCursor]:
    """Check out a connection for a stream and open its cursor.

    A connection the server closed fails here, before any row was read: the
    stream opens once more on a fresh one, as a read does (see :func:`fetch`).
    """
    try:
        return await _try_open_alone(alias, entry, sql, params)
    except Exception as exc:
        if not await recover_from_disconnect(alias, exc):
            raise
    return await _try_open_alone(alias, entry, sql, params)


async def _try_open_alone(alias: str, entry: EngineEntry, sql: str, params: tuple) -> tuple[Scope, DriverCursor]:
    scope = await checkout(alias, transactional=entry.config.stream_transaction)
    try:
        return scope, await _open_cursor(alias, scope, sql, params, False)
    except BaseException as exc:
        await end_interrupted(scope, exc, lost=_driver_disconnect(entry, exc))
        raise


async def _end_alone(scope: Scope, cursor: DriverCursor, clean: bool) -> None:
    """Give back the connection of a stream that ran outside a block.

    A stream read out, or closed by its consumer, closes its cursor (MySQL
    reads the rest of an unbuffered result) and ends its transaction; one
    cut short by an error or a cancellation may have left the connection
    mid-result: it is discarded.
    """
    if clean:
        try:
            await cursor.close()
        except BaseException as exc:
            scope.ended = True
            await discard(scope.connection)
            if not isinstance(exc, Exception):
                raise
            return
        await release(scope, commit=True)
        return
    scope.ended = True
    await discard(scope.connection)


async def _open_cursor(alias: str, scope: Scope, sql: str, params: tuple, shared: bool) -> DriverCursor:
    """Start the statement of a stream on the driver connection of ``scope``."""
    config = scope.entry.config
    driver = await _driver_in_scope(scope)
    return await _on_driver(alias, config, config.stream(driver, sql, params, shared), sql, params)  # type: ignore[misc]


async def _fetch_chunk(config: EngineConfig, cursor: DriverCursor, size: int) -> list:
    try:
        return await cursor.fetchmany(size)
    except Exception as exc:
        _raise_as_django(config, exc)
        raise


@asynccontextmanager
async def activate(scope: Scope) -> AsyncIterator[Scope]:
    """Make ``scope`` the one every vinyl statement on its alias runs in."""
    token = _active.set({**_active.get(), scope.alias: scope})
    try:
        yield scope
    finally:
        _active.reset(token)


# -- levels inside a transaction ----------------------------------------------


async def enter_child(parent: Scope) -> Scope:
    """Open a level inside ``parent`` that holds ``parent``'s lock until it ends.

    The caller ends it with :func:`end` and then releases ``parent.lock``.
    """
    parent.check_open()
    await parent.lock.acquire()
    try:
        parent.check_open()
    except BaseException:
        parent.lock.release()
        raise
    return parent.child()


async def end(scope: Scope) -> None:
    """Mark ``scope`` ended once the statement a task runs in it is done.

    Tasks that still hold the scope get ``TransactionScopeEnded`` from then on.
    """
    if scope.lock.locked():
        await finish(_wait_and_end(scope))
    scope.ended = True


async def _wait_and_end(scope: Scope) -> None:
    async with scope.lock:
        scope.ended = True


@asynccontextmanager
async def joined() -> AsyncIterator[None]:
    """Let coroutines awaited by sync code in the bridge use its transaction.

    Sync code in :meth:`Scope.run_sync` holds its scope's lock while it
    waits for a coroutine (an async signal receiver). Inside this block each
    bound scope gets a child level, free to use, so the coroutine (and tasks
    it starts) run their statements in the same transaction, one at a time;
    the level ends with the block, and an error left in it marks the parent
    for rollback.
    """
    bound = _bound.get()
    if not bound:
        yield
        return
    children = {alias: scope.child() for alias, scope in bound.items()}
    active_token = _active.set({**_active.get(), **children})
    bound_token = _bound.set({})
    try:
        yield
    finally:
        _bound.reset(bound_token)
        _active.reset(active_token)
        for child in children.values():
            await end(child)
            if child.needs_rollback:
                child.parent.needs_rollback = True  # type: ignore[union-attr]
            else:
                await promote_callbacks(child)


@asynccontextmanager
async def savepoint(parent: Scope, *, in_block: bool = True) -> AsyncIterator[Scope]:
    """Run the block in a savepoint of ``parent``'s transaction.

    The savepoint is released when the block succeeds and rolled back when
    it raises or was marked for rollback; sibling tasks that use ``parent``
    wait until it ends (see the module docstring).
    """
    level = await enter_child(parent)
    level.in_block = in_block
    try:
        try:
            level.check_transaction()
            point = await finish(level.connection.begin_nested())
        except asyncio.CancelledError:
            # finish() let the SAVEPOINT complete: undo it before leaving.
            nested = level.connection.get_nested_transaction()
            if nested is not None:
                level.ended = True
                await finish(nested.rollback())
            raise
        except Exception as exc:
            raise_as_django(level.entry, exc)
            raise
        token = _active.set({**_active.get(), parent.alias: level})
        failure: BaseException | None = None
        try:
            yield level
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _active.reset(token)
            await _close_savepoint(level, point, failure)
    finally:
        parent.lock.release()


async def _close_savepoint(level: Scope, point: Any, failure: BaseException | None) -> None:
    parent = level.parent
    assert parent is not None
    failed = failure is not None or level.needs_rollback
    ended: list[bool] = []
    try:
        await finish(_end_savepoint(level, point, failed, ended))
    except BaseException as exc:
        if not ended:
            # The level's work could not be undone (or kept) on its own.
            parent.needs_rollback = True
        elif not failed:
            # Released, and then the task was cancelled: the level's work
            # stands, as do its callbacks.
            await promote_callbacks(level)
        if failure is not None:
            return  # the original error propagates, not this one
        raise_as_django(level.entry, exc)
        raise
    if not failed:
        await promote_callbacks(level)


async def _end_savepoint(level: Scope, point: Any, failed: bool, ended: list[bool]) -> None:
    async with level.lock:
        level.ended = True
        if failed:
            await point.rollback()
        else:
            await point.commit()
        ended.append(True)


# -- callbacks after commit ---------------------------------------------------

_CALLBACKS = "on_commit"

Callback = tuple[Callable[[], Any], bool]


def add_callback(scope: Scope, func: Callable[[], Any], robust: bool) -> None:
    """Run ``func`` once the transaction of ``scope`` commits.

    It is dropped if ``scope``'s level (or an enclosing one) rolls back.
    """
    scope.attachments.setdefault(_CALLBACKS, []).append((func, robust))


def take_callbacks(scope: Scope) -> list[Callback]:
    return scope.attachments.pop(_CALLBACKS, None) or []


async def promote_callbacks(level: Scope) -> None:
    """Hand the callbacks of a level that succeeded to its parent level."""
    callbacks = take_callbacks(level)
    if not callbacks:
        return
    parent = level.parent
    assert parent is not None
    if parent.transparent:
        # Nothing the application sees commits later: run them now.
        await run_callbacks(callbacks)
    else:
        parent.attachments.setdefault(_CALLBACKS, []).extend(callbacks)


async def run_callbacks(callbacks: list[Callback]) -> None:
    """Call each callback (awaiting async ones) in order of registration."""
    for func, robust in callbacks:
        try:
            result = func()
            if inspect.isawaitable(result):
                await result
        except Exception:
            if not robust:
                raise
            logger.exception("vinyl on_commit callback %r failed", func)
