"""One test per rule of vinyl's error mapping (vinyl.exceptions.django_error):
each error produced by the real server, through vinyl's paths (Django's
cursor in the bridge, the driver in plans), compared with what Django's own
backend raises for the same statement."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connections

import vinyl
from tests.faults.oracle import django_outcome, vinyl_outcome
from tests.testapp.models import Author
from tests.txhelpers import returned

pytestmark = pytest.mark.usefixtures("vinyl_db")

SYNC = {"postgresql": "sync_postgresql", "mysql": "sync_mysql", "sqlite": "sync_sqlite"}

# (rule, SQL, params, backends): each statement fails on the server.
STATEMENTS = [
    ("SQLSTATE 42601 / 1064: syntax error", "SELEC 1", [], ("postgresql", "mysql", "sqlite")),
    ("SQLSTATE 42P01 / 1146: unknown table", "SELECT * FROM no_such_table", [], ("postgresql", "mysql", "sqlite")),
    ("SQLSTATE 22012: division by zero", "SELECT 1 / 0", [], ("postgresql",)),
    ("SQLSTATE 22003 / 1690: numeric out of range", "SELECT CAST(9223372036854775807 AS BIGINT) + 1", [], ("postgresql",)),
    ("MySQL 1690 is Django's IntegrityError", "SELECT CAST(0 AS UNSIGNED) - 1", [], ("mysql",)),
    ("SQLSTATE 22P02: invalid text for a type", "SELECT CAST(%s AS INTEGER)", ["abc"], ("postgresql",)),
    ("SQLSTATE 23505 / 1062: unique violation",
     "INSERT INTO testapp_tag (name) VALUES ('dup'), ('dup')", [], ("postgresql", "mysql", "sqlite")),
    ("SQLSTATE 23502 / 1048: not null violation",
     "INSERT INTO testapp_tag (name) VALUES (NULL)", [], ("postgresql", "mysql", "sqlite")),
    ("MySQL 1305: unknown savepoint", "RELEASE SAVEPOINT nowhere", [], ("mysql",)),
]


async def test_raw_statement_errors_are_djangos(backend):
    rules = [(rule, sql, params) for rule, sql, params, backends in STATEMENTS if backend in backends]
    assert rules
    for rule, sql, params in rules:
        expected = await django_outcome(lambda: connections[SYNC[backend]].cursor().execute(sql, params))
        assert expected[0] == "error", f"{rule}: Django ran it"
        got = await vinyl_outcome(vinyl.fetch(sql, params))
        assert got == expected, f"{rule}: vinyl {got}, Django {expected}"
        assert await returned() == 0


async def test_unique_violation_on_the_plan_path_is_an_integrity_error(backend):
    await Author.vinyl.create(name="a", email="same@x")
    expected = await django_outcome(
        lambda: Author.objects.using(SYNC[backend]).create(name="b", email="same@x")
    )
    got = await vinyl_outcome(Author.vinyl.create(name="b", email="same@x"))
    assert got == expected == ("error", "IntegrityError")


async def test_wrong_type_on_the_plan_path_matches_django(backend):
    # asyncpg refuses a str for an integer parameter on the client side
    # (its DataError); Django's drivers send it and the server converts or
    # refuses it.
    expected = await django_outcome(lambda: list(Author.objects.using(SYNC[backend]).extra(where=["age = %s"], params=["x"])))
    got = await vinyl_outcome(vinyl.fetch("SELECT id FROM testapp_author WHERE age = %s", ["x"]))
    if expected[0] == "ok":
        assert got == ("ok", []), got
    else:
        assert got == expected, f"vinyl {got}, Django {expected}"


@pytest.mark.backends("postgresql", "mysql", reason="SQLite has no row locks")
async def test_nowait_lock_failure_is_an_operational_error(backend):
    """PostgreSQL's 55P03, MariaDB's 1205 (a lock wait timeout's code): Django's class."""
    a = await Author.vinyl.create(name="a")
    locked, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with vinyl.atomic():
            await Author.vinyl.select_for_update().filter(pk=a.pk).values_list("pk", flat=True)
            locked.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await locked.wait()
    try:
        async with vinyl.atomic():
            got = await vinyl_outcome(Author.vinyl.select_for_update(nowait=True).filter(pk=a.pk).values_list("pk", flat=True))
    except Exception as exc:  # the block re-raises nothing: the error was caught
        got = ("error", type(exc).__name__)
    finally:
        release.set()
        await task
    assert got == ("error", "OperationalError"), got
