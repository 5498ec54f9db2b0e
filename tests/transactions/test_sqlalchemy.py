"""One pool shared with SQLAlchemy: get_engine, use_connection, set_engine."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import committed_names, returned

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_get_engine_is_the_pool_vinyl_uses():
    engine = vinyl.get_engine()
    assert vinyl.get_engine() is engine
    checkouts: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *a: checkouts.append(a))
    async with vinyl.atomic():
        await Author.vinyl.create(name="Ann")
        assert engine.sync_engine.pool.checkedout() == 1
        # SQLAlchemy Core on the same engine sees committed data only.
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM testapp_author"))).scalar_one() == 0
    assert len(checkouts) == 2
    await vinyl.dispose()
    assert vinyl.get_engine() is not engine


async def test_use_connection_commit_includes_vinyl_writes():
    async with vinyl.get_engine().connect() as conn:
        await conn.execute(text("INSERT INTO testapp_author (name, age) VALUES ('core', 1)"))
        async with vinyl.use_connection(conn) as same:
            assert same is conn
            # vinyl sees the Core row of the same transaction...
            assert await Author.vinyl.filter(name="core").exists()
            await Author.vinyl.create(name="orm")
            async with vinyl.atomic():  # a savepoint of the caller's transaction
                await Author.vinyl.create(name="nested")
            await asyncio.gather(*(Author.vinyl.create(name=f"g{i}") for i in range(3)))
        # ...and the caller's connection sees vinyl's rows before commit.
        names = (await conn.execute(text("SELECT name FROM testapp_author ORDER BY name"))).scalars().all()
        assert names == ["core", "g0", "g1", "g2", "nested", "orm"]
        assert await committed_names() == []
        await conn.commit()
    assert await committed_names() == ["core", "g0", "g1", "g2", "nested", "orm"]
    assert await returned() == 0


async def test_use_connection_rollback_discards_vinyl_writes():
    async with vinyl.get_engine().begin() as conn:
        await conn.execute(text("INSERT INTO testapp_author (name, age) VALUES ('core', 1)"))
    async with vinyl.get_engine().connect() as conn:
        async with vinyl.use_connection(conn):
            await Author.vinyl.create(name="orm")
            await Author.vinyl.filter(name="core").update(age=99)
        await conn.rollback()
    assert await committed_names() == ["core"]
    assert (await Author.vinyl.get(name="core")).age == 1


async def test_use_connection_block_that_raises_leaves_the_transaction_to_the_caller():
    with pytest.raises(ValueError):
        async with vinyl.get_engine().begin() as conn:
            async with vinyl.use_connection(conn):
                await Author.vinyl.create(name="orm")
                raise ValueError
    assert await committed_names() == []


async def test_use_connection_takes_only_async_connections():
    with pytest.raises(TypeError, match="AsyncConnection"):
        async with vinyl.use_connection(object()):  # type: ignore[arg-type]
            pass


async def test_set_engine_hands_vinyl_the_applications_pool():
    config = connections["vinyl_default"].vinyl_engine_config()
    engine = create_async_engine(config.url, **{**config.engine_kwargs, "pool_size": 3})
    checkouts: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *a: checkouts.append(a))
    try:
        vinyl.set_engine(engine)
        assert vinyl.get_engine() is engine
        await Author.vinyl.create(name="Ann")
        async with vinyl.atomic():
            assert engine.sync_engine.pool.checkedout() == 1
            assert await Author.vinyl.count() == 1
        assert len(checkouts) == 2
        # dispose() forgets the engine's registration but leaves its pool to
        # its owner; the next query uses the same engine again.
        await vinyl.dispose()
        assert vinyl.get_engine() is engine
        assert await Author.vinyl.count() == 1
        assert len(checkouts) == 3
    finally:
        from vinyl.engine import engines

        engines.forget_engine("vinyl_default")
        await engine.dispose()


async def test_set_engine_takes_only_async_engines():
    with pytest.raises(TypeError, match="AsyncEngine"):
        vinyl.set_engine(object())  # type: ignore[arg-type]
