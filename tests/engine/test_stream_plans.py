"""``async for`` / ``iterator()`` through the plan cache, straight on the driver."""

from __future__ import annotations

import asyncio
import gc
import weakref
from contextlib import aclosing

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, OperationalError

import vinyl
from tests.testapp.models import Author, Book
from tests.txhelpers import no_open_transactions, returned, settle
from vinyl import queryset as vinyl_queryset
from vinyl.engine.engines import engine_entry
from vinyl.engine.scope import active_scope
from vinyl.translate.plan_cache import plan_cache_for
from vinyl.translate.plans import Plan

pytestmark = pytest.mark.usefixtures("vinyl_db")

ALIAS = "vinyl_default"


async def _authors(n: int) -> None:
    await Author.vinyl.bulk_create([Author(name=f"a{i:03}", age=i % 7) for i in range(n)])


async def _streamed(qs, chunk_size: int | None = None) -> list:
    return [obj async for obj in qs.iterator(chunk_size=chunk_size)]


@pytest.fixture
def no_bridge_stream(monkeypatch):
    """Fail if a stream falls back to Django's iterator in the bridge."""

    def refuse(*args, **kwargs):
        raise AssertionError("streamed through the bridge, not the plan")

    monkeypatch.setattr(vinyl_queryset, "_stream", refuse)


def _rows(objs: list) -> list:
    """Instances as their loaded field values; dicts and tuples as they are."""
    return [
        {k: v for k, v in vars(obj).items() if not k.startswith("_")} if isinstance(obj, Author) else obj
        for obj in objs
    ]


SHAPES = {
    "all": lambda: Author.vinyl.all(),
    "filter": lambda: Author.vinyl.filter(age__gte=3, name__lt="a020"),
    "in": lambda: Author.vinyl.filter(age__in=[1, 2, 3]).order_by("-name"),
    "only": lambda: Author.vinyl.only("name").order_by("id"),
    "exclude_order": lambda: Author.vinyl.exclude(age=2).order_by("-age", "name"),
    "values": lambda: Author.vinyl.order_by("id").values("name", "age"),
    "values_list": lambda: Author.vinyl.order_by("id").values_list("id", "name"),
    "values_list_flat": lambda: Author.vinyl.order_by("-id").values_list("name", flat=True),
    "slice": lambda: Author.vinyl.order_by("id")[3:17],
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("chunk_size", [None, 1, 2, 5, 50])
async def test_stream_equals_await_for_each_shape(shape, chunk_size, no_bridge_stream):
    await _authors(25)  # 25 rows: 5 is an exact divisor, 50 more than all of them
    expected = await SHAPES[shape]()
    assert expected
    assert _rows(await _streamed(SHAPES[shape](), chunk_size)) == _rows(expected)
    assert await returned() == 0


async def test_select_related_streams_the_joined_objects(no_bridge_stream):
    await _authors(4)
    authors = await Author.vinyl.order_by("id")
    await Book.vinyl.bulk_create([Book(title=f"b{i}", author=authors[i % 4]) for i in range(9)])
    qs = lambda: Book.vinyl.select_related("author").order_by("id")  # noqa: E731
    expected = [(b.title, b["author"].name) for b in await qs()]
    streamed = await _streamed(qs(), 2)
    assert [(b.title, b["author"].name) for b in streamed] == expected


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 12, 13])
async def test_chunk_boundaries(chunk_size, no_bridge_stream):
    await _authors(12)
    names = [a.name async for a in Author.vinyl.order_by("id").iterator(chunk_size=chunk_size)]
    assert names == [f"a{i:03}" for i in range(12)]
    assert await returned() == 0


@pytest.mark.parametrize("chunk_size", [None, 33, 100, 150])
async def test_a_streamed_object_is_let_go_as_the_consumer_moves_on(backend, chunk_size, no_bridge_stream):
    """Rows as Django's iterator() gives them, whatever the chunk size; and,
    as with Django's iterator() (which builds each object as it yields it),
    an object the consumer let go of is freed at once (the collector off):
    a chunk is not held whole until its last object was consumed."""
    await _authors(150)
    sync = settings.SYNC_ALIAS[backend]

    def django_rows() -> list:
        return _rows(list(Author.objects.using(sync).order_by("id").iterator(chunk_size=chunk_size or 2000)))

    expected = await sync_to_async(django_rows)()
    for _ in range(2):  # the shape's first stream compiles its plan, the next runs it
        rows, refs, most_alive = [], [], 0
        enabled = gc.isenabled()
        gc.disable()
        try:
            async for author in Author.vinyl.order_by("id").iterator(chunk_size=chunk_size):
                rows.extend(_rows([author]))
                refs.append(weakref.ref(author))
                most_alive = max(most_alive, sum(ref() is not None for ref in refs))
        finally:
            if enabled:
                gc.enable()
        assert rows == expected
        assert most_alive <= vinyl_queryset.STREAM_SLICE
    assert await returned() == 0


