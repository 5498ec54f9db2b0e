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
work inside the nested block instead. Such a wait, found through tasks and
``gather``, fails the sibling's statement: see vinyl.engine.lock.)

Two context variables say which scope is in force:

- ``_active`` maps an alias to the scope of the enclosing ``async with``
  block (``atomic``, ``use_connection``); child tasks inherit it.
- ``_bound`` maps an alias to the scope whose connection the sync code that
  runs inside :meth:`Scope.run_sync` must use. It is set only for the
  duration of one ``run_sync`` call, so it never leaks across an ``await``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator, Callable, TypeVar

from django.db import utils as django_db
from django.db.transaction import TransactionManagementError
from sqlalchemy.ext.asyncio.engine import AsyncConnection
from sqlalchemy.util import greenlet_spawn

from vinyl.engine.disconnects import note_lost_connection, raise_as_django
from vinyl.engine.engines import EngineEntry
from vinyl.engine.lock import StatementLock
from vinyl.engine.shield import finish
from vinyl.exceptions import TransactionScopeEnded, server_ended_transaction

from vinyl._compat import in_greenlet as _in_greenlet

T = TypeVar("T")

logger = logging.getLogger("vinyl.transaction")

_active: ContextVar[dict[str, "Scope"]] = ContextVar("vinyl_active_scopes", default={})
_bound: ContextVar[dict[str, "Scope"]] = ContextVar("vinyl_bound_scopes", default={})


class State(enum.Enum):
    """Where a scope's connection is in its life (see :meth:`Scope.move`).

    A pooled connection is idle in the pool; a scope exists from its
    checkout to its return, or for the life of a level inside a transaction.
    """

    #: A root without a transaction: each statement commits on its own.
    CHECKED_OUT = "checked out"
    #: A root with its transaction open. A transaction vinyl owns is begun
    #: lazily, right before its first statement (see :meth:`Scope.begin`):
    #: until then no BEGIN was sent, and none is if no statement runs.
    IN_TRANSACTION = "in transaction"
    #: A level inside a transaction: a savepoint, or the level the bridge
    #: gives coroutines that sync code awaits.
    IN_SAVEPOINT = "in savepoint"
    #: A root whose connection a stream's cursor holds.
    STREAMING = "streaming"
    #: Interrupted mid-statement, lost, or its transaction ended by the
    #: server: no statement runs on it any more, and it is discarded, never
    #: given back to the pool.
    INVALID = "invalid"
    #: Over: given back, discarded, or the level ended. Tasks still holding
    #: it get TransactionScopeEnded.
    CLOSED = "closed"


_CLOSED, _INVALID = State.CLOSED, State.INVALID
_IN_TRANSACTION, _CHECKED_OUT, _IN_SAVEPOINT = State.IN_TRANSACTION, State.CHECKED_OUT, State.IN_SAVEPOINT

