"""Transactions: ``vinyl.atomic``, ``vinyl.on_commit``, ``vinyl.use_connection``.

The outermost ``atomic`` block checks a connection out of the pool and begins
a transaction; every vinyl statement on that alias in the block, including
those of tasks started inside it (``gather``, ``TaskGroup``,
``create_task``), runs on that connection, one at a time. Nested blocks are
savepoints.

Concurrency inside a block (see ``vinyl.engine.scope``):

- statements of the block's tasks are serialized on its connection;
- a nested block holds the enclosing level for its whole life, so sibling
  tasks' nested blocks run one after the other and their savepoints never
  interleave; a sibling's statement on the enclosing level waits for the
  nested block to end (never await, inside a nested block, a sibling task
  that uses the enclosing level: start it inside the nested block);
- leaving a block waits for a statement its tasks are running, then ends
  the transaction; a task that outlives the block gets
  :class:`vinyl.exceptions.TransactionScopeEnded` instead of writing outside
  it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from contextlib import asynccontextmanager
from contextvars import Token
from typing import Any, AsyncContextManager, AsyncIterator, Awaitable, Callable, TypeVar

from django.db.transaction import TransactionManagementError
from sqlalchemy.ext.asyncio.engine import AsyncConnection

from vinyl import retry
from vinyl._compat import current_loop
from vinyl.engine import callbacks, savepoints
from vinyl.engine import checkout as checkouts
from vinyl.engine import scope as scopes
from vinyl.engine.engines import DEFAULT_ALIAS, engine_entry, ensure_facts

logger = logging.getLogger("vinyl.transaction")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# Tasks running async on_commit callbacks outside a transaction (kept
# referenced until done).
_background: set[asyncio.Task] = set()


class _Level:
    """What one ``async with atomic()`` entered, to undo on exit."""

    __slots__ = ("scope", "token", "savepoint")

    def __init__(
        self,
        scope: scopes.Scope,
        token: Token | None = None,
        savepoint: AsyncContextManager[scopes.Scope] | None = None,
    ) -> None:
        self.scope = scope
        # Set for the outermost block: the transaction is this block's.
        self.token = token
        # Set for a nested block with a savepoint.
        self.savepoint = savepoint


class atomic:
    """A transaction; nested blocks are savepoints.

    ::

        async with vinyl.atomic():
            author = await Author.vinyl.create(name="Ann")
            await Book.vinyl.create(title="x", author=author)

        @vinyl.atomic
        async def transfer(...): ...

    An exception rolls the block back and propagates. ``durable=True``
    refuses to open inside another block; ``savepoint=False`` makes a nested
    block share its parent's fate (an exception in it rolls the enclosing
    block back), as in Django. ``retries=N`` (decorator only) runs the
    function again when the database rolls the transaction back for a
    conflict (see ``vinyl.retry``)::

        @vinyl.atomic(retries=3)
        async def transfer(...): ...
    """

    def __new__(
        cls, using: Any = DEFAULT_ALIAS, savepoint: bool = True, durable: bool = False, retries: int = 0
    ) -> Any:
        if callable(using):
            # Bare decorator: @vinyl.atomic
            return atomic(DEFAULT_ALIAS)(using)
        return super().__new__(cls)

    def __init__(
        self, using: str = DEFAULT_ALIAS, savepoint: bool = True, durable: bool = False, retries: int = 0
    ) -> None:
        if not isinstance(using, str):
            raise TypeError(f"atomic(using=...) takes an alias name, got {using!r}")
        self.using = using
        self.savepoint = savepoint
        self.durable = durable
        # (the default, 0, needs no check: one call less per block)
        self.retries = 0 if retries.__class__ is int and not retries else retry.check_retries(retries)
        # One stack per task: the same atomic object may be entered by
        # several tasks at once.
        self._levels: dict[asyncio.Task | None, list[_Level]] = {}

    def __call__(self, func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"vinyl.atomic decorates coroutine functions (async def), got {func!r}; "
                f"for sync code use django.db.transaction.atomic"
            )

        @functools.wraps(func)
        async def inner(*args: Any, **kwargs: Any) -> Any:
            if self.retries:
                return await retry.run_with_retries(
                    func, args, kwargs, using=self.using, retries=self.retries,
                    block=lambda: atomic(self.using, self.savepoint, self.durable),
                )  # fmt: skip
            async with atomic(self.using, self.savepoint, self.durable):
                return await func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    def _push(self, level: _Level) -> None:
        # (current_task() of the loop at hand: asked without it, Python 3.11
        # makes a system call, see vinyl._compat.current_loop)
        self._levels.setdefault(asyncio.current_task(current_loop()), []).append(level)

    def _pop(self) -> _Level:
        task = asyncio.current_task(current_loop())
        stack = self._levels[task]
        level = stack.pop()
        if not stack:
            del self._levels[task]
        return level

    async def __aenter__(self) -> None:
        if self.retries:
            raise TypeError(
                "atomic(retries=...) cannot run an `async with` block again: put the "
                "block in an async function and decorate it with @vinyl.atomic(retries=...)"
            )
        current = scopes.active_scope(self.using)
        if current is None:
            root = await checkouts.checkout(self.using, in_block=True)
            token = scopes._active.set({**scopes._active.get(), self.using: root})
            self._push(_Level(root, token=token))
            return
        # A task that outlived its block may not start a new transaction
        # behind the block's back either.
        current.check_open()
        outermost = _outside_user_block(current)
        if self.durable and not outermost:
            raise RuntimeError(
                "A durable atomic block cannot be nested within another atomic block."
            )
        if not self.savepoint or current.needs_rollback:
            # As in Django: no savepoint to undo this block on its own.
            self._push(_Level(current))
            return
        cm = savepoints.savepoint(current, in_block=True)
        level = await cm.__aenter__()
        self._push(_Level(level, savepoint=cm))

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        level = self._pop()
        if level.savepoint is not None:
            await level.savepoint.__aexit__(exc_type, exc, tb)
        elif level.token is not None:
            scopes._active.reset(level.token)
            await _exit_outermost(level.scope, exc)
        elif exc is not None:
            # No savepoint to undo this block: the enclosing one must roll back.
            level.scope.needs_rollback = True


def _outside_user_block(scope: scopes.Scope) -> bool:
    """Is ``scope`` a level no application block owns (a test's transaction)?"""
    return scope.transparent or (scope.root.transparent and not scope.in_block)


async def _exit_outermost(root: scopes.Scope, exc: BaseException | None) -> None:
    if exc is not None and not isinstance(exc, Exception):
        # Cancelled (or closed) mid-block: the connection's state is unknown,
        # so it is discarded, once a statement another of the block's tasks
        # is running has finished (it must not be cut from under it).
        try:
            await savepoints.end(root)
        finally:
            root.invalidate()
            await checkouts.discard(root.connection)
            root.close()
        return
    if root.lock.locked():
        try:
            # Let a statement that one of the block's tasks is running finish.
            await savepoints.end(root)
        except BaseException:
            await checkouts.discard(root.connection)
            raise
    else:
        root.stop()  # (savepoints.end() without its coroutine: nothing runs)
    # As in Django, a block marked for rollback by an error that was caught
    # inside it rolls back on exit.
    committed = exc is None and not root.needs_rollback
    pending = callbacks.take_callbacks(root)
    await checkouts.release(root, commit=committed)
    if committed and pending:
        await callbacks.run_callbacks(pending)


def on_commit(func: Callable[[], Any], using: str = DEFAULT_ALIAS, robust: bool = False) -> None:
    """Run ``func`` after the outermost transaction on ``using`` commits.

    Inside ``atomic`` the callback is dropped if the block (or the nested
    block that registered it) rolls back. Outside a transaction a sync
    ``func`` runs at once and an async one is scheduled as a task.
    """
    if not callable(func):
        raise TypeError(f"on_commit() takes a callable, got {func!r}")
    scope = scopes.active_scope(using)
    if scope is not None and not scope.transparent:
        scope.check_open()
        if not scope.root.owned and not scope.root.transparent:
            raise TransactionManagementError(
                f"on_commit() cannot be used inside vinyl.use_connection() on "
                f"{using!r}: the transaction belongs to your SQLAlchemy code, so "
                f"run the callback after you commit it"
            )
        callbacks.add_callback(scope, func, robust)
        return
    try:
        result = func()
    except Exception:
        if not robust:
            raise
        logger.exception("vinyl on_commit callback %r failed", func)
        return
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        _background.add(task)
        task.add_done_callback(_background.discard)


@asynccontextmanager
async def use_connection(conn: AsyncConnection, using: str = DEFAULT_ALIAS) -> AsyncIterator[AsyncConnection]:
    """Run every vinyl query on ``using`` on ``conn``, inside its transaction.

    ::

        async with engine.begin() as conn:
            await conn.execute(insert(audit).values(...))
            async with vinyl.use_connection(conn):
                await Book.vinyl.create(title="x")   # same transaction

    The transaction stays the caller's: vinyl never commits nor rolls it
    back (a transaction is begun if none is). Nested ``atomic`` blocks are
    savepoints. Do not use ``conn`` directly while vinyl tasks run on it.
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
    scope = scopes.Scope(using, conn, entry, owned=False, in_block=True)
    failed = False
    async with scopes.activate(scope):
        try:
            yield conn
        except BaseException:
            failed = True
            raise
        finally:
            await savepoints.end(scope)
    if scope.needs_rollback and not failed:
        raise TransactionManagementError(
            f"a vinyl operation failed inside use_connection() on {using!r} and "
            f"left its transaction unusable: roll the connection's transaction back"
        )


@asynccontextmanager
async def rolled_back(using: str = DEFAULT_ALIAS) -> AsyncIterator[AsyncConnection]:
    """Run the block in a transaction of ``using`` that is rolled back at the end.

    The block behaves as if the transaction were not there (each operation
    gets a savepoint, so an error does not break the next one; the
    outermost ``atomic`` inside may be durable and runs its on_commit
    callbacks when it ends). ``vinyl.testing`` builds on it.
    """
    root = await checkouts.checkout(using)
    root.transparent = True
    try:
        async with scopes.activate(root):
            yield root.connection
    except BaseException as exc:
        if not isinstance(exc, Exception):
            root.invalidate()
            await checkouts.discard(root.connection)
            root.close()
            raise
        await savepoints.end(root)
        await checkouts.release(root, commit=False)
        raise
    await savepoints.end(root)
    await checkouts.release(root, commit=False)