async def test_empty_results_stream_nothing(no_bridge_stream):
    await _authors(3)
    assert await _streamed(Author.vinyl.filter(age__gt=100), 2) == []
    assert await _streamed(Author.vinyl.none()) == []
    assert await returned() == 0


async def test_a_stream_compiles_the_plan_of_its_shape_once():
    await _authors(6)  # also loads the server facts the plan cache needs
    plans = plan_cache_for(ALIAS)
    plans.clear()
    qs = Author.vinyl.filter(age__lt=5).order_by("id")
    key = (Author.vinyl.model, "rows", qs._recipe)
    assert len(await _streamed(qs, 4)) == 5
    plan = plans[key]
    assert type(plan) is Plan
    # Another value in the same shape streams with the cached plan, and
    # await qs shares it.
    assert len(await _streamed(Author.vinyl.filter(age__lt=2).order_by("id"), 4)) == 2
    assert len(await Author.vinyl.filter(age__lt=3).order_by("id")) == 3
    assert plans[key] is plan


async def test_prefetch_related_still_streams_through_django():
    await _authors(3)
    author = await Author.vinyl.order_by("id").first()
    await Book.vinyl.create(title="t", author=author)
    streamed = [a async for a in Author.vinyl.prefetch_related("book_set").order_by("id")]
    assert [len(a._prefetched_objects_cache["book_set"]) for a in streamed] == [1, 0, 0]
    assert await returned() == 0


async def test_the_stream_statement_is_logged_once(no_bridge_stream):
    await _authors(7)
    async with vinyl.capture_queries() as q:
        assert len(await _streamed(Author.vinyl.filter(age__gte=0), 2)) == 7
    assert len(q) == 1
    assert "testapp_author" in q[0].sql.lower()
    assert tuple(q[0].params) == (0,)


async def test_breaking_early_closes_the_cursor_and_the_connection_is_reusable(no_bridge_stream):
    await _authors(40)
    async with aclosing(Author.vinyl.order_by("id").iterator(chunk_size=3)) as rows:
        async for author in rows:
            if author.name == "a004":
                break
    assert await returned() == 0
    # A plain break: the generator is closed when it is collected.
    async for _ in Author.vinyl.order_by("id").iterator(chunk_size=3):
        break
    assert await settle() == 0
    assert await Author.vinyl.count() == 40
    assert len(await _streamed(Author.vinyl.all(), 7)) == 40


async def test_stream_inside_atomic_sees_uncommitted_writes(no_bridge_stream):
    await _authors(5)
    async with vinyl.atomic():
        await Author.vinyl.create(name="zz-new", age=99)
        await Author.vinyl.filter(name="a000").update(age=50)
        streamed = {a.name: a.age async for a in Author.vinyl.order_by("id").iterator(chunk_size=2)}
        assert streamed["zz-new"] == 99 and streamed["a000"] == 50
        assert len(streamed) == 6
    assert await returned() == 0


