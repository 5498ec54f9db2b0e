"""A block's connection, idle once the block ends, is kept as a spare.

As a statement's (see test_spares.py): the next block or statement takes it
without the pool's checkout and checkin, with the block's SQLAlchemy
connection for the next block (vinyl.engine.engines.keep_block_connection).
Only once its transaction has ended: what it wrote is committed (or rolled
back) before anyone else can run on it, and it is given to whoever asks
the pool, at once.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.db import IntegrityError
from sqlalchemy import event, text

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import checked_out, committed_names, configure_pool, returned
from vinyl.engine.engines import SPARE_IDLE_SECONDS, engine_entry

pytestmark = [
    pytest.mark.backends("postgresql", "mysql", reason="SQLite's pool hands its one connection back at once"),
    pytest.mark.usefixtures("vinyl_db"),
]


def spares() -> int:
    return len(engine_entry("vinyl_default").spares)


def count_events(name: str) -> list:
    seen: list = []
    event.listen(vinyl.get_engine().sync_engine, name, lambda *args: seen.append(1))
    return seen


async def warmed() -> None:
    await Author.vinyl.create(name="Ann")
    for age in (1, 2):  # (the plans)
        async with vinyl.atomic():
            await Author.vinyl.filter(name="Ann").update(age=age)
            assert (await Author.vinyl.get(name="Ann")).age == age
    assert await returned() == 0


async def test_blocks_one_after_another_share_a_checkout():
    await warmed()
    checkouts, checkins = count_events("checkout"), count_events("checkin")
    for age in (3, 4, 5):
        async with vinyl.atomic():
            assert spares() == 0  # a block's connection is no spare while it runs
            await Author.vinyl.filter(name="Ann").update(age=age)
        async with vinyl.atomic():  # (one that sends nothing)
            pass
        await asyncio.sleep(0)
        assert (await Author.vinyl.get(name="Ann")).age == age
    assert spares() == 1
    assert (len(checkouts), len(checkins)) == (1, 0)
    assert await returned() == 0
    assert len(checkins) == 1
    assert await committed_names("testapp_author", "age") == [5]


async def test_what_a_block_wrote_is_committed_before_its_connection_is_kept():
    await warmed()
    async with vinyl.atomic():
        await Author.vinyl.create(name="Bob")
    assert spares() == 1
    assert await committed_names() == ["Ann", "Bob"]  # from another connection
    bob = await Author.vinyl.get(name="Bob")
    with pytest.raises(IntegrityError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="Cy")
            await Author.vinyl.create(name="Dup", pk=bob.pk)
    assert spares() == 1  # rolled back, idle: kept
    assert await committed_names() == ["Ann", "Bob"]
    async with vinyl.atomic():  # on the same connection: no transaction left open
        assert await Author.vinyl.count() == 2
    assert await returned() == 0


async def test_sqlalchemy_code_and_statements_get_the_spare_of_a_block_on_a_pool_of_one():
    # (A timeout shorter than the bound: nothing waits for the spare's timer.)
    await configure_pool(pool_size=1, max_overflow=0, pool_timeout=SPARE_IDLE_SECONDS / 4)
    await warmed()
    for age in (3, 4):
        async with vinyl.atomic():
            await Author.vinyl.filter(name="Ann").update(age=age)
        await asyncio.sleep(0)
        assert checked_out() == 1 and spares() == 1
        # The pool's only connection, at once: SQLAlchemy code, then a
        # statement, then a block (each on a connection the one before gave
        # back; the block builds its SQLAlchemy connection anew).
        async with vinyl.get_engine().connect() as conn:
            assert (await conn.execute(text("SELECT age FROM testapp_author"))).scalar_one() == age
        assert spares() == 0
        assert (await Author.vinyl.get(name="Ann")).age == age
        async with vinyl.atomic():
            assert (await Author.vinyl.get(name="Ann")).age == age
    assert await returned() == 0


async def test_a_cancelled_block_leaves_no_spare():
    await warmed()
    started = asyncio.Event()

    async def block() -> None:
        async with vinyl.atomic():
            await Author.vinyl.filter(name="Ann").update(age=7)
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(block())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert spares() == 0 and checked_out() == 0  # discarded, not kept
    assert (await Author.vinyl.get(name="Ann")).age == 2
    assert await returned() == 0


async def test_blocks_of_tasks_at_once_on_a_small_pool():
    await configure_pool(pool_size=2, max_overflow=0, pool_timeout=10)
    await warmed()

    async def work(i: int) -> int:
        for _ in range(3):
            async with vinyl.atomic():
                await Author.vinyl.filter(name="Ann").update(age=i)
                await asyncio.sleep(0)
            async with vinyl.get_engine().connect() as conn:
                await conn.execute(text("SELECT 1"))
        return i

    assert await asyncio.gather(*(work(i) for i in range(20))) == list(range(20))
    assert await returned() == 0



async def test_a_connection_whose_execution_options_were_changed_is_not_kept_with_them():
    # rolled_back() (vinyl.testing) hands its block's SQLAlchemy connection
    # to the test, which may set options on it: the next test's must not
    # carry them.
    from vinyl.transaction import rolled_back

    await warmed()
    for _ in range(2):
        async with rolled_back() as conn:
            assert "logging_token" not in conn.sync_connection.get_execution_options()
            await conn.execution_options(logging_token="first")
            assert await Author.vinyl.count() == 1
        await asyncio.sleep(0)
    async with vinyl.atomic():
        assert await Author.vinyl.count() == 1
    assert await returned() == 0


async def test_a_kept_connection_logs_as_the_engine_does_now(caplog):
    # Logging of sqlalchemy.engine switched on after a block kept its
    # connection: the next block's BEGIN and COMMIT are logged all the same.
    await warmed()
    async with vinyl.atomic():
        await Author.vinyl.filter(name="Ann").update(age=3)
    assert spares() == 1
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        async with vinyl.atomic():
            await Author.vinyl.filter(name="Ann").update(age=4)
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert any(m.startswith("BEGIN") for m in logged), logged
    assert "COMMIT" in logged, logged
    caplog.clear()
    async with vinyl.atomic():  # switched off again: nothing logged
        await Author.vinyl.filter(name="Ann").update(age=5)
    assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.engine")]
    assert await committed_names("testapp_author", "age") == [5]
    assert await returned() == 0

