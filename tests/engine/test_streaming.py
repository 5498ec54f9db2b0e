"""Streaming with server-side cursors: used, safe when shared, released early."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from contextlib import aclosing

import pytest
from django.db.models import Value
from django.db.models.functions import Repeat
from sqlalchemy import text

import vinyl
from tests.testapp.models import Author, Book
from tests.txhelpers import returned, settle
from vinyl.engine.checkout import operation

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="server-side cursors of asyncpg and asyncmy; SQLite has none"),
]


async def _authors(n: int) -> None:
    await Author.vinyl.bulk_create([Author(name=f"a{i:04}", age=i) for i in range(n)])


async def _wide_rows():
    # Rows large enough that the server cannot push the whole result into
    # socket buffers: an unbuffered query stays running while we read.
    return Author.vinyl.order_by("id").annotate(pad=Repeat(Value("x"), 20000)).values_list("id", "pad")


def _chunked_cursor_is_server_side() -> bool:
    """Sync code for the bridge: what cursor does a chunked read get here?"""
    from django.db import connections

    cursor = connections["vinyl_default"].chunked_cursor()
    try:
        inner = cursor
        while not hasattr(inner, "server_side"):
            inner = inner.cursor  # Django's wrapper -> vinyl's -> SQLAlchemy's adapter
        return inner.server_side
    finally:
        cursor.close()


async def test_chunked_reads_use_the_drivers_server_side_cursor(backend):
    """asyncpg's cursor / asyncmy's SSCursor on a connection of its own; inside
    a block shared by tasks, MySQL's result is buffered instead."""
    async with operation("vinyl_default") as scope:
        assert await scope.run_sync(_chunked_cursor_is_server_side) is True
    async with vinyl.atomic():
        async with operation("vinyl_default") as scope:
            shared = await scope.run_sync(_chunked_cursor_is_server_side)
    assert shared is (backend == "postgresql")
    assert await returned() == 0


async def test_postgresql_streams_through_a_server_side_cursor(backend):
    """On PostgreSQL the open cursor is listed in pg_cursors mid-stream."""
    await _authors(50)
    async with vinyl.get_engine().connect() as conn:
        async with vinyl.use_connection(conn):
            seen = []
            async with aclosing(Author.vinyl.order_by("id").iterator(chunk_size=10)) as rows:
                async for author in rows:
                    seen.append(author.name)
                    if len(seen) == 1 and backend == "postgresql":
                        cursors = (await conn.execute(text(
                            "SELECT statement FROM pg_cursors WHERE statement NOT LIKE '%pg_cursors%'"
                        ))).scalars().all()
                        assert any("testapp_author" in s for s in cursors), cursors
            assert len(seen) == 50
        await conn.rollback()
        if backend == "postgresql":
            # asyncpg's portals live until their transaction ends.
            left = (await conn.execute(text(
                "SELECT count(*) FROM pg_cursors WHERE statement NOT LIKE '%pg_cursors%'"
            ))).scalar_one()
            assert left == 0
        await conn.rollback()


async def test_mysql_stream_inside_shared_block_is_buffered_and_loses_no_rows(backend):
    await _authors(300)
    written = asyncio.Event()

    async def writer() -> None:
        # A sibling task's statements between two chunks of the stream.
        for i in range(20):
            await Book.vinyl.create(title=f"t{i}", author_id=(await Author.vinyl.order_by("id").first()).pk)
        written.set()

    async with vinyl.atomic():
        names = []
        task = asyncio.create_task(writer())
        async for author in Author.vinyl.order_by("id").iterator(chunk_size=7):
            names.append(author.name)
            if len(names) % 50 == 0:
                await Author.vinyl.filter(pk=author.pk).update(age=-1)  # same task, mid-stream
                await asyncio.sleep(0)
        await task
        assert written.is_set()
    assert names == [f"a{i:04}" for i in range(300)]
    assert await Author.vinyl.filter(age=-1).count() == 6
    assert await Book.vinyl.count() == 20


async def _traced_peak(read) -> tuple[int, int]:
    """(rows read, tracemalloc peak in bytes) of ``await read()``."""
    gc.collect()
    tracemalloc.start()
    try:
        count = await read()
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_stream_holds_a_few_chunks_not_the_result(backend):
    """The peak of Python memory while streaming 60,000 rows 500 at a time is
    a small part of what reading them at once takes: vinyl keeps no chunk it
    has handed over (nor the driver, on this loop: on uvloop asyncmy reads
    ahead as far as the socket holds, see docs/performance.md)."""
    total = 60_000
    await _authors(total)

    async def streamed() -> int:
        count = 0
        async for _ in Author.vinyl.iterator(chunk_size=500):
            count += 1
        return count

    async def buffered() -> int:
        return len(await Author.vinyl.all())

    await buffered()  # the plan and the connection, outside the measures
    streamed_rows, stream_peak = await _traced_peak(streamed)
    buffered_rows, buffer_peak = await _traced_peak(buffered)
    assert streamed_rows == buffered_rows == total
    assert stream_peak < buffer_peak / 4, (stream_peak, buffer_peak)


async def test_breaking_out_of_a_stream_releases_its_connection():
    await _authors(100)
    async with aclosing(Author.vinyl.iterator(chunk_size=3)) as rows:
        async for _ in rows:
            break
    assert await returned() == 0
    # A plain break: the generator is closed when it is collected.
    async for _ in Author.vinyl.iterator(chunk_size=3):
        break
    assert await settle() == 0
    assert await Author.vinyl.count() == 100


async def test_breaking_out_of_a_wide_unbuffered_stream_releases_its_connection():
    await _authors(300)
    qs = await _wide_rows()
    async with aclosing(qs.iterator(chunk_size=2)) as rows:
        async for _ in rows:
            break
    assert await returned() == 0
    assert await Author.vinyl.count() == 300


async def test_cancelling_a_task_mid_stream_releases_everything(backend):
    await _authors(300)
    qs = await _wide_rows()
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in qs.iterator(chunk_size=2):
            first.set()
            await asyncio.sleep(0)

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await settle() == 0
    assert await Author.vinyl.count() == 300


async def test_stream_inside_atomic_sees_the_block_rows_and_the_block_survives_a_break():
    async with vinyl.atomic():
        await _authors(20)
        async for author in Author.vinyl.order_by("id").iterator(chunk_size=4):
            if author.name == "a0005":
                break
        assert await Author.vinyl.count() == 20
    assert await Author.vinyl.count() == 20
    assert await returned() == 0
