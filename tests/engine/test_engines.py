"""One engine per alias, built from DATABASES, replaced after dispose."""

from __future__ import annotations

import asyncio
import os

import pytest
from django.db import connections
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import vinyl
from tests.testapp.models import Author
from vinyl._compat import current_loop
from vinyl.engine.engines import engine_entry

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_get_engine_is_the_same_async_engine_until_dispose():
    engine = vinyl.get_engine()
    assert isinstance(engine, AsyncEngine)
    assert vinyl.get_engine() is engine
    assert vinyl.get_engine("vinyl_default") is engine
    await Author.vinyl.count()
    await vinyl.dispose()
    fresh = vinyl.get_engine()
    assert fresh is not engine
    assert await Author.vinyl.count() == 0


async def test_engine_uses_the_driver_of_the_backend(backend):
    driver = vinyl.get_engine().dialect.driver
    assert driver == {"postgresql": "asyncpg", "mysql": "asyncmy", "sqlite": "aiosqlite"}[backend]


async def test_pool_options_reach_sqlalchemy_and_the_rest_reaches_the_driver(backend):
    base = dict(connections.settings["vinyl_default"])
    options = {"pool": {"pool_size": 3, "max_overflow": 2, "pool_timeout": 7, "pool_pre_ping": True}}
    if backend == "postgresql":
        options["server_settings"] = {"application_name": "vinyl-test-app"}
    elif backend == "sqlite":
        options["timeout"] = 4.2  # sqlite3.connect(timeout=...): the busy timeout
    else:
        options["init_command"] = "SET @vinyl_marker = 42"
    connections.settings["vinyl_opts"] = {**base, "OPTIONS": options}
    try:
        engine = vinyl.get_engine("vinyl_opts")
        pool = engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout, pool._pre_ping) == (3, 2, 7, True)
        async with engine.connect() as conn:
            if backend == "postgresql":
                value = (await conn.execute(text("SELECT current_setting('application_name')"))).scalar()
                assert value == "vinyl-test-app"
            elif backend == "sqlite":
                assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 4200
            else:
                assert (await conn.execute(text("SELECT @vinyl_marker"))).scalar() == 42
    finally:
        await vinyl.dispose("vinyl_opts")
        del connections.settings["vinyl_opts"]


async def test_statements_outside_a_transaction_commit_on_their_own():
    await Author.vinyl.create(name="Ann")
    # Another connection of the pool sees it at once.
    async with vinyl.get_engine().connect() as conn:
        count = (await conn.execute(text("SELECT COUNT(*) FROM testapp_author"))).scalar()
    assert count == 1
    assert vinyl.get_engine().sync_engine.pool.checkedout() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # (3.12+: fork() of a process with threads)
async def test_a_process_forked_with_the_loop_running_never_reaches_its_pools():
    """The child of a fork made inside a running loop (its coroutines carry
    on in the child) finds no running loop, and so never the parent's pool,
    whose sockets it would share: vinyl finds the loop without asking Python
    for it on each statement (see vinyl._compat.current_loop)."""
    await Author.vinyl.count()
    entry = engine_entry("vinyl_default")
    assert current_loop() is asyncio.get_running_loop()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, and leave at once
        try:
            answer = b"1" if current_loop() is None and engine_entry("vinyl_default") is not entry else b"0"
        except BaseException:
            answer = b"E"
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    try:
        answer = os.read(read, 1)
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert answer == b"1"
    assert engine_entry("vinyl_default") is entry


async def test_concurrent_operations_use_their_own_connections():
    await asyncio.gather(*(Author.vinyl.create(name=f"a{i}") for i in range(10)))
    counts = await asyncio.gather(*(Author.vinyl.count() for _ in range(20)))
    assert counts == [10] * 20
    assert vinyl.get_engine().sync_engine.pool.checkedout() == 0


def test_an_engine_from_a_closed_loop_is_never_reused(vinyl_db):
    async def use() -> AsyncEngine:
        await Author.vinyl.count()
        return vinyl.get_engine()

    first = asyncio.run(use())
    second = asyncio.run(use())
    assert first is not second