_TRANSITIONS: dict[State, frozenset[State]] = {
    State.CHECKED_OUT: frozenset({State.STREAMING, State.INVALID, State.CLOSED}),
    State.IN_TRANSACTION: frozenset({State.STREAMING, State.INVALID, State.CLOSED}),
    State.IN_SAVEPOINT: frozenset({State.INVALID, State.CLOSED}),
    State.STREAMING: frozenset({State.INVALID, State.CLOSED}),
    State.INVALID: frozenset({State.INVALID, State.CLOSED}),
    State.CLOSED: frozenset({State.CLOSED}),
}


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
        "state",
        "owned",
        "in_block",
        "transparent",
        "needs_rollback",
        "bridge_task",
        "transactional",
        "begins_lazily",
        "known_pooled",
        "known_adapter",
        "known_driver",
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
        self.lock = StatementLock()
        self.parent = parent
        self.root: Scope
        # State of the connection that upper layers keep here (the Django
        # wrapper's flags); shared by every level of the transaction.
        self.connection_state: dict[str, Any]
        # Did vinyl begin a transaction? A root without one (a read, or a
        # single write where the driver autocommits) commits each statement
        # on its own, and Django's own code may begin one, as on its
        # connections.
        self.transactional: bool
        # Does vinyl begin the root's transaction itself, right before its
        # first statement (see begin())? Not on a connection the caller
        # owns (use_connection): its transaction is the caller's.
        self.begins_lazily: bool
        # The one place the connection's life is recorded (see move()).
        self.state: State
        if parent is None:  # (one test for the five: every block makes a root)
            self.root = self
            self.connection_state = {}
            self.transactional = transactional
            self.begins_lazily = owned and transactional
            self.state = _IN_TRANSACTION if transactional else _CHECKED_OUT
        else:
            self.root = parent.root
            self.connection_state = parent.connection_state
            self.transactional = parent.transactional
            self.begins_lazily = parent.begins_lazily
            self.state = _IN_SAVEPOINT
        # State of this level only (on_commit callbacks of a savepoint).
        self.attachments: dict[str, Any] = {}
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
        # Must this level roll back (a write in it failed, cancelled or not,
        # or a cancellation cut an operation short: see invalidate())?
        self.needs_rollback = False
        # The task whose sync code is running in run_sync() right now.
        self.bridge_task: asyncio.Task | None = None
        # The pooled connection (SQLAlchemy's PoolProxiedConnection) its
        # statements last ran on, its driver adapter (DB-API connection) and
        # that adapter's driver connection (see drivers()).
        self.known_pooled: Any = None
        self.known_adapter: Any = None
        self.known_driver: Any = None

    def __repr__(self) -> str:
        kind = "root" if self.parent is None else "child"
        return f"<vinyl Scope {kind} of {self.alias!r}, {self.state.value}>"

    def move(self, to: State) -> None:
        """Make the transition to ``to``, the only way a scope's state changes.

        A closed scope stays closed; any other transition not in the table
        is a bug in vinyl and raises.
        """
        state = self.state
        if state is _CLOSED:
            return
        if to is _CLOSED:
            # (Every state may close: the table is not asked, which costs
            # two calls of Enum.__hash__, once or twice per transaction.)
            self.state = to
            return
        if to not in _TRANSITIONS[state]:
            raise RuntimeError(f"vinyl: a scope cannot go from {self.state.value} to {to.value}")
        self.state = to

    def close(self) -> None:
        """Mark the scope over (see :attr:`State.CLOSED`)."""
        self.move(State.CLOSED)

    def stop(self) -> None:
        """No more statements in this level: closed, unless it is invalid,
        which it stays until its connection is discarded (so that its end
        knows the connection must not go back to the pool)."""
        if self.state is not State.INVALID:
            self.move(State.CLOSED)

    def invalidate(self) -> None:
        """Mark the root's connection unusable (see :attr:`State.INVALID`)."""
        self.root.move(State.INVALID)
        self.needs_rollback = True

    @property
    def ended(self) -> bool:
        """Is this level, or the transaction it is in, over?"""
        return self.state is State.CLOSED

    @property
    def invalid(self) -> bool:
        """Must the root's connection be discarded (see :attr:`State.INVALID`)?"""
        return self.root.state is State.INVALID

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
        return self.connection.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]  # started

    def drivers(self) -> tuple[Any, Any]:
        """Return the driver adapter and the driver connection of the scope's
        connection: ``(dbapi_connection(), driver connection)``.

        Every statement of a block asks. The chain of properties from the
        SQLAlchemy connection down to the driver's connection is walked once,
        and its ends kept on the root for the levels of the transaction. The
        pooled connection at its start says whether they still hold: its
        ``dbapi_connection`` is set to None when it is invalidated or given
        back, the only ways the SQLAlchemy connection lets go of it (after
        which SQLAlchemy's property, asked again, knows what to do).
        """
        root = self.root
        pooled = root.known_pooled
        if pooled is not None:
            adapter = pooled.dbapi_connection
            if adapter is not None and adapter is root.known_adapter:
                return adapter, root.known_driver
        pooled = self.connection.sync_connection.connection  # type: ignore[union-attr]  # started
        adapter = pooled.dbapi_connection
        driver = pooled.driver_connection
        root.known_pooled, root.known_adapter, root.known_driver = pooled, adapter, driver
        return adapter, driver

    def check_open(self) -> None:
        # (ended of both, without the properties: every statement asks twice)
        if self.state is State.CLOSED or self.root.state is State.CLOSED:
            raise TransactionScopeEnded(
                f"this task inherited a vinyl transaction on {self.alias!r} that "
                f"has already ended: await the task inside its `async with "
                f"vinyl.atomic()` block, or start it outside the block"
            )

    def unbegun(self) -> bool:
        """Is the transaction vinyl owns here still to begin (no statement
        has run in it yet)?

        Whether it has begun is SQLAlchemy's state of the connection: code
        that shares it (a savepoint, SQLAlchemy Core statements) begins it
        the same way, through SQLAlchemy's autobegin.
        """
        return self.begins_lazily and not self.connection.sync_connection.in_transaction()  # type: ignore[union-attr]  # started

    async def begin(self) -> None:
        """Begin the transaction, right before its first statement.

        SQLAlchemy's begin, in the greenlet: the backend's ``begin`` listener
        sends what the server needs (MySQL's BEGIN; the asyncpg adapter sends
        its own with the first statement). A failed BEGIN leaves the
        connection in an unknown state: the scope is invalid from then on.
        """
        try:
            await greenlet_spawn(self.connection.sync_connection.begin)  # type: ignore[union-attr]  # started
        except BaseException as exc:
            self.invalidate()
            if isinstance(exc, Exception):
                raise_as_django(self.entry, exc)
            raise

    def check_transaction(self) -> tuple[Any, Any] | None:
        """Refuse to run a statement in a transaction the server has ended.

        MySQL rolls a whole transaction back on a deadlock and then commits
        each following statement on its own: the rest of an ``atomic`` block
        would be half committed. (A cheap check of the driver's last status,
        no round trip.) A transaction not begun yet has nothing to lose.

        Returns what :meth:`drivers` returned if it was asked (so the
        transaction has begun), for the statement that follows; else None.
        """
        root = self.root
        if root.state is _INVALID:
            raise _lost_transaction_error(self.alias)
        if not self.entry.checks_transaction:
            return None
        config = self.entry.config
        if not (root.transactional and config.in_transaction):
            return None
        if not self.connection.sync_connection.in_transaction():  # type: ignore[union-attr]  # started
            return None
        # (drivers() written out: its usual answer, every statement of a
        # block asks on MySQL)
        pooled = root.known_pooled
        adapter = pooled.dbapi_connection if pooled is not None else None
        if adapter is not None and adapter is root.known_adapter:
            drivers = adapter, root.known_driver
        else:
            try:
                drivers = self.drivers()
            except Exception as exc:
                # SQLAlchemy let go of the connection (invalidated): its error
                # (PendingRollbackError) is raised as Django's, as a statement's is.
                raise_as_django(self.entry, exc)
                raise
        if not config.in_transaction(drivers[1]):
            self.invalidate()
            raise _lost_transaction_error(self.alias)
        return drivers

    def note_error(self, exc: BaseException) -> None:
        """Remember an error after which the server has ended the transaction."""
        if self.entry.checks_transaction and server_ended_transaction(exc):
            self.invalidate()

    def note_failure_under_cancel(self, cancel: asyncio.CancelledError) -> bool:
        """Did the operation that ``cancel`` interrupted fail? If so, note
        its error as if it had been raised (a lost connection, a transaction
        the server ended) and keep it, as Django's, as the cause of ``cancel``.

        A statement runs to its end even if its task is cancelled meanwhile
        (see ``finish``), which then raises the cancellation with the
        statement's error, if it failed, as its cause; the caller marks the
        block as that error alone would, then lets the cancellation go on.
        """
        error = cancel.__cause__
        if not isinstance(error, Exception):
            return False
        try:
            raise_as_django(self.entry, error)
        except Exception as mapped:
            mapped.__context__ = None  # (not ``cancel``, which it becomes the cause of)
            cancel.__cause__ = error = mapped
        self.note_error(error)
        return True

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run sync code whose database calls execute on this scope's connection."""
        self.check_open()
        async with self.lock:
            self.check_open()
            self.check_transaction()
            token = _bound.set({**_bound.get(), self.alias: self})
            task = asyncio.current_task()
            self.bridge_task = task
            # The sync code's statements run in the transaction: begun first
            # if none of the block's has run yet, in the same greenlet trip.
            call = _begin_and_call if self.unbegun() else _call
            try:
                if self.exclusive:
                    return await self.connection.run_sync(call, self, fn, args)
                # Tasks share this connection: a statement cut short by a
                # cancellation would leave it unusable for them (SQLAlchemy
                # invalidates it, asyncmy closes it), so it runs to its end
                # and the cancellation is raised after.
                return await finish(self.connection.run_sync(call, self, fn, args))
            except BaseException as exc:
                if isinstance(exc, Exception) and not _cancel_turned_error(task, exc):
                    self.note_error(exc)
                    note_lost_connection(self.entry, exc)
                    # Errors raised outside Django's cursor (SQLAlchemy's
                    # BEGIN at the first statement...) are Django's too.
                    raise_as_django(self.entry, exc)
                    raise
                if self.exclusive:
                    # Interrupted mid-operation, the statement maybe cut
                    # short: what ran of it cannot be kept.
                    self.invalidate()
                elif isinstance(exc, asyncio.CancelledError):
                    # Shared: the operation ran to its end (see above), as a
                    # planned statement does: no failure, unless it failed,
                    # and then Django's code marked the block, as for any
                    # failed write; its error is the cancellation's cause.
                    self.note_failure_under_cancel(exc)
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
        f"the transaction on {alias!r} can run no more statements: the server "
        f"rolled it back by itself (after a deadlock), or a statement in it was "
        f"interrupted; its statements were undone: leave the atomic block and "
        f"run it again"
    )


