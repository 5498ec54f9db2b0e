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
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator, Callable, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from vinyl.engine.engines import EngineEntry, engine_entry, ensure_facts
from vinyl.exceptions import TransactionScopeEnded, connection_error, database_error

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
    )

    def __init__(
        self,
        alias: str,
        connection: AsyncConnection,
        entry: EngineEntry,
        *,
        owned: bool = True,
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
            return await coro_fn(self.connection)


def _call(_sync_conn: Any, fn: Callable[..., T], args: tuple) -> T:
    return fn(*args)


def active_scope(alias: str) -> Scope | None:
    """Return the scope of the enclosing block for ``alias``, if any."""
    return _active.get().get(alias)


def bound_scope(alias: str) -> Scope | None:
    """Return the scope that sync code running in ``run_sync`` is bound to."""
    return _bound.get().get(alias)


def in_bridge() -> bool:
    """Is the caller sync code running inside :meth:`Scope.run_sync`?"""
    return bool(_bound.get())


async def checkout(alias: str) -> Scope:
    """Check a connection out of the pool of ``alias`` and begin a transaction."""
    entry = engine_entry(alias)
    try:
        conn = await entry.engine.connect()
    except Exception as exc:
        raise connection_error(alias, entry, exc) from exc
    try:
        await conn.begin()
        if entry.facts is None:
            await ensure_facts(entry, conn)
    except BaseException:
        await _discard(conn)
        raise
    return Scope(alias, conn, entry)


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
    try:
        if commit:
            await conn.commit()
        else:
            await conn.rollback()
    except BaseException as exc:
        await _discard(conn)
        error = database_error(exc)
        if error is exc:
            raise
        raise error from error.__cause__
    await conn.close()


@asynccontextmanager
async def operation(alias: str) -> AsyncIterator[Scope]:
    """Give the scope one vinyl operation runs in.

    Inside an ``atomic`` / ``use_connection`` block this is the block's scope.
    Otherwise a pooled connection is checked out for the operation alone and
    its transaction commits when the operation succeeds, so a multi-statement
    operation is all-or-nothing and each operation commits on its own.
    """
    scope = active_scope(alias)
    if scope is not None:
        scope.check_open()
        yield scope
        return
    scope = await checkout(alias)
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


@asynccontextmanager
async def activate(scope: Scope) -> AsyncIterator[Scope]:
    """Make ``scope`` the one every vinyl statement on its alias runs in."""
    token = _active.set({**_active.get(), scope.alias: scope})
    try:
        yield scope
    finally:
        _active.reset(token)
