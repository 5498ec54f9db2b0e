"""Statements with more parameters than a driver binds answer as Django's.

PostgreSQL: asyncpg binds at most 32,767 parameters; psycopg binds on the
client and Django answers ``filter(pk__in=<100,000 values>)``. vinyl sends
such ``IN`` lists as one array (vinyl/postgresql_backend/manyparams.py).
MySQL: asyncmy, like Django's drivers, inlines parameters on the client.
SQLite: the library's SQLITE_MAX_VARIABLE_NUMBER (250,000 in Debian's
build) bounds both, and beyond it Django's error (an OperationalError,
"too many SQL variables") is vinyl's.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from tests.testapp.models import Author
from vinyl.postgresql_backend.manyparams import in_lists_as_arrays, within_limit

pytestmark = pytest.mark.usefixtures("vinyl_db")

# Just above asyncpg's limit (tests/faults sends 100,000: the same path).
MANY = 33_000


def _django_outcome(fn) -> tuple[str, object]:
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - the class is the answer compared
        return ("error", type(exc).__name__)


async def _vinyl_outcome(awaitable) -> tuple[str, object]:
    try:
        return ("ok", await awaitable)
    except Exception as exc:  # noqa: BLE001 - the class is the answer compared
        return ("error", type(exc).__name__)


async def _both(backend: str, django_query, vinyl_awaitable) -> tuple[tuple, tuple]:
    alias = settings.SYNC_ALIAS[backend]
    expected = await sync_to_async(_django_outcome)(lambda: django_query(Author.objects.using(alias)))
    return await _vinyl_outcome(vinyl_awaitable), expected


async def test_reads_writes_and_streams_with_more_values_in_a_list_than_asyncpg_binds_answer_as_django(backend):
    await Author.vinyl.bulk_create([Author(name=f"a{i}", age=i) for i in range(5)])
    pks = sorted(await Author.vinyl.values_list("pk", flat=True))
    many = pks[:3] + list(range(10**8, 10**8 + MANY))
    cases = [
        (lambda qs: qs.filter(pk__in=many).count(), Author.vinyl.filter(pk__in=many).count()),
        (lambda qs: qs.exclude(pk__in=many).count(), Author.vinyl.exclude(pk__in=many).count()),
        (lambda qs: qs.filter(pk__in=[*many, None]).count(), Author.vinyl.filter(pk__in=[*many, None]).count()),
        (
            lambda qs: sorted(qs.filter(pk__in=many, age__gte=1).values_list("age", flat=True)),
            _sorted(Author.vinyl.filter(pk__in=many, age__gte=1).values_list("age", flat=True)),
        ),
        (lambda qs: qs.filter(pk__in=many).update(name="x"), Author.vinyl.filter(pk__in=many).update(name="x")),
    ]
    for django_query, vinyl_awaitable in cases:
        got, expected = await _both(backend, django_query, vinyl_awaitable)
        assert got == expected, (got, expected)
    assert expected == ("ok", 3)
    streamed = [a.name async for a in Author.vinyl.filter(pk__in=many).order_by("pk").iterator(chunk_size=2)]
    assert streamed == ["x", "x", "x"]


async def test_a_shape_with_more_values_than_asyncpg_binds_answers_again_and_again(backend):
    """The plan of a statement PostgreSQL's backend rewrote (its IN list bound as an array) was replayed with one
    parameter per value: "the number of query arguments cannot exceed 32767" from the second query of the shape."""
    await Author.vinyl.bulk_create([Author(name=f"a{i}", age=i) for i in range(5)])
    pks = sorted(await Author.vinyl.values_list("pk", flat=True))
    for n in range(3):
        many = pks[n : n + 2] + list(range(10**8 + n, 10**8 + n + MANY))
        assert sorted(await Author.vinyl.filter(pk__in=many).values_list("pk", flat=True)) == pks[n : n + 2]
        assert await Author.vinyl.filter(pk__in=many).count() == 2
        assert await Author.vinyl.filter(pk__in=many).exists()
        assert await Author.vinyl.filter(pk__in=many).update(name=f"u{n}") == 2


@pytest.mark.backends("sqlite", reason="the library's own limit on parameters")
async def test_beyond_sqlite_max_variable_number_both_raise_djangos_operational_error(backend):
    import sqlite3

    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    many = list(range(limit + 1))
    got, expected = await _both(backend, lambda qs: qs.filter(pk__in=many).count(), Author.vinyl.filter(pk__in=many).count())
    assert got == expected == ("error", "OperationalError")


async def _sorted(awaitable) -> list:
    return sorted(await awaitable)


def test_in_lists_become_arrays_and_the_other_parameters_are_renumbered():
    sql = (
        "SELECT $1::int4 FROM t WHERE a IN ($2::int4, $3::int8, $4) AND NOT (b IN ($5, $6)) "
        "AND c NOT IN ($7::uuid, $8::uuid) AND d = $9::int4"
    )
    params = (1, 2, 2**40, None, "x", "y", "u1", "u2", 9)
    assert in_lists_as_arrays(sql, params) == (
        "SELECT $1::int4 FROM t WHERE a = ANY($2::int8[]) AND NOT (b = ANY($3)) AND c <> ALL($4::uuid[]) AND d = $5::int4",
        (1, [2, 2**40, None], ["x", "y"], ["u1", "u2"], 9),
    )
    # Items of no common type: the statement is left as it is.
    assert in_lists_as_arrays("SELECT 1 WHERE a IN ($1::int4, $2)", (1, "x")) is None
    # Placeholders out of order or repeated: the statement is left as it is.
    assert in_lists_as_arrays("SELECT $2, $1", (1, 2)) is None
    assert in_lists_as_arrays("SELECT $1 WHERE a IN ($1, $2)", (1, 2)) is None
    # Under the limit nothing changes.
    assert within_limit("SELECT 1 WHERE a IN ($1, $2)", (1, 2)) == ("SELECT 1 WHERE a IN ($1, $2)", (1, 2))
