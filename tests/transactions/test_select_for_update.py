"""select_for_update(): inside atomic only, with nowait, skip_locked and of."""

from __future__ import annotations

import asyncio

import pytest
from django.db import DatabaseError, NotSupportedError
from django.db.transaction import TransactionManagementError

import vinyl
from tests.testapp.models import Author, Book

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="SQLite has no row locks (tests/backends/test_sqlite.py checks its error)"),
]


async def test_outside_atomic_raises_transaction_management_error():
    await Author.vinyl.create(name="Ann")
    qs = Author.vinyl.select_for_update()
    with pytest.raises(TransactionManagementError, match="outside of a transaction"):
        await qs
    with pytest.raises(TransactionManagementError):
        await qs.get(name="Ann")
    with pytest.raises(TransactionManagementError):
        await qs.first()
    with pytest.raises(TransactionManagementError):
        [a async for a in qs]


async def test_inside_atomic_locks_the_rows():
    await Author.vinyl.create(name="Ann")
    async with vinyl.atomic():
        [ann] = await Author.vinyl.select_for_update().filter(name="Ann")
        ann.age = 7
        await ann.save()
    assert (await Author.vinyl.get(name="Ann")).age == 7


async def _hold_lock(name: str, locked: asyncio.Event, release: asyncio.Event) -> None:
    async with vinyl.atomic():
        await Author.vinyl.select_for_update().get(name=name)
        locked.set()
        await release.wait()


async def test_nowait_and_skip_locked_against_a_lock_held_elsewhere():
    for name in ("Ann", "Bob", "Cy"):
        await Author.vinyl.create(name=name)
    locked, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_lock("Bob", locked, release))
    await locked.wait()
    try:
        async with vinyl.atomic():
            free = await Author.vinyl.select_for_update(skip_locked=True).order_by("name")
            assert [a.name for a in free] == ["Ann", "Cy"]
        with pytest.raises(DatabaseError):
            async with vinyl.atomic():
                await Author.vinyl.select_for_update(nowait=True).get(name="Bob")
    finally:
        release.set()
        await holder
    async with vinyl.atomic():
        assert (await Author.vinyl.select_for_update(nowait=True).get(name="Bob")).name == "Bob"


async def test_of_locks_the_named_tables(backend):
    ann = await Author.vinyl.create(name="Ann")
    await Book.vinyl.create(title="T", author=ann)
    qs = Book.vinyl.select_related("author").select_for_update(of=("self",))
    async with vinyl.atomic():
        if backend == "postgresql":
            [book] = await qs
            assert book["author"].name == "Ann"
        else:
            # As in Django: MySQL and MariaDB have no SELECT ... FOR UPDATE OF.
            with pytest.raises(NotSupportedError):
                await qs
