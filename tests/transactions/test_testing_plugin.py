"""vinyl.testing: each test inside a transaction rolled back at its end."""

from __future__ import annotations

import asyncio

import pytest
from django.db import IntegrityError
from django.db.transaction import TransactionManagementError
from sqlalchemy import text

import vinyl
from tests.testapp.models import Author, Book
from tests.txhelpers import committed_names

pytestmark = pytest.mark.usefixtures("vinyl_db", "vinyl_transaction")


async def test_writes_stay_inside_the_test_transaction(vinyl_transaction):
    await Author.vinyl.create(name="Ann")
    async with vinyl.atomic():
        await Author.vinyl.create(name="Bob")
    assert await Author.vinyl.count() == 2
    assert await committed_names() == []  # nothing committed for other sessions
    conn = vinyl_transaction["vinyl_default"]
    # Core statements on the given connection share the transaction.
    assert (await conn.execute(text("SELECT count(*) FROM testapp_author"))).scalar_one() == 2


async def test_an_error_outside_atomic_does_not_break_the_next_query():
    await Author.vinyl.create(name="Ann", email="a@x")
    with pytest.raises(IntegrityError):
        await Author.vinyl.create(name="Ann2", email="a@x")
    assert await Author.vinyl.count() == 1


async def test_outermost_atomic_behaves_as_in_production():
    calls: list[str] = []
    vinyl.on_commit(lambda: calls.append("now"))
    assert calls == ["now"]
    async with vinyl.atomic(durable=True):
        vinyl.on_commit(lambda: calls.append("after block"))
        async with vinyl.atomic():
            vinyl.on_commit(lambda: calls.append("nested"))
        assert calls == ["now"]
    assert calls == ["now", "after block", "nested"]
    with pytest.raises(ValueError):
        async with vinyl.atomic():
            vinyl.on_commit(lambda: calls.append("dropped"))
            raise ValueError
    assert calls == ["now", "after block", "nested"]


@pytest.mark.backends("postgresql", "mysql", reason="SQLite has no select_for_update()")
async def test_select_for_update_still_needs_atomic():
    await Author.vinyl.create(name="Ann")
    with pytest.raises(TransactionManagementError):
        await Author.vinyl.select_for_update()
    async with vinyl.atomic():
        assert len(await Author.vinyl.select_for_update()) == 1


async def test_concurrent_tasks_and_streams_share_the_test_transaction():
    await asyncio.gather(*(Author.vinyl.create(name=f"a{i:02}") for i in range(20)))
    names = []
    async for author in Author.vinyl.order_by("name").iterator(chunk_size=3):
        names.append(author.name)
        await Book.vinyl.create(title=author.name, author=author)  # mid-stream
    assert len(names) == 20
    assert await Book.vinyl.count() == 20
