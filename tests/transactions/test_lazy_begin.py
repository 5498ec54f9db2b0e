"""What a block sends: its transaction begins right before its first statement.

An ``atomic`` block that runs no statement sends neither BEGIN nor COMMIT
(on MySQL/MariaDB as on PostgreSQL, whose asyncpg adapter begins lazily
itself, and SQLite); one that runs statements sends BEGIN just before the
first of them. What is sent is read from the ``vinyl.sql`` log (BEGIN,
COMMIT and ROLLBACK are logged from SQLAlchemy's transaction events) and, on
MySQL, from the server's own counters of the session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from django.db import IntegrityError
from sqlalchemy import text

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import committed_names, configure_pool, returned
from vinyl.transaction import rolled_back

pytestmark = pytest.mark.usefixtures("vinyl_db")


@pytest.fixture
def sent(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """``sent()``: the statements sent so far in the test, each as its first
    two words (upper case), as the vinyl.sql log shows them."""
    caplog.set_level(logging.DEBUG, logger="vinyl.sql")

    def statements() -> list[str]:
        return [" ".join(r.sql.split()[:2]).upper() for r in caplog.records if r.name == "vinyl.sql"]

    return statements


def _words(sent: list[str]) -> list[str]:
    return [s.split()[0] for s in sent]


async def test_an_empty_block_sends_nothing(sent):
    await Author.vinyl.count()  # connected, the server's facts read
    sent_before = sent()
    async with vinyl.atomic():
        pass
    assert sent() == sent_before
    assert await returned() == 0


async def test_a_block_sends_begin_right_before_its_first_statement_and_commits(sent):
    await Author.vinyl.count()
    n = len(sent())
    async with vinyl.atomic():
        assert sent()[n:] == []  # entering sent nothing
        await Author.vinyl.create(name="Ann")
    assert _words(sent()[n:]) == ["BEGIN", "INSERT", "COMMIT"]
    assert await committed_names() == ["Ann"]


async def test_a_block_of_reads_begins_too(sent):
    await Author.vinyl.create(name="Ann")
    n = len(sent())
    async with vinyl.atomic():
        assert (await Author.vinyl.get(name="Ann")).name == "Ann"
        assert await Author.vinyl.count() == 1
    assert _words(sent()[n:]) == ["BEGIN", "SELECT", "SELECT", "COMMIT"]


async def test_a_nested_empty_block_is_a_savepoint_after_the_begin(sent):
    await Author.vinyl.count()
    n = len(sent())
    async with vinyl.atomic():
        async with vinyl.atomic():
            pass
        await Author.vinyl.create(name="Ann")
    words = sent()[n:]
    assert _words(words) == ["BEGIN", "SAVEPOINT", "RELEASE", "INSERT", "COMMIT"], words
    assert await committed_names() == ["Ann"]


async def test_a_savepoint_first_then_a_rollback_of_it(sent):
    await Author.vinyl.count()
    n = len(sent())
    async with vinyl.atomic():
        with pytest.raises(ValueError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="undone")
                raise ValueError
        await Author.vinyl.create(name="kept")
    words = _words(sent()[n:])
    assert words == ["BEGIN", "SAVEPOINT", "INSERT", "ROLLBACK", "INSERT", "COMMIT"], words
    assert await committed_names() == ["kept"]


async def test_on_commit_runs_after_an_empty_block():
    calls: list[str] = []
    async with vinyl.atomic():
        vinyl.on_commit(lambda: calls.append("sync"))

        async def later() -> None:
            calls.append("async")

        vinyl.on_commit(later)
    assert calls == ["sync", "async"]


async def test_on_commit_is_dropped_when_an_empty_block_raises():
    calls: list[str] = []
    with pytest.raises(ValueError):
        async with vinyl.atomic():
            vinyl.on_commit(lambda: calls.append("x"))
            raise ValueError
    assert calls == []
    assert await returned() == 0


async def test_an_empty_block_that_raises_sends_nothing(sent):
    await Author.vinyl.count()
    n = len(sent())
    with pytest.raises(ValueError):
        async with vinyl.atomic():
            raise ValueError
    assert sent()[n:] == []
    assert await returned() == 0


async def test_a_failing_first_statement_rolls_the_block_back(sent):
    await Author.vinyl.create(name="Ann", email="a@x")
    n = len(sent())
    with pytest.raises(IntegrityError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="Bob", email="a@x")
    assert _words(sent()[n:]) == ["BEGIN", "INSERT", "ROLLBACK"]
    assert await committed_names() == ["Ann"]
    # The connection went back clean: the next block commits on its own.
    async with vinyl.atomic():
        await Author.vinyl.create(name="Cy")
    assert await committed_names() == ["Ann", "Cy"]
    assert await returned() == 0


async def test_a_failing_first_statement_caught_in_the_block_rolls_it_back(sent):
    await Author.vinyl.create(name="Ann", email="a@x")
    n = len(sent())
    async with vinyl.atomic():
        with pytest.raises(IntegrityError):
            await Author.vinyl.create(name="Bob", email="a@x")
    assert _words(sent()[n:]) == ["BEGIN", "INSERT", "ROLLBACK"]
    assert await committed_names() == ["Ann"]


async def test_sqlalchemy_core_on_the_shared_connection_is_in_the_blocks_transaction(sent):
    engine = vinyl.get_engine()
    await Author.vinyl.count()
    async with engine.connect() as conn:
        async with vinyl.use_connection(conn):
            async with vinyl.atomic():
                await conn.execute(text("INSERT INTO testapp_author (name, age) VALUES ('core', 1)"))
                # vinyl sees the Core row: the same transaction.
                assert await Author.vinyl.filter(name="core").exists()
                await Author.vinyl.create(name="orm")
        assert await committed_names() == []
        await conn.rollback()
    assert await committed_names() == []


async def test_sqlalchemy_core_first_on_a_lazily_begun_connection_begins_it(sent):
    # The connection of a transaction vinyl owns and has not begun yet (the
    # one vinyl.testing hands out): SQLAlchemy Core's first statement begins
    # it, and vinyl's statements join that transaction.
    await Author.vinyl.count()
    n = len(sent())
    async with rolled_back() as conn:
        assert sent()[n:] == []
        await conn.execute(text("INSERT INTO testapp_author (name, age) VALUES ('core', 1)"))
        assert await Author.vinyl.filter(name="core").exists()
        async with vinyl.atomic():
            await Author.vinyl.create(name="orm")
        assert sorted(await Author.vinyl.values_list("name", flat=True)) == ["core", "orm"]
    words = _words(sent()[n:])
    assert words[:2] == ["BEGIN", "INSERT"], words
    assert words[-1] == "ROLLBACK", words
    assert words.count("BEGIN") == 1, words
    assert await committed_names() == []
    assert await returned() == 0


async def test_vinyl_first_then_sqlalchemy_core_on_a_lazily_begun_connection(sent):
    await Author.vinyl.count()
    n = len(sent())
    async with rolled_back() as conn:
        await Author.vinyl.create(name="orm")
        rows = await conn.execute(text("SELECT name FROM testapp_author"))
        assert [r[0] for r in rows] == ["orm"]
    words = _words(sent()[n:])
    assert words.count("BEGIN") == 1 and words[0] == "BEGIN", words
    assert await committed_names() == []


# -- what the server counts (MySQL/MariaDB) --------------------------------------


async def _session_counters() -> dict[str, int]:
    async with vinyl.get_engine().connect() as conn:
        rows = await conn.exec_driver_sql(
            "SHOW SESSION STATUS WHERE Variable_name IN "
            "('Com_begin', 'Com_commit', 'Com_rollback', 'Com_savepoint', 'Com_release_savepoint')"
        )
        return {name: int(value) for name, value in rows}


async def _counted(block) -> dict[str, int]:
    """What ``block()`` made the one server session count, beyond reading the counters."""
    first = await _session_counters()
    before = await _session_counters()
    reading = {k: before[k] - first[k] for k in first}
    await block()
    after = await _session_counters()
    return {k: after[k] - before[k] - reading[k] for k in before if after[k] - before[k] - reading[k]}


@pytest.mark.backends("mysql", reason="counts the statements of one MySQL session (SHOW SESSION STATUS)")
async def test_mysql_server_counts_no_begin_or_commit_for_an_empty_block():
    await configure_pool(pool_size=1, max_overflow=0)  # one server session
    await Author.vinyl.count()

    async def empty() -> None:
        for _ in range(3):
            async with vinyl.atomic():
                pass

    assert await _counted(empty) == {}


@pytest.mark.backends("mysql", reason="counts the statements of one MySQL session (SHOW SESSION STATUS)")
async def test_mysql_server_counts_one_begin_and_commit_for_a_block_with_statements():
    await configure_pool(pool_size=1, max_overflow=0)
    await Author.vinyl.count()

    async def block() -> None:
        async with vinyl.atomic():
            await Author.vinyl.create(name="Ann")
            async with vinyl.atomic():
                pass

    assert await _counted(block) == {"Com_begin": 1, "Com_commit": 1, "Com_savepoint": 1, "Com_release_savepoint": 1}
    assert await committed_names() == ["Ann"]


@pytest.mark.backends("mysql", reason="counts the statements of one MySQL session (SHOW SESSION STATUS)")
async def test_mysql_server_counts_a_rollback_for_a_failing_first_statement():
    await configure_pool(pool_size=1, max_overflow=0)
    await Author.vinyl.create(name="Ann", email="a@x")

    async def block() -> None:
        with pytest.raises(IntegrityError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="Bob", email="a@x")

    assert await _counted(block) == {"Com_begin": 1, "Com_rollback": 1}
    assert await committed_names() == ["Ann"]
