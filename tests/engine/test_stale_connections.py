"""After a lost connection: spare connections again, never a stale one.

A lost connection invalidates the pool (SQLAlchemy's reaction, and
vinyl's): every connection it opened before is stale, and SQLAlchemy's
checkout reconnects each (I/O) before handing it out. vinyl's statements
take connections without that checkout (spares, quiet checkouts, see
vinyl.engine.engines.keep_spare): they must never run on a stale one, and
once the stale ones have reconnected, spares must come back (the pool's
invalidation time, which never goes back to 0, once turned them off until
the engine was rebuilt).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db.utils import Error as DjangoDBError
from django.db.utils import OperationalError as DjangoOperationalError
from sqlalchemy import event, text

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import configure_pool, kill_session, returned
from vinyl._compat import invalidate_pool
from vinyl.engine.engines import engine_entry, open_connections

pytestmark = [
    pytest.mark.backends("postgresql", "mysql", reason="SQLite's pool hands its one connection back at once"),
    pytest.mark.usefixtures("vinyl_db"),
]


class Drivers:
    """The driver connections vinyl's statements run on (straight on the
    driver: every planned statement), and those the pool opened since
    :meth:`start`."""

    def __init__(self) -> None:
        self.used: list[Any] = []
        self.opened: list[Any] = []
        entry = engine_entry("vinyl_default")
        config = entry.config
        for name in ("fetch", "execute", "insert_id"):
            run = getattr(config, name)
            if run is not None:
                setattr(config, name, self._watch(run))
        event.listen(entry.engine.sync_engine, "connect", lambda dbapi, _record: self.opened.append(dbapi.driver_connection))

    def _watch(self, run: Any) -> Any:
        def watched(driver: Any, sql: str, params: tuple) -> Any:
            self.used.append(driver)
            return run(driver, sql, params)

        return watched

    def start(self) -> None:
        """Watch from now on (the pool's opens) and from :meth:`failed`
        on (the statements)."""
        self.used.clear()
        self.opened.clear()

    def failed(self) -> None:
        """The statements so far found the lost connection."""
        self.used.clear()

    def all_opened_since_start(self) -> bool:
        return bool(self.used) and all(any(d is o for o in self.opened) for d in self.used)


def spares() -> int:
    return len(engine_entry("vinyl_default").spares)


def count_checkouts() -> list:
    seen: list = []
    event.listen(vinyl.get_engine().sync_engine, "checkout", lambda *args: seen.append(1))
    return seen


async def statements(age: int) -> None:
    assert (await Author.vinyl.get(name="Ann")).name == "Ann"
    assert await Author.vinyl.count() == 1
    await Author.vinyl.filter(name="Ann").update(age=age)


async def warmed(connections: int) -> Drivers:
    """Ann, the plans of statements() (straight on the driver from their
    second run), ``connections`` open in the pool, none out, and a watch on
    the driver connections statements run on."""
    await Author.vinyl.create(name="Ann")
    for age in (1, 2):
        await statements(age)
    await server_ids(connections)
    assert open_connections() == connections
    assert await returned() == 0
    return Drivers()


async def server_ids(count: int) -> list[int]:
    """The server sessions of ``count`` pooled connections, checked out
    together and given back in order: the first is the next one a FIFO
    pool hands out, the last the next one a LIFO pool does."""
    engine = vinyl.get_engine()
    conns = [await engine.connect() for _ in range(count)]
    ids = []
    for conn in conns:
        sql = "SELECT pg_backend_pid()" if conn.dialect.name == "postgresql" else "SELECT CONNECTION_ID()"
        ids.append((await conn.execute(text(sql))).scalar_one())
    for conn in conns:
        await conn.close()
    return ids


async def one_session_killed(count: int, **pool: Any) -> tuple[Drivers, int]:
    """A pool of ``count`` warmed connections, and the server session of
    the one it hands out next killed (the first for FIFO, the last for
    LIFO); the drivers' watch started after the kill."""
    await configure_pool(pool_size=count, max_overflow=0, **pool)
    drivers = await warmed(count)
    ids = await server_ids(count)
    victim = ids[-1] if pool.get("pool_use_lifo") else ids[0]
    await kill_session(victim)
    await asyncio.sleep(0.05)  # (the session ends)
    drivers.start()
    return drivers, victim


async def spares_resume(drivers: Drivers, rounds: int = 4) -> None:
    """Within ``rounds`` rounds of statements (and a block), the stale
    connections have reconnected and the statements share a spare again;
    no statement ran on a connection opened before the invalidation."""
    entry = engine_entry("vinyl_default")
    for age in range(10, 10 + rounds):
        await statements(age)
        async with vinyl.atomic():
            await Author.vinyl.filter(name="Ann").update(age=age)
        await statements(age)
        if spares() == 1 and not entry.stale:
            break
    assert spares() == 1 and not entry.stale
    checkouts = count_checkouts()
    for age in (20, 21, 22):
        await statements(age)
    assert len(checkouts) == 0  # one spare for them all
    assert drivers.all_opened_since_start(), "a statement ran on a stale connection"
    assert await Author.vinyl.filter(age=22).count() == 1
    assert await returned() == 0


async def test_spares_resume_after_a_read_on_a_killed_connection():
    drivers, victim = await one_session_killed(2)
    # The read fails on the dead connection and runs once more on a fresh
    # one; the other connection, alive, is stale all the same (opened
    # before the invalidation): it reconnects before any statement uses it.
    assert (await Author.vinyl.get(name="Ann")).age == 2
    drivers.failed()
    await spares_resume(drivers)
    assert victim not in await server_ids(2)


async def test_spares_resume_after_a_write_on_a_killed_connection():
    drivers, _victim = await one_session_killed(2)
    with pytest.raises(DjangoDBError):  # a write is never retried
        await Author.vinyl.filter(name="Ann").update(age=3)
    drivers.failed()
    await spares_resume(drivers)


async def test_spares_resume_after_sqlalchemy_code_finds_a_killed_connection():
    # SQLAlchemy's own disconnect handling invalidates the pool it shares
    # with vinyl's statements.
    drivers, _victim = await one_session_killed(2)
    with pytest.raises(Exception) as failed:
        async with vinyl.get_engine().connect() as conn:
            await conn.execute(text("SELECT 1"))
    assert getattr(failed.value, "connection_invalidated", False), failed.value
    drivers.failed()
    await spares_resume(drivers)


async def test_spares_resume_after_a_block_begins_on_a_killed_connection():
    # MySQL: the block's BEGIN finds the dead connection (sent through the
    # dialect, inside SQLAlchemy's error handling); PostgreSQL: its first
    # statement, which carries asyncpg's BEGIN. Django's error either way,
    # the pool invalidated, nothing written.
    drivers, _victim = await one_session_killed(2)
    with pytest.raises(DjangoOperationalError):
        async with vinyl.atomic():
            await Author.vinyl.filter(name="Ann").update(age=3)
    drivers.failed()
    await spares_resume(drivers)
    assert await Author.vinyl.filter(age=3).count() == 0


async def test_a_spare_is_not_used_once_the_pool_is_invalidated_without_an_event():
    # Pool._invalidate() called directly (as SQLAlchemy's own tests do)
    # fires no event: the spare, opened before, is stale all the same.
    await configure_pool(pool_size=2, max_overflow=0)
    drivers = await warmed(2)
    await statements(3)
    assert spares() == 1
    invalidate_pool(vinyl.get_engine().sync_engine.pool)
    drivers.start()
    await spares_resume(drivers)


async def test_spares_resume_on_a_lifo_pool():
    # A LIFO pool hands out the connection given back last, again and again:
    # the stale ones below it reconnect first all the same.
    drivers, _victim = await one_session_killed(3, pool_use_lifo=True)
    assert (await Author.vinyl.get(name="Ann")).age == 2
    drivers.failed()
    await spares_resume(drivers, rounds=6)
    assert open_connections() == 3
