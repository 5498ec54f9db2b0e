"""Pooled connections autocommit; transactions begin on demand.

A read outside a block opens no transaction (so the pool has none to roll
back), and SQLAlchemy code sharing vinyl's engine keeps SQLAlchemy's
transaction semantics.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

import vinyl
from tests.testapp.models import Author
from tests.txhelpers import committed_names, configure_pool

pytestmark = [
    pytest.mark.usefixtures("vinyl_db"),
    pytest.mark.backends("postgresql", "mysql", reason="server transaction semantics of a network pool"),
]


async def _session_counters() -> dict[str, int]:
    async with vinyl.get_engine().connect() as conn:
        rows = await conn.exec_driver_sql(
            "SHOW SESSION STATUS WHERE Variable_name IN ('Com_rollback', 'Com_begin', 'Com_commit')"
        )
        return {name: int(value) for name, value in rows}


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before}


@pytest.mark.backends("mysql", reason="counts the statements of one MySQL session")
async def test_mysql_reads_outside_a_block_send_no_begin_commit_or_rollback():
    await configure_pool(pool_size=1, max_overflow=0)  # one server session
    author = await Author.vinyl.create(name="Ann")
    first = await _session_counters()
    before = await _session_counters()
    reading_counters = _delta(before, first)  # what one counter read costs
    for _ in range(3):
        assert (await Author.vinyl.get(pk=author.pk)).name == "Ann"
        assert await Author.vinyl.filter(name="Ann").count() == 1
        assert await Author.vinyl.filter(name="Ann").exists()
        assert [a.name for a in await Author.vinyl.filter(age=0)] == ["Ann"]
    after = await _session_counters()
    assert _delta(after, before) == reading_counters


async def test_a_single_write_outside_a_block_is_committed():
    await Author.vinyl.create(name="Ann")
    await Author.vinyl.filter(name="Ann").update(name="Bob")
    assert await committed_names() == ["Bob"]


async def test_sqlalchemy_code_on_the_shared_engine_keeps_its_transactions():
    engine = vinyl.get_engine()
    # Not committed: SQLAlchemy rolls back when the connection closes.
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO testapp_author (name, age) VALUES ('uncommitted', 0)"))
    # Rolled back by the error.
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO testapp_author (name, age) VALUES ('rolled back', 0)"))
            raise RuntimeError("boom")
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO testapp_author (name, age) VALUES ('committed', 0)"))
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("INSERT INTO testapp_author (name, age) VALUES ('autocommitted', 0)"))
    assert await committed_names() == ["autocommitted", "committed"]


async def test_atomic_rolls_back_every_statement_of_the_block():
    with pytest.raises(RuntimeError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="Ann")
            await Author.vinyl.filter(name="Ann").update(name="Bob")
            assert await Author.vinyl.filter(name="Bob").count() == 1
            raise RuntimeError("boom")
    assert await committed_names() == []


@pytest.mark.backends("mysql", reason="counts the statements of one MySQL session")
async def test_mysql_connection_given_its_own_isolation_level_comes_back_to_autocommit():
    await configure_pool(pool_size=1, max_overflow=0)  # one server session
    author = await Author.vinyl.create(name="Ann")
    async with vinyl.get_engine().connect() as conn:
        conn = await conn.execution_options(isolation_level="SERIALIZABLE")
        await conn.execute(text("SELECT 1"))
        await conn.commit()
    first = await _session_counters()
    before = await _session_counters()
    reading_counters = _delta(before, first)
    for _ in range(3):
        assert (await Author.vinyl.get(pk=author.pk)).name == "Ann"
    assert _delta(await _session_counters(), before) == reading_counters
    async with vinyl.get_engine().connect() as conn:
        level = (await conn.exec_driver_sql("SELECT @@session.tx_isolation")).scalar_one()
    assert level == "READ-COMMITTED"


async def _session_prepared_statements() -> int:
    async with vinyl.get_engine().connect() as conn:
        return (await conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements WHERE name NOT LIKE '\\_\\_vinyl\\_%%'")).scalar_one()


@pytest.mark.backends("postgresql", reason="asyncpg's prepared statements")
@pytest.mark.parametrize("prepared", [True, False])
async def test_postgresql_prepared_statements_can_be_turned_off_for_pgbouncer(prepared):
    await configure_pool({"prepared_statements": prepared}, pool_size=1, max_overflow=0)
    author = await Author.vinyl.create(name="Ann")
    for _ in range(3):
        assert (await Author.vinyl.get(pk=author.pk)).name == "Ann"
        assert await Author.vinyl.filter(name="Ann").count() == 1
    named = await _session_prepared_statements()
    assert (named > 0) is prepared


@pytest.mark.backends("postgresql", reason="a PostgreSQL option")
async def test_prepared_statements_option_must_be_a_bool():
    from django.core.exceptions import ImproperlyConfigured

    await configure_pool({"prepared_statements": "no"})
    with pytest.raises(ImproperlyConfigured, match="prepared_statements"):
        await Author.vinyl.count()
