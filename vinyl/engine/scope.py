"""The connection a task's statements run on, and the bridge to sync code.

A :class:`Scope` is one SQLAlchemy ``AsyncConnection`` in one transaction,
used by one operation (outside ``atomic``) or by every task inside an
``atomic`` / ``use_connection`` block. Statements of tasks that share a scope
run one at a time, serialized by the scope's lock.

Two context variables say which scope is in force:

- ``_active`` maps an alias to the scope of the enclosing ``async with``
  block (``atomic``, ``use_connection``); child tasks inherit it.
- ``_bound`` maps an alias to the scope whose connection the sync code that
  runs inside :meth:`Scope.run_sync` must use. It is set only for the
  duration of one ``run_sync`` call, so it never leaks across an ``await``.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator, Callable, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

from vinyl import _querylog
from vinyl.engine.engines import EngineEntry, engine_entry, ensure_facts
from vinyl.exceptions import MAPPED_ERRORS, TransactionScopeEnded, connection_error

T = TypeVar("T")

_active: ContextVar[dict[str, "Scope"]] = ContextVar("vinyl_active_scopes", default={})
_bound: ContextVar[dict[str, "Scope"]] = ContextVar("vinyl_bound_scopes", default={})


class Scope:
    """One connection and its transaction, shared by the tasks of a block."""

    __slots__ = (
        "alias",
        "connection",
        "entry",
        "lock",
        "attachments",
        "ended",
        "owned",
        "bridge_task",
        "transactional",
    )

    def __init__(
        self,
        alias: str,
        connection: AsyncConnection,
        entry: EngineEntry,
        *,
        owned: bool = True,
        transactional: bool = True,
    ) -> None:
        self.alias = alias
        self.connection = connection
        self.entry = entry
        self.lock = asyncio.Lock()
        # Per-scope state that upper layers keep here (the Django wrapper's
        # transaction flags, on_commit callbacks); the engine never reads it.
        self.attachments: dict[str, Any] = {}
        self.ended = False
        # Did vinyl check this connection out (and so must give it back)?
        self.owned = owned
        # Is the connection inside a transaction vinyl (or its owner) began?
        # If not, each statement commits on its own.
        self.transactional = transactional
        # The task whose sync code is running in run_sync() right now.
        self.bridge_task: asyncio.Task | None = None

    @property
    def facts(self) -> dict[str, Any]:
        return self.entry.facts or {}

    def dbapi_connection(self) -> Any:
        """Return the driver-level connection, for sync code in ``run_sync``."""
        return self.connection.sync_connection.connection.dbapi_connection

    def check_open(self) -> None:
        if self.ended:
            raise TransactionScopeEnded(
                f"this task inherited a vinyl transaction on {self.alias!r} that "
                f"has already ended: await the task inside its `async with "
                f"vinyl.atomic()` block, or start it outside the block"
            )

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run sync code whose database calls execute on this scope's connection."""
        self.check_open()
        async with self.lock:
            self.check_open()
            token = _bound.set({**_bound.get(), self.alias: self})
            self.bridge_task = asyncio.current_task()
            try:
                return await self.connection.run_sync(_call, fn, args)
            finally:
                self.bridge_task = None
                _bound.reset(token)

    def reentered(self) -> bool:
        """Is the caller awaited by sync code of this scope's run_sync()?"""
        return self.bridge_task is not None and self.bridge_task is asyncio.current_task()

    async def run(self, coro_fn: Callable[[AsyncConnection], Any]) -> Any:
        """Run an async callable on the connection, serialized with others."""
        self.check_open()
        async with self.lock:
            self.check_open()
            with MAPPED_ERRORS:
                return await coro_fn(self.connection)


def reentry_lock(scope: Scope) -> asyncio.Lock:
    """The lock that serializes coroutines awaited by the scope's bridge code."""
    lock = scope.attachments.get("reentry_lock")
    if lock is None:
        lock = scope.attachments["reentry_lock"] = asyncio.Lock()
    return lock


def _call(_sync_conn: Any, fn: Callable[..., T], args: tuple) -> T:
    return fn(*args)


def active_scope(alias: str) -> Scope | None:
    """Return the scope of the enclosing block for ``alias``, if any."""
    return _active.get().get(alias)


def bound_scope(alias: str) -> Scope | None:
    """Return the scope that sync code running in ``run_sync`` is bound to."""
    return _bound.get().get(alias)


def in_bridge() -> bool:
    """Is the caller sync code running inside :meth:`Scope.run_sync`?

    A coroutine that such code awaits (an async signal receiver) shares its
    context variables but runs outside the greenlet: it is not in the bridge.
    """
    return bool(_bound.get()) and in_greenlet()


