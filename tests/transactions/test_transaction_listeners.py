"""A block's BEGIN and COMMIT with the engine's transaction listeners.

An application's ``begin``/``commit`` listener may talk to the server
(anything that awaits through SQLAlchemy's ``await_only``): it runs, in its
place, on every backend. What vinyl's log shows of a block stays BEGIN ...
COMMIT, a COMMIT that fails and blocks run at once in tasks included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from django.db import IntegrityError
from sqlalchemy import event
from sqlalchemy.util import await_only

import vinyl
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.usefixtures("vinyl_db")


@pytest.fixture
async def sent(vinyl_db: str, caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """``sent()``: the first word (upper case) of each statement the
    vinyl.sql log shows so far in the test (after a first statement, which
    reads the server's facts where they are still to read)."""
    await Author.vinyl.count()
    caplog.set_level(logging.DEBUG, logger="vinyl.sql")
    return lambda: [r.sql.split()[0].upper() for r in caplog.records if r.name == "vinyl.sql"]


@pytest.fixture
async def awaiting_listeners(vinyl_db: str) -> AsyncIterator[list[str]]:
    """Listeners of the application on the engine's begin and commit that
    await (so need the greenlet); yields what they saw, in order."""
    # (after vinyl_db has pointed the alias at the test's backend, on the
    # test's event loop: its engine)
    engine = vinyl.get_engine().sync_engine
    seen: list[str] = []

    def on_begin(conn: object) -> None:
        await_only(asyncio.sleep(0))
        seen.append("begin")

    def on_commit(conn: object) -> None:
        await_only(asyncio.sleep(0))
        seen.append("commit")

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "commit", on_commit)


async def test_listeners_that_await_run_at_begin_and_commit(sent, awaiting_listeners):
    n = len(sent())
    async with vinyl.atomic():
        await Author.vinyl.create(name="a")
        await Author.vinyl.create(name="b")
    assert awaiting_listeners == ["begin", "commit"]
    assert sent()[n:] == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    assert await Author.vinyl.count() == 2


async def test_a_block_without_the_listeners_logs_begin_and_commit(sent):
    n = len(sent())
    async with vinyl.atomic():
        await Author.vinyl.create(name="a")
        assert await Author.vinyl.count() == 1
    assert sent()[n:] == ["BEGIN", "INSERT", "SELECT", "COMMIT"]
    assert await Author.vinyl.count() == 1


async def test_a_failed_commit_is_logged_and_the_next_block_runs(vinyl_db, sent):
    n = len(sent())
    with pytest.raises(IntegrityError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="kept?")
            await Book.vinyl.create(title="orphan", author_id=987654)
    # The foreign key is checked at COMMIT where Django makes it deferred
    # (PostgreSQL, SQLite), at the INSERT on MySQL.
    last = "ROLLBACK" if vinyl_db == "mysql" else "COMMIT"
    assert sent()[n:] == ["BEGIN", "INSERT", "INSERT", last]
    async with vinyl.atomic():
        await Author.vinyl.create(name="after")
    assert await Author.vinyl.values_list("name", flat=True) == ["after"]


async def test_blocks_run_at_once_in_tasks(sent):
    async def block(i: int) -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name=f"a{i}")

    await asyncio.gather(*(block(i) for i in range(5)))
    words = sent()
    assert words.count("BEGIN") == words.count("COMMIT") == 5
    assert await Author.vinyl.count() == 5
