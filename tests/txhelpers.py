"""Helpers for the transaction and engine tests: a second connection, pools."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from django.db import connections
from sqlalchemy import text

import vinyl
from tests.testapp.models import Author
from vinyl.engine import engines


async def committed_names(table: str = "testapp_author", column: str = "name") -> list[str]:
    """Read ``column`` from a separate connection: what other sessions see."""
    async with vinyl.get_engine().connect() as conn:
        rows = await conn.execute(text(f"SELECT {column} FROM {table} ORDER BY {column}"))
        return [row[0] for row in rows]


def checked_out(using: str = "vinyl_default") -> int:
    """How many connections the pool of ``using`` has handed out right now."""
    return vinyl.get_engine(using).sync_engine.pool.checkedout()


def in_use(using: str = "vinyl_default") -> int:
    """checked_out(), less the idle spare connections vinyl keeps checked
    out for its next statements (see vinyl.engine.engines.keep_spare)."""
    return checked_out(using) - len(engines.engine_entry(using).spares)


def give_back_spares(using: str = "vinyl_default") -> None:
    """Check in the spare connections vinyl keeps for its next statements
    (see vinyl.engine.engines.keep_spare), each checked idle first: a spare
    never has a transaction open."""
    entry = engines.engine_entry(using)
    config = entry.config
    if entry.quiet_checkin:  # (the engines that keep spares, whose backends have idle())
        open_ = [driver for _pooled, driver in entry.spares if not config.idle(driver)]  # type: ignore[misc]
        assert not open_, f"spare connections with a transaction open: {open_}"
    engines.give_back_spares(using)


async def returned(using: str = "vinyl_default") -> int:
    """checked_out() once the event loop has turned twice and the spare
    connections vinyl keeps checked out for its next statements are given
    back (see vinyl.engine.engines.keep_spare): what is left is held by
    something (a block, a stream, a task) or leaked."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    give_back_spares(using)
    return checked_out(using)