async def checkout(alias: str, *, transactional: bool = True) -> Scope:
    """Check a connection out of the pool of ``alias``.

    With ``transactional`` a transaction begins; without, the connection is
    for statements that each commit on their own (reads outside ``atomic``),
    in autocommit where switching to it costs no round trip.
    """
    entry = engine_entry(alias)
    try:
        conn = await entry.engine.connect()
    except Exception as exc:
        raise connection_error(alias, entry, exc) from exc
    try:
        with MAPPED_ERRORS:
            if transactional:
                await conn.begin()
            elif entry.config.autocommit_level is not None:
                conn = await conn.execution_options(isolation_level=entry.config.autocommit_level)
            if entry.facts is None:
                await ensure_facts(entry, conn)
    except BaseException:
        await _discard(conn)
        raise
    return Scope(alias, conn, entry, transactional=transactional)


async def _discard(conn: AsyncConnection) -> None:
    # A connection interrupted mid-statement may be in any state: never give
    # it back to the pool as if it were clean.
    try:
        await asyncio.shield(_invalidate_and_close(conn))
    except BaseException:  # pragma: no cover - the connection is gone anyway
        pass


async def _invalidate_and_close(conn: AsyncConnection) -> None:
    try:
        await conn.invalidate()
    finally:
        await conn.close()


async def release(scope: Scope, *, commit: bool) -> None:
    """End the transaction of a scope vinyl owns and return its connection."""
    scope.ended = True
    conn = scope.connection
    if not scope.transactional:
        # Anything a read left open is rolled back on return to the pool.
        await conn.close()
        return
    try:
        with MAPPED_ERRORS:
            if commit:
                await conn.commit()
            else:
                await conn.rollback()
    except BaseException:
        await _discard(conn)
        raise
    await conn.close()


@asynccontextmanager
async def operation(alias: str, *, readonly: bool = False, single_write: bool = False) -> AsyncIterator[Scope]:
    """Give the scope one vinyl operation runs in.

    Inside an ``atomic`` / ``use_connection`` block this is the block's scope.
    Otherwise a pooled connection is checked out for the operation alone and
    its transaction commits when the operation succeeds, so a multi-statement
    operation is all-or-nothing and each operation commits on its own. A
    ``readonly`` operation (one or more reads) runs without a transaction,
    and so does a ``single_write`` (one write statement) where the driver
    autocommits it by itself.
    """
    scope = active_scope(alias)
    if scope is not None:
        scope.check_open()
        yield scope
        return
    if single_write and not readonly:
        readonly = engine_entry(alias).config.autocommit_level is not None
    scope = await checkout(alias, transactional=not readonly)
    try:
        yield scope
    except BaseException as exc:
        if isinstance(exc, Exception):
            await release(scope, commit=False)
        else:
            # Cancelled (or interrupted) at an arbitrary point.
            scope.ended = True
            await _discard(scope.connection)
        raise
    else:
        await release(scope, commit=True)


async def fetch(alias: str, sql: str, params: tuple) -> list:
    """Run one read statement straight on the driver, outside the bridge.

    Inside an ``atomic`` block it runs on the block's connection; otherwise
    on a pooled driver connection, with no transaction begun (the pool's
    reset ends any the driver opened by itself). Returns the driver's rows.
    """
    scope = bound_scope(alias)
    if scope is not None and scope.bridge_task is not None:
        # Awaited by sync code in the bridge (an async signal receiver): run
        # on that code's connection, one receiver at a time.
        async with reentry_lock(scope):
            return await _fetch_on(alias, scope.entry, scope.connection, sql, params)
    scope = active_scope(alias)
    if scope is not None:
        return await scope.run(lambda conn: _fetch_on(alias, scope.entry, conn, sql, params))
    entry = engine_entry(alias)
    try:
        pooled = await entry.engine.raw_connection()
    except Exception as exc:
        raise connection_error(alias, entry, exc) from exc
    try:
        rows = await _run_on_driver(alias, entry, pooled.driver_connection, sql, params)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            # Interrupted mid-statement: the connection's state is unknown.
            await asyncio.shield(greenlet_spawn(pooled.invalidate))
        else:
            await greenlet_spawn(pooled.close)
        raise
    await greenlet_spawn(pooled.close)
    return rows


async def _fetch_on(alias: str, entry: EngineEntry, conn: AsyncConnection, sql: str, params: tuple) -> list:
    driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    return await _run_on_driver(alias, entry, driver, sql, params)


async def _run_on_driver(alias: str, entry: EngineEntry, driver: Any, sql: str, params: tuple) -> list:
    config = entry.config
    # Logged on vinyl.sql and recorded by capture_queries like bridge statements.
    started = time.perf_counter() if _querylog.observing() else None
    try:
        return await config.fetch(driver, sql, params)  # type: ignore[misc]
    except Exception as exc:
        mapped = config.map_error(exc) if config.map_error is not None else exc
        if mapped is exc:
            raise
        raise mapped from exc
    finally:
        if started is not None:
            _querylog.record(alias, sql, params, started)


@asynccontextmanager
async def activate(scope: Scope) -> AsyncIterator[Scope]:
    """Make ``scope`` the one every vinyl statement on its alias runs in."""
    token = _active.set({**_active.get(), scope.alias: scope})
    try:
        yield scope
    finally:
        _active.reset(token)