def _call(_sync_conn: Any, _scope: Scope, fn: Callable[..., T], args: tuple) -> T:
    return fn(*args)


def _begin_and_call(sync_conn: Any, scope: Scope, fn: Callable[..., T], args: tuple) -> T:
    # In the greenlet: Scope.begin(), then the sync code.
    if not sync_conn.in_transaction():
        try:
            sync_conn.begin()
        except BaseException:
            scope.invalidate()  # as in Scope.begin()
            raise
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


def refuse_if_broken(scope: Scope) -> None:
    """Refuse a statement in a block an earlier error left only able to roll
    back (:func:`write_failed`), as Django refuses it."""
    if scope.needs_rollback and scope.in_block:
        raise TransactionManagementError(
            "An error occurred in the current transaction. You can't execute "
            "queries until the end of the 'atomic' block (catch the error "
            "outside a nested atomic block to go on after it)."
        )


def is_failure(exc: BaseException) -> bool:
    """Does ``exc`` say the operation failed: an error, or the cancellation
    of an operation that failed meanwhile (its error the cause, see
    ``finish``)? A failed write marks its block (:func:`write_failed`); a
    cancellation of one that ran whole does not."""
    return isinstance(exc, Exception) or (isinstance(exc, asyncio.CancelledError) and isinstance(exc.__cause__, Exception))


def write_failed(alias: str) -> None:
    """A write of ``alias`` failed: its enclosing block can only roll back now.

    As Django's ``atomic(savepoint=False)`` (``bulk_create``, ``delete``...)
    and ``mark_for_rollback_on_error`` (``save``, ``update``) leave a block,
    whatever the exception: a database's error, a driver's refusing a value
    before sending it, a value no field accepts. Under a test's transaction
    with no block of the application's (transparent), an operation's
    failure breaks nothing, as it gets a savepoint.
    """
    scope = _active.get().get(alias)
    if scope is not None and not scope.transparent:
        scope.needs_rollback = True


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


@asynccontextmanager
async def activate(scope: Scope) -> AsyncIterator[Scope]:
    """Make ``scope`` the one every vinyl statement on its alias runs in."""
    token = _active.set({**_active.get(), scope.alias: scope})
    try:
        yield scope
    finally:
        _active.reset(token)
