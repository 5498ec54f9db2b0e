"""What the SQLite backend adds: Django's SQL functions, real transactions."""

from __future__ import annotations

import asyncio
import datetime
import decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, NotSupportedError, connections
from django.db.models import StdDev
from django.db.models.functions import ExtractYear, TruncMonth

import vinyl
from tests.testapp.models import Author, Book

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("sqlite", reason="checks what only the SQLite backend does"),
]


async def test_djangos_sql_functions_are_registered_on_each_connection():
    ann = await Author.vinyl.create(name="Ann", age=10)
    await Author.vinyl.create(name="Bob", age=30)
    await Book.vinyl.create(title="a", author=ann, published=datetime.date(2024, 3, 9))
    years = await Book.vinyl.annotate(y=ExtractYear("published")).values_list("y", flat=True)
    assert years == [2024]
    months = await Book.vinyl.annotate(m=TruncMonth("published")).values_list("m", flat=True)
    assert months == [datetime.date(2024, 3, 1)]
    # An aggregate function (create_aggregate), not only scalar ones.
    assert await Author.vinyl.aggregate(s=StdDev("age")) == {"s": 10.0}


async def test_values_come_back_in_djangos_types():
    ann = await Author.vinyl.create(name="Ann")
    book = await Book.vinyl.create(
        title="a", author=ann, price=decimal.Decimal("12.50"), published=datetime.date(2024, 1, 2)
    )
    loaded = await Book.vinyl.get(pk=book.pk)
    assert loaded.price == decimal.Decimal("12.50")
    assert loaded.published == datetime.date(2024, 1, 2)


async def test_foreign_keys_are_enforced():
    from sqlalchemy import text

    async with vinyl.get_engine().connect() as conn:
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    with pytest.raises(IntegrityError):
        await Book.vinyl.create(title="orphan", author_id=987654)


async def test_select_for_update_says_sqlite_cannot_lock_rows():
    await Author.vinyl.create(name="Ann")
    with pytest.raises(NotSupportedError, match="not supported on SQLite"):
        async with vinyl.atomic():
            await Author.vinyl.select_for_update().get(name="Ann")


async def test_update_or_create_still_works_without_row_locks():
    # Django's update_or_create asks for row locks itself; SQLite skips them.
    obj, created = await Author.vinyl.update_or_create(name="Ann", defaults={"age": 3})
    assert created is True
    obj, created = await Author.vinyl.update_or_create(name="Ann", defaults={"age": 4})
    assert (created, obj.age) == (False, 4)


async def test_savepoint_rollback_keeps_the_outer_transaction():
    async with vinyl.atomic():
        # A read first: the driver's own BEGIN would not come before a SELECT.
        assert await Author.vinyl.count() == 0
        await Author.vinyl.create(name="outer")
        with pytest.raises(ZeroDivisionError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="inner")
                1 / 0
    assert await Author.vinyl.values_list("name", flat=True) == ["outer"]


async def test_rollback_undoes_every_statement_of_the_block():
    with pytest.raises(ZeroDivisionError):
        async with vinyl.atomic():
            await Author.vinyl.count()
            await Author.vinyl.create(name="a")
            async with vinyl.atomic():
                await Author.vinyl.create(name="b")
            1 / 0
    assert await Author.vinyl.count() == 0


async def test_uncommitted_rows_are_invisible_to_other_tasks():
    inserted = asyncio.Event()
    checked = asyncio.Event()

    async def writer() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="pending")
            inserted.set()
            await checked.wait()

    async def reader() -> int:
        await inserted.wait()
        try:
            return await Author.vinyl.count()
        finally:
            checked.set()

    _, seen = await asyncio.gather(writer(), reader())
    assert seen == 0
    assert await Author.vinyl.count() == 1


async def test_bulk_create_beyond_djangos_old_999_parameter_limit():
    objs = [Author.vinyl.model(name=f"a{i}", age=i) for i in range(1200)]
    await Author.vinyl.bulk_create(objs)
    assert await Author.vinyl.count() == 1200


def test_max_query_params_needs_no_connection():
    features = connections["vinyl_sqlite"].features
    assert features.max_query_params >= 999


async def test_transaction_mode_option_is_used_for_begin():
    settings = dict(connections.settings["vinyl_default"])
    settings["OPTIONS"] = {**settings.get("OPTIONS", {}), "transaction_mode": "IMMEDIATE"}
    connections.settings["vinyl_sqlite_immediate"] = settings
    seen: list[str] = []
    try:
        engine = vinyl.get_engine("vinyl_sqlite_immediate")
        from sqlalchemy import event

        event.listen(engine.sync_engine, "before_cursor_execute", lambda c, cur, stmt, *a: seen.append(stmt))
        await Author.vinyl.using("vinyl_sqlite_immediate").create(name="x")
    finally:
        await vinyl.dispose("vinyl_sqlite_immediate")
        del connections.settings["vinyl_sqlite_immediate"]
    assert "BEGIN IMMEDIATE" in seen


def test_in_memory_database_is_refused_with_advice():
    from vinyl.sqlite_backend.base import DatabaseWrapper

    wrapper = DatabaseWrapper({**connections.settings["vinyl_sqlite"], "NAME": ":memory:"}, "mem")
    with pytest.raises(ImproperlyConfigured, match="file path"):
        wrapper.vinyl_engine_config()


def test_only_sqlalchemys_floor_and_regexp_are_left_out_an_applications_own_are_registered():
    # vinyl's SQLite connections keep Django's REGEXP and SQLite's FLOOR over
    # SQLAlchemy's (its dialect registers both on every new connection), and
    # nothing else: a function the application registers under either name
    # is the one its SQL calls.
    import sqlite3

    from vinyl.sqlite_backend.base import _connection_class

    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    conn = sqlite3.connect(":memory:", factory=_connection_class(()))
    try:
        SQLiteDialect_pysqlite(dbapi=sqlite3).on_connect()(conn)  # SQLAlchemy's set-up of a new connection
        assert conn.execute("SELECT FLOOR(NULL), 12 REGEXP '2'").fetchone() == (None, 1)
        conn.create_function("regexp", 2, lambda pattern, value: pattern == "mine")
        conn.create_function("floor", 1, lambda value: -1)
        assert conn.execute("SELECT FLOOR(2.5), 'x' REGEXP 'mine'").fetchone() == (-1, 1)
    finally:
        conn.close()