async def closed_and_returned(using: str = "vinyl_default", bound: float = 30.0) -> int:
    """returned(), once the closes of overflow connections that a full pool
    did not keep have ended (waited for up to ``bound`` seconds). vinyl
    gives such a connection back in the greenlet, where its close talks to
    the server (see vinyl.engine.engines.close_later), and the pool counts
    it as checked out until that close ends: a loaded host may take longer
    than returned()'s two loop steps."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    give_back_spares(using)  # the spares are back, their closes started
    loop = asyncio.get_running_loop()
    closing = [task for task in engines._closing if task.get_loop() is loop]
    if closing:
        await asyncio.wait(closing, timeout=bound)
    return checked_out(using)


async def settle(using: str = "vinyl_default", rounds: int = 200) -> int:
    """Let finalizers (async generators closed when collected) finish their
    I/O, for up to two seconds; return checked_out()."""
    for _ in range(rounds):
        give_back_spares(using)
        if checked_out(using) == 0:
            break
        await asyncio.sleep(0.01)
    return checked_out(using)


async def configure_pool(connect_args: dict | None = None, using: str = "vinyl_default", **pool: Any) -> None:
    """Rebuild the engine of ``using`` with these pool (and driver) arguments."""
    await vinyl.dispose(using)
    settings = connections.settings[using]
    options = {**(settings.get("OPTIONS") or {}), **(connect_args or {})}
    options["pool"] = {**options.get("pool", {}), **pool}
    settings["OPTIONS"] = options
    try:
        del connections[using]
    except AttributeError:
        pass


async def open_transactions(backend: str) -> int:
    """Count transactions open on the test database, from a fresh connection."""
    if backend == "mysql":
        await asyncio.sleep(0.15)  # InnoDB's cached view of INNODB_TRX
    return await _server_count(
        backend,
        postgresql="SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
        mysql="SELECT count(*) FROM information_schema.INNODB_TRX t "
        "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
        "WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID()",
    )


async def _server_count(backend: str, *, postgresql: str, mysql: str) -> int:
    """Run the count query of ``backend`` on a fresh connection."""
    async with vinyl.get_engine().connect() as conn:
        sql = postgresql if backend == "postgresql" else mysql
        return (await conn.exec_driver_sql(sql)).scalar_one()


async def wait_until(predicate: Any, what: str, rounds: int = 60) -> None:
    """Poll an async predicate (server state, not a race) until it holds.

    InnoDB refreshes its information_schema transaction tables only when
    they were not read for 0.1 s: poll more slowly than that.
    """
    for _ in range(rounds):
        if await predicate():
            return
        await asyncio.sleep(0.15)
    raise AssertionError(f"timed out waiting until {what}")


async def lock_waits(backend: str) -> int:
    """How many sessions are waiting for a row lock right now."""
    return await _server_count(
        backend,
        postgresql="SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'",
        mysql="SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'",
    )


async def no_open_transactions(backend: str) -> bool:
    """Wait (bounded) for the server to drop sessions vinyl closed; True if none is left."""
    for _ in range(20):
        if await open_transactions(backend) == 0:
            return True
        # A connection vinyl closed may still be listed until its server
        # process has gone; a leaked one would stay.
        await asyncio.sleep(0.1)
    return False


@contextmanager
def retry_reasons() -> Iterator[list[str]]:
    """The reasons of the retries ``vinyl.retry`` logs inside the block, in order."""
    reasons: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reasons.append(record.vinyl_retry_reason)  # type: ignore[attr-defined]

    handler = Count(level=logging.INFO)
    logger = logging.getLogger("vinyl.retry")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield reasons
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


async def after_turns(k: int | float) -> None:
    """Let time pass before a cancellation: ``k`` loop turns (an int) or
    ``k`` seconds (a float, to reach a round trip or get past it)."""
    if isinstance(k, float):
        await asyncio.sleep(k)
        return
    for _ in range(k):
        await asyncio.sleep(0)


@asynccontextmanager
async def connections_held(count: int = 1) -> AsyncIterator[None]:
    """Hold ``count`` pooled connections for the body of the ``async with``:
    each in an ``atomic()`` block of its own task that has run a statement.
    The blocks end (and their tasks are awaited) when the body ends."""
    release, all_in = asyncio.Event(), asyncio.Event()
    inside = 0

    async def hold() -> None:
        nonlocal inside
        async with vinyl.atomic():
            await Author.vinyl.count()
            inside += 1
            if inside == count:
                all_in.set()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(count)]
    entered = asyncio.ensure_future(all_in.wait())
    try:
        # A holder that fails ends the wait with its error, not a hang.
        await asyncio.wait([entered, *holders], return_when=asyncio.FIRST_COMPLETED)
        for holder in holders:
            if holder.done():
                holder.result()
        yield
    finally:
        entered.cancel()
        release.set()
        await asyncio.gather(*holders)


#: The waits that end at the first of their tasks to end (as_completed's
#: ``async for`` form exists from Python 3.13).
FIRST_OF_KINDS = ["first_completed", "first_exception", "as_completed"] + (
    ["as_completed_async_for"] if sys.version_info >= (3, 13) else []
)


async def first_to_end(kind: str, *tasks: asyncio.Future) -> object:
    """Wait for the first of ``tasks`` to end, through ``kind``; its result
    (or error: a failed one of those asyncio.wait returns done)."""
    if kind.startswith("first_"):
        when = asyncio.FIRST_COMPLETED if kind == "first_completed" else asyncio.FIRST_EXCEPTION
        done, _ = await asyncio.wait(set(tasks), return_when=when)
        failed = [task for task in done if not task.cancelled() and task.exception() is not None]
        return await (failed or list(done))[0]
    if kind == "as_completed":
        for next_done in asyncio.as_completed(tasks):
            return await next_done
    async for first in asyncio.as_completed(tasks):  # type: ignore[attr-defined]  # (Python 3.13+)
        return await first
    raise AssertionError("nothing to wait for")


async def kill_session(server_id: int) -> None:
    """End the server session ``server_id`` of vinyl's default engine, from a
    connection outside vinyl's pool."""
    from sqlalchemy.ext.asyncio import create_async_engine

    other = create_async_engine(vinyl.get_engine().url)
    try:
        async with other.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": server_id})
            else:
                await conn.exec_driver_sql(f"KILL {int(server_id)}")
    finally:
        await other.dispose()


def run_loops_in_threads(run: Any, names: tuple[str, ...] = ("a", "b")) -> None:
    """Run ``asyncio.run(run(name))`` in a thread of its own for each name,
    at once, and fail with whatever any of them raised."""
    import threading

    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            asyncio.run(run(name))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
