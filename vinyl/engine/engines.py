"""One SQLAlchemy ``AsyncEngine`` per vinyl alias, built lazily from settings.

The engine layer knows database aliases, URLs and pools; it knows nothing of
Django models. The backend of an alias describes its engine with an
:class:`EngineConfig` (see ``vinyl/_backend/base.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import weakref
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio.engine import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from django.db import connections

from sqlalchemy.util import await_, greenlet_spawn

from vinyl._compat import current_loop, invalidated_at, logs_as_its_engine, quiet_checkout, running_loop, stale_entry
from vinyl._compat import invalidate_pool as _invalidate_pool
from vinyl.engine.fairpool import FairAsyncQueuePool, FairQueue, fair_queue
from vinyl.engine.loopclose import close_with_loop, sever
from vinyl.engine.sqlevents import log_engine_events
from vinyl.exceptions import VinylConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DEFAULT_ALIAS = "vinyl_default"

logger = logging.getLogger("vinyl.engine")

#: Wait for a coroutine from sync code running in SQLAlchemy's greenlet.
sa_await: Callable[[Awaitable[Any]], Any] = await_

#: A pooled connection (SQLAlchemy's) and its driver connection, kept together.
Held = tuple[Any, Any]
FactsLoader = Callable[[AsyncConnection], Awaitable[dict[str, Any]]]


class DriverCursor(Protocol):
    """An open result on a driver connection, read a chunk at a time."""

    def fetchmany(self, size: int) -> Awaitable[list]:
        """Return up to ``size`` more rows; fewer once the result is exhausted."""

    async def close(self) -> None:
        """Free the result, so the connection can run other statements."""


#: Opens a streamed read on a driver connection: ``(conn, sql, params, shared)``;
#: ``shared`` says other statements may run on the connection between chunks.
StreamOpener = Callable[[Any, str, tuple, bool], Awaitable[DriverCursor]]


class EngineConfig:
    """What a backend tells the engine layer about one alias."""

    # Plain classes, not dataclasses, here and below: building a dataclass
    # costs about 0.5 ms at import, paid by every cold start.
    def __init__(
        self,
        url: URL,
        engine_kwargs: dict[str, Any] | None = None,
        load_facts: FactsLoader | None = None,
        configure: Callable[[AsyncEngine], None] | None = None,
        autocommit_options: dict[str, Any] | None = None,
        in_transaction: Callable[[Any], bool] | None = None,
        idle: Callable[[Any], bool] | None = None,
        fetch: Callable[[Any, str, tuple], Awaitable[list]] | None = None,
        execute: Callable[[Any, str, tuple], Awaitable[int]] | None = None,
        insert_id: Callable[[Any, str, tuple], Awaitable[list]] | None = None,
        map_error: Callable[[BaseException], BaseException] | None = None,
        start_transaction: Callable[[Any], Awaitable[None] | None] | None = None,
        stream: StreamOpener | None = None,
        stream_transaction: bool = False,
        server_may_end_transaction: bool = False,
    ) -> None:
        self.url = url
        self.engine_kwargs = {} if engine_kwargs is None else engine_kwargs
        # Reads server facts (version, modes) once per engine, asynchronously.
        self.load_facts = load_facts
        # Called once on each engine vinyl builds (event listeners, e.g. SQLite's
        # explicit BEGIN); engines handed over with set_engine are left as they are.
        self.configure = configure
        # The execution options that put a connection in autocommit without a
        # round trip ({} where pooled connections autocommit until a transaction
        # begins; None where switching costs one).
        self.autocommit_options = autocommit_options
        # Does the driver connection have a transaction open? Given, the pool
        # rolls back on return only when it does, instead of always.
        self.in_transaction = in_transaction
        # Does the driver connection go back to the pool with no I/O (no
        # transaction open, nothing to restore)?
        self.idle = idle
        # Runs a statement straight on the driver connection: (conn, sql, params)
        # -> rows. Errors come back as Django's through map_error.
        self.fetch = fetch
        # Runs a write straight on the driver connection: (conn, sql, params) ->
        # the number of rows it matched.
        self.execute = execute
        # Runs an INSERT of one row straight on the driver connection: (conn,
        # sql, params) -> [(the auto-increment key it generated,)], the rows a
        # RETURNING of that key would give. None where RETURNING is the way.
        self.insert_id = insert_id
        self.map_error = map_error
        # Starts the transaction the driver adapter has begun only lazily (at
        # its first statement), before vinyl runs a statement on the driver
        # connection below it: (adapter connection) -> the awaitable that sends
        # its BEGIN, or None when there is none to send.
        self.start_transaction = start_transaction
        # Opens a server-side cursor for a streamed read (see StreamOpener).
        self.stream = stream
        # Does such a cursor need a transaction outside a block (asyncpg's
        # portals do; elsewhere a stream reads on an autocommitting connection)?
        self.stream_transaction = stream_transaction
        # Can the server end a transaction on an error and run the next
        # statements in autocommit (MySQL: a deadlock, a lock wait timeout)?
        # Then each statement of a transaction first checks it is still open.
        self.server_may_end_transaction = server_may_end_transaction


class EngineEntry:
    """What vinyl keeps per (alias, event loop): the engine and its state."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: EngineConfig,
        loop: asyncio.AbstractEventLoop | None = None,
        facts: dict[str, Any] | None = None,
        facts_lock: asyncio.Lock | None = None,
        plans: Any = None,
        settings: Any = None,
        autocommit_options: dict[str, Any] | None = None,
        quiet_checkin: bool = False,
        stale: dict[int, weakref.ref] | None = None,
        entries: dict[int, weakref.ref] | None = None,
        invalidated_at: float = 0,
        queue_pool: Any = None,
        queue: FairQueue | None = None,
        spares: list[Held] | None = None,
        spare_check: asyncio.TimerHandle | None = None,
        kept: tuple[Any, AsyncConnection] | None = None,
        closer: Any = None,
        checks_transaction: bool = False,
        connect_failure: asyncio.Future | None = None,
        opened: dict[int, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.loop = loop
        self.facts = facts
        self.facts_lock = facts_lock
        # Compiled plans by query shape: the translate layer's PlanCache
        # (vinyl.translate.plan_cache), made on first use; it goes with the engine.
        self.plans = plans
        # The settings the engine was built from: new settings, new engine.
        self.settings = settings
        # config.autocommit_options where they hold for this engine (None on an
        # application's engine when they rely on vinyl's configure hook).
        self.autocommit_options = autocommit_options
        # Does a connection that config.idle() says is idle go back to this engine's
        # pool without I/O (vinyl's reset and checkin listeners)?
        self.quiet_checkin = quiet_checkin
        # Pool entries the pool reconnects at their next checkout (invalidated,
        # or older than the pool's invalidation, see mark_stale), not yet
        # reconnected: while there are any, a checkout may have to reconnect,
        # which needs the greenlet, and no connection is kept as a spare or
        # handed over. (A dict by id of weak references, each dropped when its
        # entry is: its truth is read by every statement, in C, where a
        # WeakSet's len() is Python.)
        self.stale = {} if stale is None else stale
        # Every entry of the pool that has connected (as ``stale``): those an
        # invalidation of the pool may make stale.
        self.entries = {} if entries is None else entries
        # The pool's invalidation time (vinyl._compat.invalidated_at) whose
        # stale entries ``stale`` holds: a pool whose time has moved since
        # has stale entries ``stale`` does not know of yet (see mark_stale).
        self.invalidated_at = invalidated_at
        # The pool whose fair queue ``queue`` is (see fair_queue_of).
        self.queue_pool = queue_pool
        self.queue = queue
        # ``queue_pool`` while quiet_checkout() holds for it: vinyl's own pool
        # (its invalidations reach this entry as they happen, see
        # FairAsyncQueuePool._invalidate and mark_stale), with no pre-ping nor
        # recycling (fixed when the pool is made); else None. A statement that
        # finds the engine's pool to be this one asks only ``entry.stale``
        # before it keeps its connection (see statements._give_back_now).
        self.quiet_queue_pool: Any = None
        # Idle connections kept checked out for the next statements (see
        # keep_spare): each a ``Held`` pair, the pooled connection with its
        # driver connection. On vinyl's pool its fair queue holds the same
        # list (see fair_queue_of), so that a checkout through the pool takes
        # a spare back. Changed in place only.
        self.spares = [] if spares is None else spares
        # The loop's timer that checks the spares in: SPARE_IDLE_SECONDS after
        # the first one kept on vinyl's pool, at the loop's next step on
        # another (cancelled there when the step takes them all back).
        self.spare_check = spare_check
        # The SQLAlchemy connection of the last block whose idle connection
        # became a spare (see keep_block_connection), with that pooled
        # connection: the next block that takes this spare runs on it again.
        self.kept = kept
        # The context the check-in of spare connections runs in (see
        # keep_spare): one per entry, so per loop and thread (a Context is
        # entered by one thread at a time).
        self.spare_context = contextvars.Context()
        # Disposes of the engine when its loop shuts down (see loopclose.py).
        self.closer = closer
        # Does each statement of a transaction check it is still open (see
        # EngineConfig.server_may_end_transaction)?
        self.checks_transaction = checks_transaction
        # Resolved with the error when a connect fails, for the tasks waiting
        # for a connection of a full pool (see scope._pooled).
        self.connect_failure = connect_failure
        # The driver connections the pool has open, cut if their loop dies.
        # (by id: the driver adapters take no weak references).
        self.opened = {} if opened is None else opened


# One entry per (alias, event loop): a pool's connections belong to the loop
# that opened them, so two threads each running a loop never share a pool.
# (None: an engine asked for outside any loop, adopted by the first loop.)
_entries: dict[tuple[str, asyncio.AbstractEventLoop | None], EngineEntry] = {}
# Engines that users handed to vinyl for an alias (one pool for the app).
_user_engines: dict[str, AsyncEngine] = {}
# Disposals of engines whose settings changed, kept until they finish.
_retiring: set[asyncio.Task] = set()
# Closes of connections that need the driver (an overflow connection given
# back to a full pool), kept until they finish; a disposal waits for them.
_closing: set[asyncio.Task] = set()


def _config_for(using: str) -> EngineConfig:
    from django.db.utils import ConnectionDoesNotExist

    try:
        wrapper = connections[using]
    except ConnectionDoesNotExist:
        raise VinylConfigurationError(
            f"the database alias {using!r} is not in settings.DATABASES: add an "
            f"entry with 'ENGINE': 'vinyl.postgresql_backend' (or "
            f"vinyl.mysql_backend, vinyl.sqlite_backend) under that name"
        ) from None
    build = getattr(wrapper, "vinyl_engine_config", None)
    if build is None:
        raise VinylConfigurationError(
            f"the database alias {using!r} uses ENGINE "
            f"{wrapper.settings_dict.get('ENGINE')!r}, which is not a vinyl "
            f"backend: use 'vinyl.postgresql_backend', 'vinyl.mysql_backend' or "
            f"'vinyl.sqlite_backend'"
        )
    return build()


def _settings_of(using: str) -> Any:
    return connections.settings.get(using)


def _keys_of(entry: EngineEntry) -> list[tuple[str, Any]]:
    return [key for key, value in _entries.items() if value is entry]


def _forget(entry: EngineEntry) -> None:
    for key in _keys_of(entry):
        _entries.pop(key, None)


def engine_entry(using: str) -> EngineEntry:
    """Return the registry entry (engine, config, server facts) of ``using``."""
    loop = current_loop()
    entry = _entries.get((using, loop))
    if entry is not None and connections.settings.get(using) is entry.settings:
        return entry  # the usual case: this loop's engine, same settings object
    if entry is None and loop is not None:
        # An engine asked for outside any loop is adopted by the first one.
        entry = _entries.pop((using, None), None)
        if entry is not None:
            entry.loop = loop
            _entries[(using, loop)] = entry
            _close_with_loop(entry)
    if entry is not None:
        current = _settings_of(using)
        if current is not entry.settings and current != entry.settings:
            # DATABASES changed under this alias (override_settings...):
            # never run the new settings' SQL on the old engine.
            _retire(entry)
            entry = None
    if entry is not None:
        return entry
    _drop_engines_of_closed_loops(using)
    config = _config_for(using)
    engine = _user_engines.get(using)
    autocommit_options = config.autocommit_options
    quiet_checkin = (
        engine is None
        and config.in_transaction is not None
        and config.idle is not None
        and "pool_reset_on_return" not in config.engine_kwargs
    )
    if engine is None:
        engine = _create_engine(config)
        if config.configure is not None:
            config.configure(engine)
        # vinyl's SQLite engines send BEGIN as a statement (logged as one).
        log_engine_events(engine, using, log_begin=engine.dialect.name != "sqlite")
    else:
        if config.configure is not None:
            autocommit_options = None
        log_engine_events(engine, using)
    entry = EngineEntry(
        engine=engine,
        config=config,
        loop=loop,
        settings=_settings_of(using),
        autocommit_options=autocommit_options,
        quiet_checkin=quiet_checkin,
        # Only on vinyl's own engines does a transaction begin with an
        # explicit BEGIN that the driver's status reports at once.
        checks_transaction=config.server_may_end_transaction and using not in _user_engines,
    )
    _entries[(using, loop)] = entry
    if loop is not None:
        _close_with_loop(entry)
    if quiet_checkin:
        _track_stale_connections(entry)
    _track_open_connections(entry)
    return entry


def _drop_engines_of_closed_loops(using: str) -> None:
    """Forget the engines of ``using`` whose loop has closed (pytest-asyncio,
    repeated asyncio.run): their connections can only be cut, never reused."""
    for (alias, loop), entry in list(_entries.items()):
        if alias == using and loop is not None and loop.is_closed():
            _abandon(entry)


def _close_with_loop(entry: EngineEntry) -> None:
    if entry.engine not in _user_engines.values():
        close_with_loop(entry, _dispose_at_loop_end)


async def _dispose_at_loop_end(entry: EngineEntry) -> None:
    if not _keys_of(entry):
        return  # already disposed, retired or replaced
    _forget(entry)
    await _dispose_entry(entry)


async def _dispose_entry(entry: EngineEntry) -> None:
    """Close the pool of ``entry`` on its own loop: every connection closes
    where the driver can close it, and none is left on the server."""
    check_in_spares(entry)
    await _closes_done()
    await entry.engine.dispose()


async def _closes_done() -> None:
    current = asyncio.current_task()
    pending = [task for task in _closing if task.get_loop() is running_loop() and task is not current]
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def _track_stale_connections(entry: EngineEntry) -> None:
    stale, entries = entry.stale, entry.entries

    def invalidated(dbapi_connection: Any, record: Any, *args: Any) -> None:
        _note(stale, record)
        # A lost connection invalidates the pool first (SQLAlchemy's
        # disconnect handling): its older connections are stale too.
        mark_stale(entry)

    def connected(dbapi_connection: Any, record: Any) -> None:
        stale.pop(id(record), None)
        if id(record) not in entries:
            _note(entries, record)

    target = entry.engine.sync_engine
    event.listen(target, "invalidate", invalidated)
    event.listen(target, "soft_invalidate", invalidated)
    event.listen(target, "connect", connected)


def _note(found: dict[int, weakref.ref], record: Any) -> None:
    key = id(record)
    # (The callback runs before the id can be reused; a reference dropped
    # from the dict first never calls back.)
    found[key] = weakref.ref(record, lambda _ref: found.pop(key, None))


def mark_stale(entry: EngineEntry) -> None:
    """Catch up with the invalidations of the pool of ``entry``.

    A pool invalidated (a lost connection: SQLAlchemy's reaction, or
    vinyl's, see :func:`invalidate_pool`) reconnects every connection it
    opened before at its next checkout, idle or checked out then: those go
    to ``entry.stale``, by SQLAlchemy's own test of each. They leave it as
    they reconnect (checkouts through the greenlet take them first, see
    quiet_pool), and checkouts are quiet again, and spares kept, once none
    is left.
    """
    if not entry.quiet_checkin:
        return  # (no stale entries tracked: nothing is ever quiet)
    pool = entry.engine.sync_engine.pool
    entry.invalidated_at = invalidated_at(pool)
    if pool is entry.queue_pool:
        _note_quiet_queue_pool(entry)
    stale = entry.stale
    for ref in list(entry.entries.values()):
        record = ref()
        if record is not None and id(record) not in stale and stale_entry(record):
            _note(stale, record)


def _track_open_connections(entry: EngineEntry) -> None:
    """Keep the driver connections of ``entry``'s pool, to cut them when the
    loop they belong to dies with them open (see :func:`_abandon`)."""

    def connected(dbapi_connection: Any, record: Any) -> None:
        entry.opened[id(dbapi_connection)] = dbapi_connection

    def closed(dbapi_connection: Any, record: Any = None) -> None:
        entry.opened.pop(id(dbapi_connection), None)

    target = entry.engine.sync_engine
    event.listen(target, "connect", connected)
    event.listen(target, "close", closed)
    event.listen(target, "close_detached", closed)


def open_connections(using: str = DEFAULT_ALIAS) -> int:
    """How many driver connections the pool of ``using`` (on this event loop)
    has open right now, checked out or idle."""
    entry = _entries.get((using, running_loop()))
    return len(entry.opened) if entry is not None else 0


def checkout_needs_no_io(entry: EngineEntry) -> bool:
    """Can a connection be taken from the pool of ``entry`` without I/O?

    Yes on an engine vinyl built when an idle connection waits in the pool
    and nothing makes checkout talk to the server: no pre-ping, no recycling,
    no invalidated connection waiting to reconnect.
    """
    pool: Any = entry.engine.sync_engine.pool  # QueuePool and its async variant
    if not (quiet_pool(entry) and pool.checkedin() > 0):
        return False
    # The entry a checkout takes next, asked itself where vinyl's queue
    # says which (a reconnect can fail after its connect event: the entry is
    # stale again, unknown to entry.stale).
    queue = entry.queue if pool is entry.queue_pool else fair_queue_of(entry)
    return queue is None or fresh_next(entry, queue)


def fresh_next(entry: EngineEntry, queue: FairQueue) -> bool:
    """Is the idle entry a checkout from ``queue`` takes next fresh (see
    mark_stale)? A stale one is added to ``entry.stale``."""
    record = queue.next_item()
    if record is None or not stale_entry(record):
        return True
    _note(entry.stale, record)
    return False


def quiet_pool(entry: EngineEntry) -> bool:
    """Does a checkout from the pool of ``entry`` never talk to the server
    (no pre-ping, recycling or stale connection, see mark_stale), and a
    checkin of an idle connection neither?"""
    if not entry.quiet_checkin:
        return False
    if entry.stale:
        _stale_first(entry)
        return False
    pool = entry.engine.sync_engine.pool
    if quiet_checkout(pool, entry.invalidated_at):
        return True
    if invalidated_at(pool) == entry.invalidated_at:
        return False  # pre-ping or recycling: any checkout may talk to the server
    # Invalidated since: find the stale connections (until they reconnect,
    # checkouts take the greenlet).
    mark_stale(entry)
    if entry.stale:
        _stale_first(entry)
        return False
    return quiet_checkout(pool, entry.invalidated_at)


def _stale_first(entry: EngineEntry) -> None:
    """Make the pool's next checkouts (through the greenlet) take its stale
    idle connections first, which reconnects them: none is left then,
    whatever the pool's order (a LIFO pool would hand out the same fresh one
    again and again)."""
    queue = fair_queue_of(entry)
    if queue is not None:
        queue.stale_first(stale_entry)


def room_in_pool(entry: EngineEntry) -> bool:
    """Does the pool of ``entry`` keep a connection given back now?

    A full pool closes an overflow connection given back to it: that close
    talks to the server, so it must run where the driver can (the greenlet).
    """
    pool: Any = entry.engine.sync_engine.pool
    size = getattr(pool, "size", None)
    if size is None:
        return False
    return pool.checkedin() < size()


def invalidate_pool(entry: EngineEntry) -> None:
    """Mark every connection the pool of ``entry`` opened so far as stale.

    SQLAlchemy's own reaction to a disconnect (``Pool._invalidate``, through
    vinyl._compat): each is replaced at its next checkout, idle or checked
    out now (see mark_stale); nothing is closed outside the greenlet and no
    waiter loses its pool.
    """
    _invalidate_pool(entry.engine.sync_engine.pool)
    mark_stale(entry)


def close_later(pooled: Any) -> None:
    """Give ``pooled`` back to its pool in the greenlet, from sync code."""
    task = asyncio.get_running_loop().create_task(greenlet_spawn(pooled.close))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


#: The longest an idle spare connection stays checked out of vinyl's pool
#: (FairAsyncQueuePool) with nobody taking it (see keep_spare), in seconds.
SPARE_IDLE_SECONDS = 1.0


def keep_spare(entry: EngineEntry, held: Held) -> None:
    """Keep an idle connection of a quiet pool checked out, for the next
    statement.

    Code that awaits one statement and then starts another (the next line
    of a view, the next iteration of a loop, the next request) takes this
    connection again (see :func:`take_idle`) instead of a checkout and
    checkin through the pool, about 20 µs each.

    On vinyl's own pool the spare stays checked out across loop steps; it
    goes back to the pool

    - when a statement finds tasks waiting in line (they get it), or
      connections waiting to reconnect after a disconnect (see take_idle);
    - when anything else asks the pool for a connection and none is idle:
      SQLAlchemy code sharing the pool, vinyl's checkouts through the
      greenlet, the pool's dispose (see FairQueue.get); so a spare never
      makes a task wait or the pool open a connection;
    - when the engine is disposed or retired, or its loop closes, or a lost
      connection invalidates the pool (see check_in_spares);
    - at the latest SPARE_IDLE_SECONDS after it was kept: the first spare
      kept arms one timer, which checks in every spare left when it fires,
      so the timer costs the statements of a busy application one timer
      per second, not one each.

    Until then ``pool.checkedout()`` counts it, and SQLAlchemy's checkin and
    checkout events fire when it goes back and when it leaves the pool.

    On another pool class (one an application chose, e.g. a NullPool for
    pgbouncer) nothing takes a spare back when the pool is asked: there it
    goes back at the loop's next step, so no task ever waits on it (a task
    blocked on the pool can only run after that step anyway). That check-in
    is a timer due at once rather than a ``call_soon`` callback: when this
    step takes every spare back, the timer is cancelled, and a cancelled
    timer, unlike a ready callback, does not make the loop run one more step
    without waiting for I/O. Its time is 0, long past (due at the next step
    as ``loop.time()`` is, without reading the clock).

    Either check-in runs in an empty context of the entry's own, not a copy
    of the statement's (the check-in of an idle connection reads no context
    variable).
    """
    entry.spares.append(held)
    if entry.spare_check is None:
        # (entry.loop: the running loop, whose engine_entry() this is; no
        # running_loop() and its system call, see vinyl._compat.current_loop)
        loop: Any = entry.loop or running_loop()
        if entry.queue is not None:
            # (entry.queue: the caller found it for the engine's pool)
            entry.spare_check = loop.call_later(SPARE_IDLE_SECONDS, _spares_due, entry, context=entry.spare_context)
        else:
            entry.spare_check = loop.call_at(0, _spares_due, entry, context=entry.spare_context)


def fair_queue_of(entry: EngineEntry) -> FairQueue | None:
    """The fair queue of the pool of ``entry`` (None for another pool class).

    Kept on the entry with its pool (an application may dispose of its
    engine, which replaces the pool): callers on every statement read
    ``entry.queue`` where ``entry.queue_pool`` is still the engine's pool.
    """
    pool = entry.engine.sync_engine.pool
    if pool is not entry.queue_pool:
        queue = entry.queue = fair_queue(pool)
        entry.queue_pool = pool
        if queue is not None:
            # The pool's checkouts take the entry's spares back (see
            # FairQueue.get): a replaced pool (an application's dispose of
            # the engine) sends those of the pool it replaced to that pool.
            queue.spares = entry.spares
            # Its invalidations make connections stale: found at once (see
            # take_idle). (Only on the engines whose stale entries vinyl
            # tracks: it keeps spares on no other.)
            if entry.quiet_checkin:
                queue.invalidated = functools.partial(mark_stale, entry)
        _note_quiet_queue_pool(entry)
    return entry.queue


def _note_quiet_queue_pool(entry: EngineEntry) -> None:
    """Keep ``entry.queue_pool`` as ``entry.quiet_queue_pool`` while its
    checkouts are quiet, its invalidations reaching this entry (see
    EngineEntry)."""
    queue, pool = entry.queue, entry.queue_pool
    hook = queue.invalidated if queue is not None else None
    ours = isinstance(hook, functools.partial) and hook.func is mark_stale and hook.args == (entry,)
    quiet = ours and entry.quiet_checkin and quiet_checkout(pool, entry.invalidated_at)
    entry.quiet_queue_pool = pool if quiet else None


def keep_block_connection(entry: EngineEntry, conn: AsyncConnection, held: Held) -> bool:
    """Keep the connection of a block that ended, idle (no transaction
    open), checked out for the next statement or block, as a statement's
    (see keep_spare), or hand it to the first task waiting in line; False
    where it goes back to the pool instead (the caller checks it in).

    ``conn``, the block's SQLAlchemy connection, is kept with it (not
    closed: it is in no transaction, as after its commit), for the next
    block that takes this spare (see :func:`kept_connection`): building one
    costs more than the rest of an empty block. Only with the engine's own
    execution options, and on a quiet pool (see
    quiet_pool), whose checkin of an idle connection needs no I/O.
    """
    sync_engine = entry.engine.sync_engine
    if conn.sync_connection.get_execution_options() is not sync_engine.get_execution_options():  # type: ignore[union-attr]  # started
        # Options set on the block's connection by code it was handed to
        # (vinyl.testing's rolled_back): the pool's check-in resets what
        # they changed, and the next block must not inherit them.
        return False
    pool = sync_engine.pool
    if entry.stale or not quiet_checkout(pool, entry.invalidated_at):
        return False
    queue = entry.queue if pool is entry.queue_pool else fair_queue_of(entry)
    if queue is not None and queue.waiters:
        return queue.hand_over(held)
    keep_spare(entry, held)
    entry.kept = (held[0], conn)
    return True


def kept_connection(entry: EngineEntry, pooled: Any) -> AsyncConnection | None:
    """The SQLAlchemy connection a block left on ``pooled`` (a spare just
    taken), if it did (see :func:`keep_block_connection`) and it logs as a
    new one would (``sqlalchemy.engine`` logging switched on or off since:
    a new one is made)."""
    kept = entry.kept
    if kept is None:
        return None
    entry.kept = None
    if kept[0] is not pooled or not logs_as_its_engine(kept[1].sync_connection):
        return None
    return kept[1]


def _cancel_spare_check(entry: EngineEntry) -> None:
    timer = entry.spare_check
    if timer is not None:
        entry.spare_check = None
        timer.cancel()


def _drop_spares(entry: EngineEntry) -> None:
    """Forget the spares of an engine vinyl no longer runs statements on
    (an application's engine it lets go of, or one whose loop is gone)."""
    _cancel_spare_check(entry)
    entry.spares.clear()


def _spares_due(entry: EngineEntry) -> None:
    entry.spare_check = None
    check_in_spares(entry)


def take_idle(entry: EngineEntry) -> Held | None:
    """An idle pooled connection taken without the greenlet, with its driver
    connection, or None: one kept by :func:`keep_spare` first, unless tasks
    wait for one."""
    spares = entry.spares
    if not spares:
        queue = entry.queue
        if queue is not None and queue.waiters and entry.engine.sync_engine.pool is entry.queue_pool:
            # Tasks wait in line, so the pool has no idle connection (see
            # FairQueue): this task joins them, see vinyl.engine.turns.
            return None
    elif not entry.stale:
        pool = entry.engine.sync_engine.pool
        queue = entry.queue if pool is entry.queue_pool else fair_queue_of(entry)
        if queue is None:
            # Another pool class: the spares of this loop step; the last one
            # taken, their check-in is not needed. (Its invalidation time is
            # read: code that invalidates the pool itself fires no event;
            # vinyl's pool says so, see FairAsyncQueuePool.)
            if invalidated_at(pool) == entry.invalidated_at:
                held = spares.pop()
                if not spares:
                    _cancel_spare_check(entry)
                return held
            check_in_spares(entry)
        elif not queue.waiters:
            return spares.pop()
        else:
            # Tasks wait for a connection: theirs first (see fairpool.py).
            check_in_spares(entry)
    else:
        # Connections wait to reconnect after a disconnect (the spares may
        # be some): back to the pool, whose checkout replaces stale ones.
        check_in_spares(entry)
    pooled = _checkout_quietly(entry)
    return None if pooled is None else held_pair(pooled)


def take_idle_pooled(entry: EngineEntry) -> Any:
    """:func:`take_idle`'s pooled connection alone (for a block's connection)."""
    if entry.spares:
        held = take_idle(entry)
        return None if held is None else held[0]
    return _checkout_quietly(entry)


def held_pair(pooled: Any) -> Held:
    """``pooled`` with its driver connection, resolved once: reached through
    a chain of SQLAlchemy properties otherwise, at each statement."""
    return (pooled, pooled.driver_connection)


def _checkout_quietly(entry: EngineEntry) -> Any:
    """A connection checked out of the pool without I/O, or None."""
    if not checkout_needs_no_io(entry):
        return None
    try:
        return entry.engine.sync_engine.raw_connection()
    except sa_exc.MissingGreenlet:
        # Checkout wanted I/O after all (the pool took the connection back):
        # this engine's checkouts take the greenlet path from now on.
        entry.quiet_checkin = False
        return None


def check_in_spares(entry: EngineEntry) -> None:
    """Return the spare connections of ``entry`` (see keep_spare) to the pool.

    Idle ones go back without I/O while the pool has room for them; one the
    full pool would close is given back in the greenlet.
    """
    _cancel_spare_check(entry)
    spares = entry.spares
    while spares:
        pooled = spares.pop()[0]
        if room_in_pool(entry):
            pooled.close()  # idle: the quiet checkin does no I/O
        else:
            close_later(pooled)


def give_back_spares(using: str | None = None) -> None:
    """Check in the spare connections (see keep_spare) of ``using`` (every
    alias when None) on this event loop now, rather than when the pool is
    next asked or their timer fires."""
    loop = running_loop()
    for (alias, entry_loop), entry in list(_entries.items()):
        if (using is None or alias == using) and entry_loop in (loop, None):
            check_in_spares(entry)


def _retire(entry: EngineEntry) -> None:
    _forget(entry)
    if entry.engine in _user_engines.values():
        _drop_spares(entry)
        return
    loop = running_loop()
    if loop is not None and entry.loop in (None, loop):
        task = loop.create_task(_dispose_entry(entry))
        _retiring.add(task)
        task.add_done_callback(_retiring.discard)
    elif entry.loop is not None and not entry.loop.is_closed():
        # Another thread's loop: its connections close on that loop.
        asyncio.run_coroutine_threadsafe(_dispose_entry(entry), entry.loop)
    else:
        _abandon(entry)


def _create_engine(config: EngineConfig) -> AsyncEngine:
    kwargs = dict(config.engine_kwargs)
    if "poolclass" not in kwargs and "pool" not in kwargs:
        url = config.url
        dialect: Any = url.get_dialect()  # DefaultDialect's get_pool_class (not on the Dialect interface)
        if dialect.get_pool_class(url) is AsyncAdaptedQueuePool:
            # Tasks waiting for a connection are served in order (see fairpool.py).
            kwargs["poolclass"] = FairAsyncQueuePool
    probe = config.in_transaction
    if probe is None or "pool_reset_on_return" in kwargs:
        return create_async_engine(config.url, **kwargs)
    # SQLAlchemy rolls back every connection returned to the pool, even one
    # that committed or only read in autocommit: a round trip per operation.
    # Ask the driver whether a transaction is open instead.
    engine = create_async_engine(config.url, pool_reset_on_return=None, **kwargs)

    def reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        if state.terminate_only or not state.asyncio_safe:
            return
        if probe(dbapi_connection.driver_connection):
            dbapi_connection.rollback()
            if probe(dbapi_connection.driver_connection):
                # The driver adapter did not know of the transaction (a
                # cancellation cut in between BEGIN and its bookkeeping):
                # never give it back open; the pool discards it on error.
                raise ConnectionResetError("transaction still open on return to the pool")

    event.listen(engine.sync_engine, "reset", reset)
    return engine


def _abandon(entry: EngineEntry) -> None:
    """Forget an engine whose event loop is gone, without I/O.

    Its connections belong to the dead loop: nothing can close them through
    the driver any more (SQLAlchemy's close would need the greenlet and log
    MissingGreenlet for each). Their sockets are shut down instead, so the
    server ends those sessions at once.
    """
    _drop_spares(entry)
    _forget(entry)
    if entry.engine in _user_engines.values():
        return
    for dbapi_connection in list(entry.opened.values()):
        sever(dbapi_connection.driver_connection)
    entry.opened.clear()


def get_engine(using: str = DEFAULT_ALIAS) -> AsyncEngine:
    """Return the ``AsyncEngine`` (and so the pool) vinyl uses for ``using``.

    The same object is returned on every call until :func:`dispose`::

        engine = vinyl.get_engine()
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    """
    return engine_entry(using).engine


def set_engine(engine: AsyncEngine, using: str = DEFAULT_ALIAS) -> None:
    """Make vinyl run ``using`` on an engine the application built.

    The application keeps owning the engine: :func:`dispose` forgets it but
    does not close its pool.
    """
    if not isinstance(engine, AsyncEngine):
        raise TypeError(
            f"set_engine() takes a sqlalchemy AsyncEngine, got {engine!r}: build "
            f"it with sqlalchemy.ext.asyncio.create_async_engine()"
        )
    _user_engines[using] = engine
    for key in [key for key in _entries if key[0] == using]:
        _entries.pop(key)


def forget_engine(using: str = DEFAULT_ALIAS) -> None:
    """Stop running ``using`` on the engine handed over with :func:`set_engine`.

    The engine stays open (its owner closes it); the next query builds
    vinyl's own engine from the settings.
    """
    _user_engines.pop(using, None)
    for key in [key for key in _entries if key[0] == using]:
        _entries.pop(key)


def settings_changed(using: str) -> None:
    """Forget the engine of ``using``: its settings changed in place.

    (The test runner points a vinyl alias at the test database by changing
    its NAME.) The next query builds an engine from the new settings.
    """
    for key in [key for key in _entries if key[0] == using]:
        entry = _entries.get(key)
        if entry is not None:
            _retire(entry)


def cached_facts(using: str) -> dict[str, Any] | None:
    """Return the server facts of ``using`` if its engine has connected."""
    entry = _entries.get((using, running_loop()))
    if entry is None:
        entry = next((e for (alias, _), e in _entries.items() if alias == using and e.facts), None)
    return entry.facts if entry is not None else None


async def ensure_facts(entry: EngineEntry, conn: AsyncConnection) -> None:
    """Load the server facts of an engine once, on its first connection."""
    if entry.facts is not None or entry.config.load_facts is None:
        if entry.facts is None:
            entry.facts = {}
        return
    if entry.facts_lock is None:
        entry.facts_lock = asyncio.Lock()
    async with entry.facts_lock:
        if entry.facts is None:
            entry.facts = await entry.config.load_facts(conn)


async def dispose(using: str | None = None) -> None:
    """Close the pools of ``using`` (every alias when None) on this event loop.

    The next query builds a new engine. Engines of other event loops (another
    thread's) are left open; those of loops that have closed are dropped.
    Engines handed over with :func:`set_engine` are left open: their owner
    closes them.
    """
    loop = running_loop()
    for (alias, entry_loop), entry in list(_entries.items()):
        if using is not None and alias != using:
            continue
        if entry_loop is not None and entry_loop.is_closed():
            _abandon(entry)
            continue
        if entry_loop not in (loop, None):
            continue  # another live loop's engine
        _entries.pop((alias, entry_loop), None)
        if entry.engine is _user_engines.get(alias):
            _drop_spares(entry)
            continue
        await _dispose_entry(entry)
