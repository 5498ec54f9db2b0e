"""The ``vinyl.sql`` logger and ``vinyl.capture_queries()``, on every backend."""

from __future__ import annotations

import asyncio
import logging

import pytest

import vinyl
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def test_capture_counts_the_statements_of_the_block():
    ann = await Author.vinyl.create(name="Ann")
    await Book.vinyl.create(title="a", author=ann)
    async with vinyl.capture_queries() as q:
        assert await Author.vinyl.count() == 1
        book = await Book.vinyl.select_related("author").get(title="a")
    assert book["author"].name == "Ann"
    assert len(q) == 2
    assert "testapp_author" in q[0].sql.lower() and "count" in q[0].sql.lower()
    assert all(query.alias == "vinyl_default" and query.duration >= 0 for query in q)
    assert "a" in tuple(q[1].params)


async def test_nothing_is_recorded_after_the_block():
    async with vinyl.capture_queries() as q:
        await Author.vinyl.count()
    await Author.vinyl.count()
    assert len(q) == 1


async def test_blocks_nest():
    async with vinyl.capture_queries() as outer:
        await Author.vinyl.count()
        async with vinyl.capture_queries() as inner:
            await Author.vinyl.exists()
    assert (len(outer), len(inner)) == (2, 1)


async def test_concurrent_tasks_do_not_mix_but_child_tasks_count():
    started = asyncio.Event()
    release = asyncio.Event()

    async def outsider() -> None:
        await started.wait()
        for _ in range(3):
            await Author.vinyl.count()
        release.set()

    async def captured() -> int:
        async with vinyl.capture_queries() as q:
            await Author.vinyl.count()
            started.set()
            await release.wait()
            # A task started inside the block belongs to it.
            await asyncio.create_task(Author.vinyl.exists())
        return len(q)

    counted, _ = await asyncio.gather(captured(), outsider())
    assert counted == 2


async def test_every_statement_is_logged_on_vinyl_sql_at_debug(caplog: pytest.LogCaptureFixture):
    await Author.vinyl.count()  # connected, the server's version read
    with caplog.at_level(logging.DEBUG, logger="vinyl.sql"):
        await Author.vinyl.create(name="Ann")
        await Author.vinyl.filter(name="Ann").count()
    control = ("BEGIN", "COMMIT", "ROLLBACK")  # around SQLite's single write
    records = [r for r in caplog.records if r.name == "vinyl.sql" and r.sql.split()[0].upper() not in control]
    assert len(records) == 2
    last = records[-1]
    assert last.levelno == logging.DEBUG
    assert last.alias == "vinyl_default"
    assert "testapp_author" in last.sql.lower() and tuple(last.params) == ("Ann",)
    assert last.duration >= 0
    assert "alias=vinyl_default" in last.getMessage()


async def test_nothing_is_logged_above_debug(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="vinyl.sql"):
        await Author.vinyl.count()
    assert not [r for r in caplog.records if r.name == "vinyl.sql"]


async def test_the_log_shows_transaction_control_and_core_statements_in_order(caplog):
    from sqlalchemy import text

    caplog.set_level(logging.DEBUG, logger="vinyl.sql")
    await Author.vinyl.count()  # connected: facts read
    caplog.clear()
    async with vinyl.atomic():
        await Author.vinyl.create(name="kept")
        with pytest.raises(ValueError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="undone")
                raise ValueError
    engine = vinyl.get_engine()
    async with engine.connect() as conn:
        async with vinyl.use_connection(conn):
            await conn.execute(text("SELECT 42"))
            await Author.vinyl.count()
        await conn.rollback()
    words = [" ".join(record.sql.split()[:3]).upper() for record in caplog.records]
    assert words[0].startswith("BEGIN"), words
    assert words[1].startswith("INSERT INTO"), words
    assert words[2].startswith("SAVEPOINT"), words
    assert words[3].startswith("INSERT INTO"), words
    assert words[4].startswith("ROLLBACK TO SAVEPOINT"), words
    assert words[5] == "COMMIT", words
    assert words[6].startswith("BEGIN"), words
    assert words[7] == "SELECT 42", words
    assert words[8].startswith("SELECT COUNT(*)"), words
    assert words[9] == "ROLLBACK", words
    assert len(words) == 10, words
    assert all(record.alias == "vinyl_default" for record in caplog.records)


async def test_capture_queries_counts_vinyls_statements_only():
    from sqlalchemy import text

    await Author.vinyl.count()
    async with vinyl.capture_queries() as q:
        async with vinyl.atomic():
            await Author.vinyl.create(name="x")
        async with vinyl.get_engine().connect() as conn:
            await conn.execute(text("SELECT 1"))
    assert [s.split()[0].upper() for s in q.sqls] == ["INSERT"]
