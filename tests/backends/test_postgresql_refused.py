"""PostgreSQL: values asyncpg refuses to encode reach the server as text, as with psycopg.

Django's driver sends a ``str`` (or any value it has no binary form for) as
text of unknown type, which the server parses for the type it infers; asyncpg
refuses it. vinyl re-runs such a statement with the value as a literal
(vinyl/postgresql_backend/refused.py); the answers are Django's.
"""

from __future__ import annotations

import datetime

import pytest
from asgiref.sync import sync_to_async
from django.db import DataError, connections

import vinyl
from tests.diffapp.models import Item, Tag
from vinyl.postgresql_backend.refused import inline_refused

pytestmark = [pytest.mark.usefixtures("vinyl_db"), pytest.mark.backends("postgresql", reason="asyncpg's encoding")]


class _Refused(Exception):
    pass


def _refusal(number: int) -> BaseException:
    import asyncpg

    error = asyncpg.DataError(f"invalid input for query argument ${number}: 'x' (boom)")
    wrapper = _Refused("SQLAlchemy's wrapper")
    wrapper.__cause__ = error
    return wrapper


def test_the_refused_parameter_becomes_a_literal_and_the_rest_are_renumbered() -> None:
    sql = "SELECT $1::int4, $2, $10, $11 WHERE x = $2"
    params = tuple(range(1, 12))
    params = params[:1] + ("it's a \\ test",) + params[2:]
    rewritten = inline_refused(sql, params, _refusal(2))
    assert rewritten == (
        "SELECT $1::int4, E'it''s a \\\\ test', $9, $10 WHERE x = E'it''s a \\\\ test'",
        (1, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    )


def test_values_the_server_cannot_read_from_text_stay_refused() -> None:
    assert inline_refused("SELECT $1", (b"bytes",), _refusal(1)) is None
    assert inline_refused("SELECT $1", ("nul\x00",), _refusal(1)) is None
    assert inline_refused("SELECT $1", ("a\ud800b",), _refusal(1)) is None
    assert inline_refused("SELECT $1", ("é",), _refusal(1)) == ("SELECT E'é'", ())
    assert inline_refused("SELECT $1", ("x",), ValueError("other")) is None
    # Integers out of their type's range, alone or in an array: the server reads and refuses them.
    assert inline_refused("SELECT $1::int2", (40000,), _refusal(1)) == ("SELECT E'40000'::int2", ())
    assert inline_refused("SELECT ($1)::int2[]", ([40000, None, -1],), _refusal(1)) == ("SELECT (E'{40000,NULL,-1}')::int2[]", ())
    assert inline_refused("SELECT $1", ([1, "a"],), _refusal(1)) is None
    assert inline_refused("SELECT $1", (True,), _refusal(1)) is None


async def _sync_fetch(sql: str, params: list) -> list:
    def run() -> list:
        with connections["sync_postgresql"].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    return await sync_to_async(run)()


async def test_raw_sql_with_text_for_typed_parameters_answers_as_django() -> None:
    sql = "SELECT %s::interval, %s::date + 1, %s::timestamptz"
    params = ["1 day 02:00:00", "2024-02-28", "2024-01-01 10:00:00+09:00"]
    assert await vinyl.fetch(sql, params) == [tuple(row) for row in await _sync_fetch(sql, params)]


async def test_a_refused_value_inside_a_block_leaves_the_transaction_usable() -> None:
    async with vinyl.atomic():
        await Item.vinyl.create(name="a", span=datetime.timedelta(days=1))
        assert await Item.vinyl.filter(span="1 day, 0:00:00").values_list("name", flat=True) == ["a"]
        await Item.vinyl.create(name="b", span=datetime.timedelta(days=2))
    assert sorted(await Item.vinyl.values_list("name", flat=True)) == ["a", "b"]


async def test_streams_and_updates_send_refused_values_as_text() -> None:
    await Item.vinyl.create(name="a", span=datetime.timedelta(days=1))
    assert [i.name async for i in Item.vinyl.filter(span="1 day").iterator(chunk_size=1)] == ["a"]
    assert await Item.vinyl.filter(span="24:00:00").update(name="b") == 1
    assert await Item.vinyl.filter(span="1 day").values_list("name", flat=True) == ["b"]


async def test_text_the_server_cannot_parse_is_djangos_data_error() -> None:
    def django_answer() -> type:
        try:
            list(Item.objects.using("sync_postgresql").filter(span="it's no interval"))
        except Exception as exc:  # noqa: BLE001 - the class is the answer compared
            return type(exc)
        return type(None)

    assert await sync_to_async(django_answer)() is DataError
    with pytest.raises(DataError, match="interval"):
        await Item.vinyl.filter(span="it's no interval")


async def test_an_integer_out_of_its_columns_range_aborts_a_block_as_djangos(backend: str) -> None:
    # make fuzz seed 3032 shape 134 (Django 6.1, whose bulk_create of one INSERT leaves its block unmarked): asyncpg
    # refused the smallint 40000 before sending the statement, so the transaction went on (a nested block then ran
    # and the block committed); Django's literal reached the server, which refused it and aborted the transaction.
    # vinyl now inlines the refused integers: the server refuses them as Django's, with the same consequences
    # (under Django 5.2 the failed bulk_create marks the block on both sides: the next query is refused).
    rows = [("x", 40000), ("y", 0)]

    def django_answer() -> tuple:
        from django.db import transaction

        items = Item.objects.using("sync_postgresql")
        tags = Tag.objects.using("sync_postgresql")
        answers: list = []
        try:
            with transaction.atomic(using="sync_postgresql"):
                items.create(name="kept?")
                for step in (lambda: tags.bulk_create([Tag(name=n, weight=v) for n, v in rows]), items.count):
                    try:
                        step()
                    except Exception as exc:  # noqa: BLE001 - the class is the answer compared
                        answers.append(type(exc).__name__)
        except Exception as exc:  # noqa: BLE001
            answers.append(type(exc).__name__)
        return tuple(answers), items.filter(name="kept?").count()

    answers: list = []
    try:
        async with vinyl.atomic():
            await Item.vinyl.create(name="kept?")
            for step in (lambda: Tag.vinyl.bulk_create([Tag(name=n, weight=v) for n, v in rows]), Item.vinyl.count):
                try:
                    await step()
                except Exception as exc:  # noqa: BLE001
                    answers.append(type(exc).__name__)
    except Exception as exc:  # noqa: BLE001
        answers.append(type(exc).__name__)
    got = (tuple(answers), await Item.vinyl.filter(name="kept?").count())
    assert got == await sync_to_async(django_answer)()
    assert got[0][0] == "DataError" and got[1] == 0
    # Refused by the server (its message), not by asyncpg ("invalid input for query argument").
    with pytest.raises(DataError, match="out of range for type smallint"):
        await Tag.vinyl.bulk_create([Tag(name=n, weight=v) for n, v in rows])


async def _stored(sql: str, pk: int) -> tuple:
    rows = await _sync_fetch(sql, [pk])
    return tuple(rows[0])


async def test_first_and_last_dates_are_stored_as_dates_not_infinity() -> None:
    """asyncpg writes date.max as 'infinity'; Django's driver (and now vinyl) as 9999-12-31."""
    utc = datetime.timezone.utc
    extremes = [
        (datetime.date.max, datetime.datetime.max.replace(tzinfo=utc), "9999-12-31", "9999-12-31 23:59:59.999999+00"),
        (datetime.date.min, datetime.datetime.min.replace(tzinfo=utc), "0001-01-01", "0001-01-01 00:00:00+00"),
    ]
    sql = 'SELECT "day"::text, "at"::text FROM "diffapp_item" WHERE "id" = %s'
    for day, at, day_text, at_text in extremes:
        for _ in range(2):  # the second create replays the first one's plan
            obj = await Item.vinyl.create(name="x", day=day, at=at)
            assert await _stored(sql, obj.pk) == (day_text, at_text)
        assert await Item.vinyl.filter(day=day, at=at).count() == 2
        await Item.vinyl.filter(pk=obj.pk).update(day=datetime.date(2024, 1, 1))
        await Item.vinyl.filter(pk=obj.pk).update(day=day)
        assert (await _stored(sql, obj.pk))[0] == day_text
        loaded = await Item.vinyl.get(pk=obj.pk)
        assert (loaded.day, loaded.at) == (day, at)
        await Item.vinyl.filter(day=day).delete()
