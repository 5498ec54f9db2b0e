"""Transactions: ``vinyl.atomic``, ``vinyl.on_commit``, ``vinyl.use_connection``.

The outermost ``atomic`` block checks a connection out of the pool and begins
a transaction; every vinyl statement on that alias in the block, including
those of tasks started inside it, runs on that connection, one at a time.
Nested blocks are savepoints.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from contextlib import asynccontextmanager
from contextvars import Token
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from vinyl.engine import scope as scopes
from vinyl.engine.engines import DEFAULT_ALIAS, engine_entry, ensure_facts

logger = logging.getLogger("vinyl.transaction")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_CALLBACKS = "on_commit"


def _callbacks(scope: scopes.Scope) -> list[tuple[Callable[[], Any], bool]]:
    return scope.attachments.setdefault(_CALLBACKS, [])


def _django_state(scope: scopes.Scope) -> Any:
    return scope.attachments.get("django")


class _Level:
    __slots__ = ("scope", "token", "savepoint", "callbacks_mark", "needs_rollback")

    def __init__(self, scope: scopes.Scope) -> None:
        self.scope = scope
        self.token: Token | None = None
        self.savepoint: Any = None
        self.callbacks_mark = 0
        self.needs_rollback = False


class atomic:
    """A transaction; nested blocks are savepoints.

    ::

        async with vinyl.atomic():
            author = await Author.vinyl.create(name="Ann")
            await Book.vinyl.create(title="x", author=author)

        @vinyl.atomic
        async def transfer(...): ...

    An exception rolls the block back and propagates.
    """

    def __new__(cls, using: Any = DEFAULT_ALIAS, savepoint: bool = True, durable: bool = False) -> Any:
        if callable(using):
            # Bare decorator: @vinyl.atomic
            return atomic(DEFAULT_ALIAS)(using)
        return super().__new__(cls)

    def __init__(self, using: str = DEFAULT_ALIAS, savepoint: bool = True, durable: bool = False) -> None:
        if not isinstance(using, str):
            raise TypeError(f"atomic(using=...) takes an alias name, got {using!r}")
        self.using = using
        self.savepoint = savepoint
        self.durable = durable
        self._levels: list[_Level] = []

    def __call__(self, func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"vinyl.atomic decorates coroutine functions (async def), got {func!r}; "
                f"for sync code use django.db.transaction.atomic"
            )

        @functools.wraps(func)
        async def inner(*args: Any, **kwargs: Any) -> Any:
            async with atomic(self.using, self.savepoint, self.durable):
                return await func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    async def __aenter__(self) -> None:
        current = scopes.active_scope(self.using)
        if current is not None and not current.ended:
            if self.durable:
                raise RuntimeError(
                    "A durable atomic block cannot be nested within another atomic block."
                )
            level = _Level(current)
            level.callbacks_mark = len(_callbacks(current))
            state = _django_state(current)
            level.needs_rollback = bool(state and state.needs_rollback)
            if self.savepoint:
                level.savepoint = await current.run(lambda conn: conn.begin_nested())
            self._levels.append(level)
            return
        scope = await scopes.checkout(self.using)
        level = _Level(scope)
        level.token = scopes._active.set({**scopes._active.get(), self.using: scope})
        self._levels.append(level)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        level = self._levels.pop()
        scope = level.scope
        if level.token is None:
            await self._exit_nested(level, exc)
            return
        scopes._active.reset(level.token)
        state = _django_state(scope)
        failed = exc is not None or bool(state and state.needs_rollback)
        if exc is not None and not isinstance(exc, Exception):
            # Cancelled mid-block: the connection's state is unknown.
            scope.ended = True
            await scopes._discard(scope.connection)
            return
        callbacks = _callbacks(scope)
        # As in Django, a block marked for rollback by an error that was
        # caught inside it rolls back on exit.
        await scopes.release(scope, commit=not failed)
        if not failed:
            await _run_callbacks(callbacks)

    async def _exit_nested(self, level: _Level, exc: Any) -> None:
        scope = level.scope
        state = _django_state(scope)
        if level.savepoint is None:
            if exc is not None and state is not None:
                # No savepoint to undo this block: the outer one must roll back.
                state.needs_rollback = True
            return
        if exc is None:
            await scope.run(lambda conn: level.savepoint.commit())
            return
        try:
            await scope.run(lambda conn: level.savepoint.rollback())
        finally:
            del _callbacks(scope)[level.callbacks_mark :]
            if state is not None:
                state.needs_rollback = level.needs_rollback


async def _run_callbacks(callbacks: list[tuple[Callable[[], Any], bool]]) -> None:
    for func, robust in callbacks:
        try:
            result = func()
            if inspect.isawaitable(result):
                await result
        except Exception:
            if not robust:
                raise
            logger.exception("on_commit callback %r failed", func)


def on_commit(func: Callable[[], Any], using: str = DEFAULT_ALIAS, robust: bool = False) -> None:
    """Run ``func`` after the outermost transaction on ``using`` commits.

    Inside ``atomic`` the callback is dropped if the block rolls back. Outside
    a transaction a sync ``func`` runs at once and an async one is scheduled
    as a task.
    """
    scope = scopes.active_scope(using)
    if scope is not None and not scope.ended:
        _callbacks(scope).append((func, robust))
        return
    try:
        result = func()
    except Exception:
        if not robust:
            raise
        logger.exception("on_commit callback %r failed", func)
        return
    if inspect.isawaitable(result):
        asyncio.ensure_future(result)


@asynccontextmanager
async def use_connection(conn: AsyncConnection, using: str = DEFAULT_ALIAS) -> AsyncIterator[AsyncConnection]:
    """Run every vinyl query on ``using`` on ``conn``, inside its transaction.

    ::

        async with engine.begin() as conn:
            await conn.execute(insert(audit).values(...))
            async with vinyl.use_connection(conn):
                await Book.vinyl.create(title="x")   # same transaction
    """
    if not isinstance(conn, AsyncConnection):
        raise TypeError(
            f"use_connection() takes a sqlalchemy AsyncConnection, got {conn!r}"
        )
    entry = engine_entry(using)
    if not conn.in_transaction():
        await conn.begin()
    if entry.facts is None:
        await ensure_facts(entry, conn)
    scope = scopes.Scope(using, conn, entry, owned=False)
    async with scopes.activate(scope):
        try:
            yield conn
        finally:
            scope.ended = True