async def test_stream_inside_atomic_locks_the_connection_only_per_chunk(no_bridge_stream):
    """Between chunks the block's connection is free: this task and sibling
    tasks run statements on it mid-stream."""
    await _authors(20)
    async with vinyl.atomic():
        scope = active_scope(ALIAS)
        names = []
        async for author in Author.vinyl.order_by("id").iterator(chunk_size=3):
            assert not scope.lock.locked()
            names.append(author.name)
            if len(names) % 4 == 0:
                await Book.vinyl.create(title=author.name, author=author)
                counts = await asyncio.gather(*(asyncio.create_task(Book.vinyl.count()) for _ in range(3)))
                assert counts == [len(names) // 4] * 3
        assert names == [f"a{i:03}" for i in range(20)]
    assert await Book.vinyl.count() == 5
    assert await returned() == 0


async def test_breaking_early_inside_atomic_keeps_the_block_usable(no_bridge_stream):
    await _authors(30)
    async with vinyl.atomic():
        async with aclosing(Author.vinyl.order_by("id").iterator(chunk_size=4)) as rows:
            async for author in rows:
                if author.name == "a005":
                    break
        await Author.vinyl.filter(name="a001").update(age=77)
        assert len(await _streamed(Author.vinyl.all(), 8)) == 30
    assert (await Author.vinyl.get(name="a001")).age == 77
    assert await returned() == 0


def _failing_stream(monkeypatch, error: Exception, after: int = 1) -> None:
    """Make the driver's cursor raise ``error`` once ``after`` chunks were read."""
    config = engine_entry(ALIAS).config
    opener = config.stream

    class Failing:
        def __init__(self, cursor):
            self.cursor = cursor
            self.read = 0

        async def fetchmany(self, size):
            if self.read == after:
                raise error
            self.read += 1
            return await self.cursor.fetchmany(size)

        async def close(self):
            await self.cursor.close()

    async def open_failing(*args):
        return Failing(await opener(*args))

    monkeypatch.setattr(config, "stream", open_failing)


def _driver_error(backend: str) -> Exception:
    if backend == "postgresql":
        import asyncpg

        return asyncpg.exceptions.DivisionByZeroError("division by zero (injected)")
    if backend == "mysql":
        import asyncmy.errors

        return asyncmy.errors.OperationalError(1317, "query execution was interrupted (injected)")
    import sqlite3

    return sqlite3.OperationalError("interrupted (injected)")


async def test_a_driver_error_mid_stream_is_djangos_and_frees_the_connection(backend, monkeypatch, no_bridge_stream):
    await _authors(10)
    error = _driver_error(backend)
    _failing_stream(monkeypatch, error)
    seen = []
    with pytest.raises(DatabaseError) as raised:
        async for author in Author.vinyl.order_by("id").iterator(chunk_size=3):
            seen.append(author.name)
    assert raised.value.__cause__ is error
    assert len(seen) == 3
    assert await returned() == 0
    monkeypatch.undo()
    assert await Author.vinyl.count() == 10


async def test_a_driver_error_mid_stream_inside_atomic_rolls_the_block_back(backend, monkeypatch, no_bridge_stream):
    await _authors(10)
    _failing_stream(monkeypatch, _driver_error(backend))
    with pytest.raises(DatabaseError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="in-block")
            async for _ in Author.vinyl.order_by("id").iterator(chunk_size=4):
                pass
    assert await returned() == 0
    monkeypatch.undo()
    assert await Author.vinyl.filter(name="in-block").count() == 0


@pytest.mark.backends("postgresql", reason="a portal sends rows only when fetched, so the server ends the connection mid-stream for sure; MySQL may have sent the whole result already, SQLite has no server")
async def test_the_server_ending_the_connection_mid_stream(backend, no_bridge_stream):
    await _authors(10)
    seen = []
    with pytest.raises(OperationalError):
        async for author in Author.vinyl.order_by("id").iterator(chunk_size=3):
            seen.append(author.name)
            if len(seen) == 1:
                async with vinyl.get_engine().connect() as other:
                    ended = await other.exec_driver_sql(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND state = 'idle in transaction'"
                    )
                    assert ended.scalar_one() == 1
    assert len(seen) == 3
    assert await settle() == 0
    assert await Author.vinyl.count() == 10
    assert len(await _streamed(Author.vinyl.all(), 4)) == 10


@pytest.mark.backends("postgresql", "mysql", reason="checks open transactions in the server's session tables; SQLite has no server")
async def test_cancelling_a_planned_stream_frees_everything(backend, no_bridge_stream):
    await _authors(1000)
    first = asyncio.Event()

    async def consume(in_block: bool) -> None:
        async def read() -> None:
            async for _ in Author.vinyl.order_by("id").iterator(chunk_size=1):
                first.set()
                await asyncio.sleep(0)
            await asyncio.sleep(3600)  # read out before the cancellation: still cancelled

        if in_block:
            async with vinyl.atomic():
                await read()
        else:
            await read()

    for in_block in (False, True):
        first.clear()
        task = asyncio.create_task(consume(in_block))
        await asyncio.wait([task, asyncio.ensure_future(first.wait())], return_when=asyncio.FIRST_COMPLETED)
        assert not task.done(), task
        await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await settle() == 0
        assert await no_open_transactions(backend)
    assert await Author.vinyl.count() == 1000

