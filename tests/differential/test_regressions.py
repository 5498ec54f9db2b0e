"""One named test per mismatch class the differential harness found.

Each test asserts Django's own answer (computed by Django's sync ORM on the
same rows, in a worker thread) and vinyl's agreement with it. A class whose
fix belongs to another area is ``xfail(strict=True)`` until the fix lands;
it is listed in tests/differential/known.py meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import gc
import logging
import uuid
from typing import Any, Callable

import pytest
from asgiref.sync import sync_to_async
from django import VERSION as django_version
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, ProgrammingError, connections, transaction
from django.db.models import Case, CharField, Count, Exists, F, IntegerField, OuterRef, Prefetch, Q, Value, When
from django.db.models.functions import Cast, Coalesce, Concat, Floor
from django.utils import timezone

import vinyl
from tests.diffapp.models import Item, Owner, Premium, Profile, Tag
from tests.differential.compare import classify
from tests.differential.data import Dataset, restore

pytestmark = pytest.mark.usefixtures("vinyl_db")


async def django(fn: Callable[[], Any]) -> Any:
    """``fn()`` on Django's sync ORM, in a worker thread; its result or its exception's class."""

    def run() -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the class is the answer compared
            return ("raised", classify(exc, oracle=True))

    return await sync_to_async(run)()


async def vinyl_outcome(coro: Any) -> Any:
    try:
        return await coro
    except Exception as exc:  # noqa: BLE001
        return ("raised", classify(exc))


def sync(backend: str) -> str:
    return settings.SYNC_ALIAS[backend]


# --------------------------------------------------------------- streaming
@pytest.mark.backends("postgresql", reason="integer + smallint overflows only where the sum stays a 32-bit integer")
# stream-driver-error-leak (fixed on main): async for raises asyncpg's NumericValueOutOfRangeError, not
# django.db.DataError
async def test_stream_error_is_djangos_class(backend: str) -> None:
    await Item.vinyl.create(name="a", integer=2147483647, small=1)
    qs = Item.vinyl.alias(total=F("integer") + F("small")).filter(total__isnull=False)
    assert await django(lambda: list(Item.objects.using(sync(backend)).alias(total=F("integer") + F("small"))
                                     .filter(total__isnull=False).iterator(chunk_size=2))) == ("raised", "DataError")
    with pytest.raises(DataError):
        [x async for x in qs.iterator(chunk_size=2)]


async def test_iterator_with_prefetch_returns_every_row(backend: str) -> None:
    """mysql-stream-prefetch-loses-rows: the prefetch query ran inside an open unbuffered result."""
    owner = await Owner.vinyl.create(name="o")
    for i in range(7):
        await Item.vinyl.create(name=f"i{i}", owner_id=owner.pk if i % 2 else None)
    expected = await django(lambda: sorted(i.name for i in Item.objects.using(sync(backend)).prefetch_related("owner__items").iterator(chunk_size=2)))
    assert len(expected) == 7
    got = [i async for i in Item.vinyl.prefetch_related("owner__items").iterator(chunk_size=2)]
    assert sorted(i.name for i in got) == expected
    assert sorted(len(i["owner"]["items"]) for i in got if i.owner_id) == [3, 3, 3]


# -------------------------------------------------------------- parameters
@pytest.mark.backends("postgresql", reason="asyncpg types every parameter; the other drivers send text or numbers")
async def test_int_beyond_64_bits_in_filter(backend: str) -> None:
    await Item.vinyl.create(name="a", big=2**63 - 1)
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(big__range=(2**63 - 1, 2**64)).values_list("name", flat=True)))
    assert expected == ["a"]
    assert await Item.vinyl.filter(big__range=(2**63 - 1, 2**64)).values_list("name", flat=True) == expected


@pytest.mark.backends("postgresql", reason="asyncpg types every parameter; the other drivers send text")
async def test_duration_given_as_text_in_filter(backend: str) -> None:
    await Item.vinyl.create(name="a", span=datetime.timedelta(days=1))
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(span="1 day, 0:00:00").values_list("name", flat=True)))
    assert expected == ["a"]
    assert await Item.vinyl.filter(span="1 day, 0:00:00").values_list("name", flat=True) == expected


async def test_invalid_ip_address_in_filter(backend: str) -> None:
    """pg-inet-param-not-validated: PostgreSQL validates addresses as Django does (ValueError)."""
    await Item.vinyl.create(name="a", ip="10.0.0.2")
    for value in ("999.1.1.1", "10.0.0.2"):
        expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(ip__in=[value, "127.0.0.1"]).values_list("name", flat=True)))
        got = await vinyl_outcome(Item.vinyl.filter(ip__in=[value, "127.0.0.1"]).values_list("name", flat=True))
        assert got == expected
    assert expected == ["a"]


# ------------------------------------------------------------ MySQL errors
@pytest.mark.backends("mysql", reason="error 1690 (unsigned value out of range) is MySQL's")
# mysql-1690-not-integrityerror (fixed on main): Django maps 1690 to IntegrityError, vinyl raises
# OperationalError
async def test_mysql_out_of_range_arithmetic_is_integrityerror(backend: str) -> None:
    await Item.vinyl.create(name="a", pint=0, psmall=1)
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(psmall__gt=F("pint") - 5)))
    assert expected == ("raised", "IntegrityError")
    with pytest.raises(IntegrityError):
        await Item.vinyl.filter(psmall__gt=F("pint") - 5)


@pytest.mark.backends("mysql", reason="MySQL has no float infinity; the driver refuses it")
async def test_mysql_infinite_float_in_filter(backend: str) -> None:
    await Item.vinyl.create(name="a", flt=1.5)
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(flt__lt=float("-inf"))))
    assert expected == ("raised", "ProgrammingError")
    with pytest.raises(ProgrammingError):
        await Item.vinyl.filter(flt__lt=float("-inf"))
    with pytest.raises(ProgrammingError):
        await Item.vinyl.filter(flt__lt=float("-inf")).count()  # the same error number, another class today


# ------------------------------------------------------------ inheritance
async def test_select_related_reverse_child_has_parent_fields(backend: str) -> None:
    """mti-select-related-child-lacks-parent-fields: owner.premium joined by select_related."""
    await Premium.vinyl.create(name="p", age=3, level=2)
    await Owner.vinyl.create(name="q")
    await Profile.vinyl.create(owner=await Owner.vinyl.get(name="q"), bio="b")

    def django_rows() -> list:
        rows = Owner.objects.using(sync(backend)).select_related("premium", "profile").order_by("name")
        return [(o.name, getattr(o, "premium", None) and (o.premium.name, o.premium.age, o.premium.level)) for o in rows]

    expected = await django(django_rows)
    assert expected == [("p", ("p", 3, 2)), ("q", None)]
    got = [(o.name, o["premium"] and (o["premium"].name, o["premium"].age, o["premium"].level))
           for o in await Owner.vinyl.select_related("premium", "profile").order_by("name")]
    assert got == expected


# ------------------------------------------------------------- validation
# validation-deferred-to-await (fixed on main): once a shape was accepted, a later filter() with an invalid
# value raises at await, not at filter() as in Django
async def test_invalid_value_raises_at_filter_after_a_valid_one(backend: str) -> None:
    await Item.vinyl.create(name="a", flag=True)
    expected = await django(lambda: Item.objects.using(sync(backend)).filter(flag="abc"))
    assert expected == ("raised", "ValidationError")
    assert await Item.vinyl.filter(name="a").filter(flag="True").count() == 1  # a str Django converts
    with pytest.raises(ValidationError):
        Item.vinyl.filter(name="a").filter(flag="abc")  # no await: Django raises here


# ------------------------------------------------------------------ pool
# pool-overflow-close-outside-greenlet (fixed on main): with a plan, a connection returned to a full pool is
# closed outside SQLAlchemy's greenlet: 'Exception closing connection' (MissingGreenlet) logged by
# sqlalchemy.pool, the connection left unclosed
@pytest.mark.backends("postgresql", "mysql", reason="SQLite's pool keeps every connection (no overflow to close)")
async def test_concurrent_planned_queries_log_no_pool_error(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    await Item.vinyl.create(name="a")
    assert await Item.vinyl.filter(name="a").count() == 1  # the shape has a plan from here on
    with caplog.at_level(logging.ERROR, logger="sqlalchemy.pool"):
        # Twenty at once: more than the pool keeps; the overflow connections are closed on return.
        counts = await asyncio.gather(*(Item.vinyl.filter(name="a").count() for _ in range(20)))
        await asyncio.sleep(0)
    assert counts == [1] * 20
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy.pool")] == []


# ------------------------------------------------------------------ plans
@pytest.mark.backends("postgresql", reason="PostgreSQL's SQL names the zone (AT TIME ZONE 'Asia/Tokyo'); SQLite passes it "
                      "as a parameter and the test MariaDB has no time zone tables (its zone conversions give NULL)")
# tz-compiled-into-plan (fixed on main): the current time zone is compiled into a plan; the same shape under
# timezone.override() returns the first zone's rows
async def test_time_zone_is_not_compiled_into_a_plan(backend: str) -> None:
    late = datetime.datetime(2024, 1, 1, 20, tzinfo=datetime.timezone.utc)  # 2 January in Tokyo
    await Item.vinyl.create(name="late", at=late)
    day = datetime.date(2024, 1, 1)
    assert await Item.vinyl.filter(at__date=day).values_list("name", flat=True) == ["late"]
    with timezone.override("Asia/Tokyo"):
        expected = await django(lambda: _in_zone("Asia/Tokyo", lambda: list(
            Item.objects.using(sync(backend)).filter(at__date=day).values_list("name", flat=True))))
        assert await Item.vinyl.filter(at__date=day).values_list("name", flat=True) == expected
    assert expected == []


def _in_zone(zone: str, fn: Callable[[], Any]) -> Any:
    with timezone.override(zone):
        return fn()


# validation-skipped-for-accepted-shape (fixed on main): once filter(dec__lt=<Decimal>) was accepted,
# Decimal('Infinity') is neither validated at filter() nor refused: rows come back
async def test_invalid_decimal_is_refused_after_a_valid_one(backend: str) -> None:
    await Item.vinyl.create(name="a", dec=decimal.Decimal("1.5"))
    assert await Item.vinyl.filter(dec__lt=decimal.Decimal("2")).count() == 1
    expected = await django(lambda: Item.objects.using(sync(backend)).filter(dec__lt=decimal.Decimal("Infinity")))
    assert expected == ("raised", "ValidationError")
    with pytest.raises(ValidationError):
        Item.vinyl.filter(dec__lt=decimal.Decimal("Infinity"))


# ---------------------------------------------------- PostgreSQL parameters
@pytest.mark.backends("postgresql", reason="asyncpg types every parameter; the other drivers send text")
async def test_text_for_binary_field_in_filter(backend: str) -> None:
    await Item.vinyl.create(name="a", blob=b"ab")
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(blob="ab")))
    assert expected == ("raised", "TypeError")
    with pytest.raises(TypeError):
        await Item.vinyl.filter(blob="ab")


@pytest.mark.backends("postgresql", reason="asyncpg converts aware datetimes to UTC itself; psycopg sends the offset")
async def test_year_1_lookup_under_an_eastern_zone(backend: str) -> None:
    await Item.vinyl.create(name="a", at=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    expected = await django(lambda: _in_zone("Asia/Tokyo", lambda: list(
        Item.objects.using(sync(backend)).filter(at__year=1).values_list("name", flat=True))))
    assert expected == []
    with timezone.override("Asia/Tokyo"):
        assert await Item.vinyl.filter(at__year=1).values_list("name", flat=True) == expected


@pytest.mark.backends("postgresql", reason="asyncpg maps date.min/date.max to -infinity/infinity; the others store dates")
async def test_date_extremes_are_stored_as_dates(backend: str) -> None:
    obj = await Item.vinyl.create(name="a", day=datetime.date.max, at=datetime.datetime(9999, 12, 31, tzinfo=datetime.timezone.utc))
    stored = await django(lambda: Item.objects.using(sync(backend)).extra(select={"d": "day::text"}).values_list("d", flat=True).get(pk=obj.pk))
    assert stored == "9999-12-31"


@pytest.mark.backends("mysql", reason="MySQL error numbers")
# mysql-errno-class-differs (fixed on main): error 1139 (bad regular expression) is OperationalError in Django
# (PyMySQL's map) and ProgrammingError in vinyl (asyncmy's): map by error number as Django's driver does
async def test_mysql_regex_error_class(backend: str) -> None:
    await Item.vinyl.create(name="a")
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(name__regex="*a")))
    assert expected == ("raised", "OperationalError")
    assert await vinyl_outcome(Item.vinyl.filter(name__regex="*a")) == expected


@pytest.mark.backends("mysql", "sqlite", reason="PostgreSQL's iexact is UPPER(...) = UPPER(%s), no LIKE")
# iexact-like-escaping-in-plan (fixed on main): iexact is LIKE with the value escaped; the plan made for 'bob'
# replays '_' unescaped, a wildcard
async def test_iexact_escaping_survives_a_plan(backend: str) -> None:
    for name in ("bob", "_", "a_b", "axb", "a%b", "%"):
        await Owner.vinyl.create(name=name)
    assert await Owner.vinyl.filter(name__iexact="BOB").values_list("name", flat=True) == ["bob"]
    for needle in ("_", "a_b", "%"):
        expected = await django(lambda: list(Owner.objects.using(sync(backend)).filter(name__iexact=needle).values_list("name", flat=True)))
        assert expected == [needle]
        assert await Owner.vinyl.filter(name__iexact=needle).values_list("name", flat=True) == expected


# in-duplicate-breaks-shape (fixed on main): a first __in list with a duplicate makes the plan that later
# lists of its length replay
async def test_in_list_with_a_duplicate_then_another_list(backend: str) -> None:
    pks = [(await Item.vinyl.create(name=f"n{i}")).pk for i in range(3)]
    assert sorted(await Item.vinyl.filter(id__in=[pks[0], pks[1], pks[0]]).values_list("id", flat=True)) == pks[:2]
    expected = await django(lambda: sorted(Item.objects.using(sync(backend)).filter(id__in=pks).values_list("id", flat=True)))
    assert expected == pks
    assert sorted(await Item.vinyl.filter(id__in=pks).values_list("id", flat=True)) == expected


# in-list-with-none-under-exclude (fixed on main; seed 5252 under Django 6.1): from Django 6.0 on,
# exclude(f__in=[None, ...]) of a nullable f also excludes f's NULL rows; a plan made from a list without None
# (or a list whose None was dropped before compiling) answered with them.
@pytest.mark.parametrize("first", [[38, 2, 2], [None, 38, 1], None])
async def test_exclude_of_an_in_list_holding_none(backend: str, first: list | None) -> None:
    for i, pint in enumerate([None, 1, 2, 38, None, 7]):
        await Item.vinyl.create(name=f"n{i}", pint=pint)
    if first is not None:
        await Item.vinyl.exclude(pint__in=first).values_list("id", flat=True)

    async def agree(values: list) -> None:
        expected = await django(
            lambda: sorted(Item.objects.using(sync(backend)).exclude(pint__in=values).values_list("name", flat=True))
        )
        assert sorted(await Item.vinyl.exclude(pint__in=values).values_list("name", flat=True)) == expected
        assert sorted(i.name for i in await Item.vinyl.defer("at").exclude(pint__in=values)) == expected
        filtered = await django(
            lambda: sorted(Item.objects.using(sync(backend)).filter(pint__in=values).values_list("name", flat=True))
        )
        assert sorted(await Item.vinyl.filter(pint__in=values).values_list("name", flat=True)) == filtered

    for values in ([None, 38, 1], [38, 2, 2], [38, 1, None], [38, 1], (None, 7, 2), (7, 2)):
        await agree(values)


@pytest.mark.backends("mysql", reason="Django drops a WHERE whose value overflows an unsigned MySQL column")
# mysql-range-overflow-drops-where (fixed on main): the plan of pint__lt=5_000_000_000 (no WHERE) is replayed
# for 2_500_000_000
async def test_mysql_out_of_range_value_keeps_its_where(backend: str) -> None:
    await Item.vinyl.create(name="small", pint=7)
    await Item.vinyl.create(name="big", pint=3_000_000_000)
    await Item.vinyl.create(name="null")
    # Django drops the WHERE of a value beyond the column's range: every row, NULL included.
    first = await django(lambda: sorted(Item.objects.using(sync(backend)).filter(pint__lt=5_000_000_000).values_list("name", flat=True)))
    assert first == ["big", "null", "small"]
    assert sorted(await Item.vinyl.filter(pint__lt=5_000_000_000).values_list("name", flat=True)) == first
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(pint__lt=2_500_000_000).values_list("name", flat=True)))
    assert expected == ["small"]
    assert await Item.vinyl.filter(pint__lt=2_500_000_000).values_list("name", flat=True) == expected


async def test_vinyl_queryset_as_in_bulk_id_list(backend: str) -> None:
    """vinyl-queryset-as-in-bulk-ids: in_bulk(<vinyl QuerySet>) raised TypeError (evaluated synchronously)."""
    pks = [(await Owner.vinyl.create(name=f"o{i}")).pk for i in range(3)]
    expected = await django(lambda: sorted(Owner.objects.using(sync(backend)).in_bulk(
        Owner.objects.using(sync(backend)).filter(pk__lte=pks[1]).values_list("pk", flat=True))))
    assert expected == pks[:2]
    got = await Owner.vinyl.in_bulk(Owner.vinyl.filter(pk__lte=pks[1]).values_list("pk", flat=True))
    assert sorted(got) == expected and all(got[pk].name == f"o{i}" for i, pk in enumerate(expected))


@pytest.mark.backends("postgresql", reason="PostgreSQL's SQL names the zone (AT TIME ZONE ...); see the test above")
async def test_time_zone_is_not_compiled_into_an_exclude_subquery_plan(backend: str) -> None:
    # The harness's rows and reduced reproduction (seed 20261204, shape 94): a smaller data set did not show it.
    await django(lambda: restore(sync(backend), Dataset.draw(20261204)))
    await Item.vinyl.prefetch_related("owner").only("data", "dec", "integer", "at", "name", "flag", "owner") \
        .values_list("pint", flat=True).distinct().count()
    with timezone.override("Europe/Paris"):
        await Owner.vinyl.exclude(id__in=[9], items__at__date=datetime.date(1999, 12, 31))
    day = datetime.date(2024, 1, 1)
    expected = await django(lambda: _in_zone("America/New_York", lambda: sorted(
        o.pk for o in Owner.objects.using(sync(backend)).exclude(id__in=[9], items__at__date=day))))
    assert 9 in expected
    with timezone.override("America/New_York"):
        assert sorted(o.pk for o in await Owner.vinyl.exclude(id__in=[9], items__at__date=day)) == expected


async def test_distinct_ordered_by_an_annotation_with_a_value(backend: str) -> None:
    """pg-distinct-order-by-param-expression: asyncpg bound the SELECT and ORDER BY copies as two parameters."""
    for score in (None, 2.0, 0.5):
        await Profile.vinyl.create(owner=await Owner.vinyl.create(name="o"), score=score)

    def query(manager: Any, direction: str) -> Any:
        return manager.annotate(sc=Coalesce("score", Value(1.5))).order_by(f"{direction}sc", "score", "-pk").values("score").distinct()

    for direction in ("", "-"):
        expected = await django(lambda: list(query(Profile.objects.using(sync(backend)), direction)))
        assert [row["score"] for row in expected] == ([0.5, None, 2.0] if direction == "" else [2.0, None, 0.5])
        assert await query(Profile.vinyl, direction) == expected


async def test_empty_query_still_validates(backend: str) -> None:
    def qs(manager: Any) -> Any:
        return manager.filter(day__year=10000).none()

    for terminal in ("iterator", "list", "count", "exists"):
        def run_django(t: str = terminal) -> Any:
            q = qs(Item.objects.using(sync(backend)))
            return list(q.iterator(chunk_size=2)) if t == "iterator" else list(q) if t == "list" else getattr(q, t)()

        assert await django(run_django) == ("raised", "ValueError")
        with pytest.raises(ValueError):
            q = qs(Item.vinyl)
            if terminal == "iterator":
                [x async for x in q.iterator(chunk_size=2)]
            elif terminal == "list":
                await q
            else:
                await getattr(q, terminal)()


@pytest.mark.backends("postgresql", reason="how -0.0 reaches the column is the PostgreSQL drivers' difference")
@pytest.mark.parametrize("write", ["update", "update_planned", "bulk_update", "save", "create", "bulk_create", "bulk_create_many"])
async def test_negative_zero_float_is_stored_as_django_stores_it(backend: str, write: str) -> None:
    """pg-negative-zero-float-stored: psycopg writes a float as a literal (``-0.0``: numeric, no sign for zero)."""
    alias = sync(backend)

    def stored(pk: int) -> Any:
        return Item.objects.using(alias).extra(select={"t": "flt::text"}).values_list("t", flat=True).get(pk=pk)

    def django_write() -> Any:
        if write in ("update", "update_planned"):
            obj = Item.objects.using(alias).create(name="d", flt=1.0)
            Item.objects.using(alias).filter(pk=obj.pk).update(flt=-0.0)
        elif write == "bulk_update":
            obj = Item.objects.using(alias).create(name="d", flt=1.0)
            obj.flt = -0.0
            Item.objects.using(alias).bulk_update([obj], ["flt"])
        elif write == "save":
            obj = Item.objects.using(alias).create(name="d", flt=1.0)
            obj.flt = -0.0
            obj.save()
        elif write == "create":
            obj = Item.objects.using(alias).create(name="d", flt=-0.0)
        else:
            objs = [Item(name="d", flt=1.0), Item(name="d", flt=-0.0)] if write == "bulk_create_many" else [Item(name="d", flt=-0.0)]
            obj = Item.objects.using(alias).bulk_create(objs)[-1]
        return stored(obj.pk)

    expected = await django(django_write)
    if write in ("update", "update_planned", "bulk_update", "save", "create"):
        assert expected == "0"  # psycopg's literal; a bound float8 would keep the sign
    if write in ("update", "update_planned"):
        obj = await Item.vinyl.create(name="v", flt=1.0)
        if write == "update_planned":  # a plan made from a positive value, replayed with -0.0
            await Item.vinyl.filter(pk=obj.pk).update(flt=2.0)
            await Item.vinyl.filter(pk=obj.pk).update(flt=3.0)
        await Item.vinyl.filter(pk=obj.pk).update(flt=-0.0)
    elif write == "bulk_update":
        obj = await Item.vinyl.create(name="v", flt=1.0)
        obj.flt = -0.0
        await Item.vinyl.bulk_update([obj], ["flt"])
    elif write == "save":
        obj = await Item.vinyl.create(name="v", flt=1.0)
        obj.flt = -0.0
        await obj.save()
    elif write == "create":
        obj = await Item.vinyl.create(name="v", flt=-0.0)
    else:
        objs = [Item(name="v", flt=1.0), Item(name="v", flt=-0.0)] if write == "bulk_create_many" else [Item(name="v", flt=-0.0)]
        obj = (await Item.vinyl.bulk_create(objs))[-1]
    assert await django(lambda: stored(obj.pk)) == expected


async def test_only_of_a_multi_table_child_loads_its_primary_key(backend: str) -> None:
    premium = await Premium.vinyl.create(name="p", age=3, level=2)
    await Item.vinyl.create(name="i", owner_id=premium.pk)

    def django_answer() -> Any:
        rows = list(Premium.objects.using(sync(backend)).prefetch_related("items").only("name"))
        return [(p.get_deferred_fields() >= {"id"}, p.name, len(p.items.all())) for p in rows]

    expected = await django(django_answer)
    assert expected == [(False, "p", 1)]
    got = await Premium.vinyl.prefetch_related("items").only("name")
    assert [(p.get_deferred_fields() >= {"id"}, p.name, len(p["items"])) for p in got] == expected


@pytest.mark.backends("sqlite", reason="a column holding a value Django's converter refuses: SQLite's typing lets one be written")
async def test_iterator_ending_in_an_error_closes_its_cursor_in_the_bridge(backend: str) -> None:
    """django-cursor-iter-closed-outside-greenlet: the traceback of an error in Django's iterator kept its cursor_iter
    generator alive; freed later, outside the bridge, its close raised MissingGreenlet (an unraisable exception,
    which this suite's filterwarnings turns into an error)."""
    for n in range(5):
        await Item.vinyl.create(name=f"i{n}", dec=decimal.Decimal("1.5"))

    def corrupt() -> None:
        with connections[sync(backend)].cursor() as cursor:
            cursor.execute("UPDATE diffapp_item SET dec = 1e20 WHERE name = 'i3'")

    await sync_to_async(corrupt)()
    expected = await django(lambda: list(Item.objects.using(sync(backend)).prefetch_related("tags").order_by("name").iterator(chunk_size=2)))
    assert expected == ("raised", "ArithmeticError")  # decimal.InvalidOperation
    # prefetch_related: Django's own iterator, in the bridge (not a plan).
    got = await vinyl_outcome(_listed(Item.vinyl.prefetch_related("tags").order_by("name").iterator(chunk_size=2)))
    assert got == expected
    gc.collect()


async def _listed(rows: Any) -> list:
    return [row async for row in rows]


async def test_a_server_error_is_not_replaced_by_the_aborted_transaction(backend: str) -> None:
    """pg-server-data-error-rerun (make fuzz, PostgreSQL seed 9001): an invalid regular expression is an asyncpg
    DataError; vinyl ran the statement again (as for a value asyncpg refuses), and in the stream's transaction
    the second run raised InternalError ("current transaction is aborted") in place of Django's DataError."""
    await Item.vinyl.create(name="a", slug="a", flt=2.0)

    def django_stream() -> Any:
        return list(Item.objects.using(sync(backend)).filter(slug__regex="[").filter(flt__gte=1.5).iterator(chunk_size=2))

    def django_in_block() -> Any:
        with transaction.atomic(using=sync(backend)):
            return list(Item.objects.using(sync(backend)).filter(slug__regex="["))

    expected = await django(django_stream)
    assert expected[0] == "raised"
    assert await django(django_in_block) == expected
    # A plan made from a valid expression, replayed with the invalid one.
    assert len(await _listed(Item.vinyl.filter(slug__regex="(a|b)").filter(flt__gte=1.5).iterator(chunk_size=2))) == 1
    assert await vinyl_outcome(_listed(Item.vinyl.filter(slug__regex="[").filter(flt__gte=1.5).iterator(chunk_size=2))) == expected

    async def in_block() -> Any:
        async with vinyl.atomic():
            return await Item.vinyl.filter(slug__regex="[")

    assert await vinyl_outcome(in_block()) == expected


async def test_bulk_create_through_a_plan_raises_the_error_django_raises_first(backend: str) -> None:
    """bulk-create-validation-order (make fuzz, SQLite seed 9001 shape 1566): a bulk INSERT plan prepares its values
    column by column, so a later object's bad value failed before the first object's, which Django reports."""

    def objs(owner: Any, day: Any) -> list:
        return [Item(name="a", owner_id=owner), Item(name="b"), Item(name="c", day=day)]

    expected = await django(lambda: Item.objects.using(sync(backend)).bulk_create(objs("abc", 20240229)))
    # Django 5.2: ValueError (Field 'id' expected a number but got 'abc'); 6.1 reports the date first (TypeError).
    assert expected[0] == "raised" and expected[1] in ("ValueError", "TypeError")
    for _ in range(2):  # the plan of three objects, then its use
        assert len(await Item.vinyl.bulk_create(objs(None, datetime.date(2024, 2, 29)))) == 3
    assert await vinyl_outcome(Item.vinyl.bulk_create(objs("abc", 20240229))) == expected


async def test_count_and_exists_of_an_empty_query_check_what_django_checks(backend: str) -> None:
    """empty-count-compiles-the-select (make fuzz seed 9101, every backend): count() and exists() of none() compiled
    the SELECT (select_related of a deferred field: FieldError; a JSON value Django never encodes: TypeError) where
    Django compiles its aggregation query only, finds it empty and answers 0 / False."""
    shapes = [
        lambda m: m.select_related("owner").defer("owner").none(),
        lambda m: m.filter(day__year=10000).none(),
    ]
    for make in shapes:
        for terminal in ("count", "exists"):
            expected = await django(lambda: getattr(make(Item.objects.using(sync(backend))), terminal)())
            assert await vinyl_outcome(getattr(make(Item.vinyl), terminal)()) == expected, (terminal, expected)


async def test_count_of_an_empty_query_with_a_json_value_django_never_encodes(backend: str) -> None:
    """pg-json-encoded-at-compile: psycopg encodes a JSON value when the statement is sent (Jsonb); vinyl encoded it
    when the query was compiled, so none().count() of a value json cannot encode raised TypeError."""

    def make(manager: Any) -> Any:
        return manager.filter(data={"a": decimal.Decimal("1.5")}).none()

    for terminal in ("count", "exists"):
        expected = await django(lambda: getattr(make(Item.objects.using(sync(backend))), terminal)())
        # (0 / False on PostgreSQL; Django's MySQL and SQLite backends encode it at compile time: TypeError.)
        assert await vinyl_outcome(getattr(make(Item.vinyl), terminal)()) == expected, terminal


async def test_a_value_psycopg_cannot_adapt_fails_before_the_server_reads_another(backend: str) -> None:
    """make fuzz PostgreSQL seed 9702 shape 404: bulk_create of a row with span='abc' (text PostgreSQL cannot read
    as an interval) before a row whose JSON json cannot encode. psycopg adapts every value before it sends the
    statement: Django raises the JSON TypeError. asyncpg refused 'abc' first, vinyl sent it as a literal, and the
    server's DataError came before the JSON was encoded. Each fault alone agrees."""
    rows: dict[str, Callable[[], list]] = {
        "both": lambda: [Item(name="a", span="abc"), Item(name="b", data={"a": decimal.Decimal("1.5")})],
        "interval": lambda: [Item(name="a", span="abc"), Item(name="b", data={"a": 1})],
        "json": lambda: [Item(name="a"), Item(name="b", data={"a": decimal.Decimal("1.5")})],
    }
    for name, make in rows.items():
        expected = await django(lambda: Item.objects.using(sync(backend)).bulk_create(make()) and None)
        assert await vinyl_outcome(Item.vinyl.bulk_create(make())) == expected, name
        filtered = await django(lambda: list(Item.objects.using(sync(backend)).filter(
            span__gt=make()[0].span or datetime.timedelta(0), data=make()[1].data)))
        got = await vinyl_outcome(Item.vinyl.filter(span__gt=make()[0].span or datetime.timedelta(0), data=make()[1].data))
        assert got == filtered, name
    assert await Item.vinyl.count() == 0


async def test_an_ipv6_value_django_normalizes_is_not_replayed_raw(backend: str) -> None:
    """ip-normalized-plan-replays-raw (make fuzz SQLite seed 9401 shape 225): a plan of ip__exact made from an IPv4
    address replays an IPv6 one as given, where Django normalizes it ('2001:0DB8:0000::1' -> '2001:db8::1')."""
    item = await Item.vinyl.create(name="v6", ip="2001:db8::1")
    for address in ("127.0.0.1", "10.0.0.1"):
        await Item.vinyl.filter(ip__exact=address)
    spelled = "2001:0DB8:0000::1"
    expected = await django(lambda: [i.pk for i in Item.objects.using(sync(backend)).filter(ip__exact=spelled)])
    assert expected == [item.pk]
    assert [i.pk for i in await Item.vinyl.filter(ip__exact=spelled)] == expected
    # Plans made from IPv6 addresses Django leaves as they are, for every terminal and for update().
    for address in ("2001:db8::2", "2001:db8::3"):
        await Item.vinyl.filter(ip__exact=address)
        await Item.vinyl.filter(ip__in=[address, "10.0.0.1"]).count()
        await Item.vinyl.filter(ip=address).exists()
        await Item.vinyl.filter(name="none").update(ip=address)
    assert [i.pk for i in await Item.vinyl.filter(ip__exact=spelled)] == expected
    assert await Item.vinyl.filter(ip__in=[spelled, "10.0.0.1"]).count() == 1
    assert await Item.vinyl.filter(ip=spelled).exists()
    other = await Item.vinyl.create(name="v4", ip="10.0.0.1")
    await Item.vinyl.filter(pk=other.pk).update(ip="2001:0DB8:0000::5")
    stored = await django(lambda: Item.objects.using(sync(backend)).get(pk=other.pk).ip)
    assert stored == "2001:db8::5"


@pytest.mark.backends("mysql", reason="MySQL's backend refuses 0 for an AutoField (validate_autopk_value)")
async def test_update_of_a_key_to_zero_is_refused_as_django_refuses_it(backend: str) -> None:
    """mysql-update-autopk-zero (make fuzz MariaDB seed 9201 write shape 12)."""
    owner = await Owner.vinyl.create(name="o")
    item = await Item.vinyl.create(name="i")
    expected = await django(lambda: Item.objects.using(sync(backend)).filter(pk=item.pk).update(owner_id=0))
    assert expected == ("raised", "ValueError")
    for _ in range(2):
        await Item.vinyl.filter(pk=item.pk).update(owner_id=owner.pk)
    assert await vinyl_outcome(Item.vinyl.filter(pk=item.pk).update(owner_id=0)) == expected


async def test_a_filter_on_a_key_equal_to_zero_answers_as_django(backend: str) -> None:
    """mysql-update-autopk-zero's read side: with 0 a plan kind of its own, a
    lookup of key 0 still answers as Django's (which does not refuse 0 there)."""
    item = await Item.vinyl.create(name="i")
    expected = await django(lambda: [i.pk for i in Item.objects.using(sync(backend)).filter(pk=0)])
    for _ in range(2):
        await Item.vinyl.filter(pk=item.pk)

    async def pks() -> list:
        return [i.pk for i in await Item.vinyl.filter(pk=0)]

    assert await vinyl_outcome(pks()) == expected


async def test_a_str_for_a_binary_field_is_refused_only_when_sent(backend: str) -> None:
    """pg-binary-str-refused-at-compile (make fuzz PostgreSQL seed 9502): psycopg refuses a value of a BinaryField
    that is no bytes when the statement is sent, so a query whose WHERE Django drops (a value beyond the column's
    range, an empty __in) answers; vinyl refused it when the query was compiled (TypeError). Django's MySQL and
    SQLite backends refuse it when compiled (bytes() and memoryview() of a str)."""

    async def one_row() -> None:  # before each answer: the writes change the rows
        await Item.vinyl.all().delete()
        # One primary key for every answer: in_bulk() answers by it (Django 6 allows it after values()).
        await Item.vinyl.create(pk=1, name="a", blob=b"ab", dec=decimal.Decimal("1.5"))

    shapes: dict[str, Callable[[Any, Any], Any]] = {
        "seed 9502": lambda m, blob: m.filter(tags__weight__gte=32768, blob__exact=blob)
        .order_by("-dec", F("flag").desc(nulls_last=True)).values(),
        "empty in": lambda m, blob: m.filter(id__in=[], blob=blob).values("name"),
        "exclude": lambda m, blob: m.exclude(blob=blob, id__in=[]).values("name"),
        "sent": lambda m, blob: m.filter(blob=blob).values("name"),
        # (make fuzz PostgreSQL seed 9601, a write)
        "delete": lambda m, blob: m.filter(blob=blob, owner__joined__month__in=()).filter(owner__age=17, psmall__isnull=False),
    }
    terminals: dict[str, Callable[[Any], Any]] = {
        "list": lambda qs: qs, "count": lambda qs: qs.count(), "exists": lambda qs: qs.exists(),
        "update": lambda qs: qs.update(name="b"), "update blob": lambda qs: qs.update(blob="cd"),
        "delete": lambda qs: qs.delete(), "in_bulk": lambda qs: qs.in_bulk(), "get": lambda qs: qs.get(),
        "first": lambda qs: qs.first(), "aggregate": lambda qs: qs.aggregate(n=Count("pk")),
        "iterator": lambda qs: qs.iterator(chunk_size=2),
    }

    async def vinyl_answer(answer: Any) -> Any:
        if hasattr(answer, "__aiter__"):
            return [row async for row in answer]
        return await answer

    answers = {}
    for shape, make in shapes.items():
        for terminal, run in terminals.items():
            def django_answer() -> Any:
                answer = run(make(Item.objects.using(sync(backend)), "ab"))
                return list(answer) if terminal in ("list", "iterator") else answer

            await one_row()
            answers[shape, terminal] = await django(django_answer)
            for cache in ("cold", "warm"):
                if cache == "warm":  # plans of the shape, made from bytes
                    for blob in (b"ab", b"cd"):
                        await vinyl_outcome(vinyl_answer(run(make(Item.vinyl, blob))))
                await one_row()
                got = await vinyl_outcome(vinyl_answer(run(make(Item.vinyl, "ab"))))
                assert got == answers[shape, terminal], (shape, terminal, cache)
    if backend == "postgresql":
        assert answers["seed 9502", "list"] == [] and answers["exclude", "count"] == 1
        assert answers["empty in", "delete"] == ("raised", "TypeError")  # delete() after values()
        assert answers["delete", "delete"] == (0, {})
        assert answers["sent", "count"] == ("raised", "TypeError")
    else:
        assert {answers[key] for key in answers} == {("raised", "TypeError")}


# -------------------------------------------------- floats, as Django's psycopg writes them
async def test_a_float_is_a_numeric_literal_as_djangos_psycopg_writes_it(backend: str) -> None:
    # Found by a test of the update plans (stop 30): on PostgreSQL, Django's psycopg writes a float into the SQL as
    # its repr, a numeric literal, so F("integer") * 0.1 is exact numeric arithmetic (3 * 0.1 = 0.3) and its text is
    # numeric's (30.0). vinyl bound a float8: filter(flt=F("integer") * 0.1) missed the row holding 0.3, and
    # Cast(F("small") * 2.5, CharField()) read '30'.
    await Item.vinyl.create(name="a", integer=3, flt=0.3, small=12)
    await Item.vinyl.create(name="b", integer=7, flt=0.30000000000000004, small=-3)
    await Item.vinyl.create(name="c", integer=0, flt=-0.0, small=0)

    def cases(model: Any) -> dict[str, Any]:
        return {
            "filter": model.filter(flt=F("integer") * 0.1).order_by("pk").values_list("name", flat=True),
            "exact": model.filter(flt=0.30000000000000004).values_list("name", flat=True),
            "gt": model.filter(flt__gt=0.1).order_by("pk").values_list("name", flat=True),
            "text": model.annotate(x=Cast(F("small") * 2.5, CharField())).order_by("pk").values_list("x", flat=True),
            "value": model.annotate(x=F("integer") * 0.1).order_by("pk").values_list("x", flat=True),
            "huge": model.filter(flt__lt=1e300).order_by("pk").values_list("name", flat=True),
            "tiny": model.filter(flt__gt=-1e-7, flt__lt=1e-7).values_list("name", flat=True),
            "inf": model.filter(flt__lt=float("inf")).order_by("pk").values_list("name", flat=True),
        }

    for name in cases(Item.vinyl):
        expected = await django(lambda: list(cases(Item.objects.using(sync(backend)))[name]))
        got = await vinyl_outcome(_listed(cases(Item.vinyl)[name]))
        assert got == expected, name
    if backend == "postgresql":
        assert await django(lambda: list(cases(Item.objects.using(sync(backend)))["filter"])) == ["a", "c"]
        assert await django(lambda: list(cases(Item.objects.using(sync(backend)))["text"])) == ["30.0", "-7.5", "0.0"]
    # A write: the value stored is the numeric's, as Django stores it.
    await Item.vinyl.filter(name="b").update(flt=F("integer") * 0.1)
    stored = await django(lambda: Item.objects.using(sync(backend)).get(name="b").flt)
    await django(lambda: Item.objects.using(sync(backend)).filter(name="b").update(flt=F("integer") * 0.1))
    assert stored == await django(lambda: Item.objects.using(sync(backend)).get(name="b").flt)


async def _listed(qs: Any) -> list:
    return [x async for x in qs]


# -------------------------------------------------- two faults in one statement
@pytest.mark.backends("postgresql", reason="only psycopg binds on the client: the other drivers bind as vinyl does")
async def test_a_statement_wrong_twice_reports_either_fault(backend: str) -> None:
    # make fuzz seed 9601: a filter with a literal PostgreSQL cannot parse
    # (span__gt='abc') and a lookup Django compiles to a missing function
    # (uid__iexact=UUID: upper(uuid)). Django's psycopg binds values on the
    # client, so the server meets 'abc' while it analyses the statement and
    # reports DataError; asyncpg binds on the server, which analyses first and
    # reports the missing function (ProgrammingError). Both refuse the
    # statement; each fault alone gets Django's class. The harness accepts
    # the pair (known.py ACCEPTED, pg-first-of-two-faults).
    zero = uuid.UUID(int=0)
    cases: dict[str, Callable[[Any], Any]] = {
        "literal": lambda m: m.filter(span__gt="abc"),
        "function": lambda m: m.filter(uid__iexact=zero),
        "both": lambda m: m.filter(Q(span__gt="abc") ^ Q(uid__iexact=zero)),
        # seed 5454 under Django 6.1: psycopg refuses a str for a bytea
        # before anything is sent (TypeError). asyncpg's server reported the
        # missing function first; since a value sent for later is adapted
        # before any server error is reported (fuzz seed 3055), vinyl too
        # raises psycopg's TypeError.
        "bytes": lambda m: m.filter(blob="ab"),
        "bytes and function": lambda m: m.filter(Q(uid__iexact=zero) | Q(name="x")).filter(blob="ab"),
    }
    answers = {}
    for name, make in cases.items():
        want = await django(lambda: list(make(Item.objects.using(sync(backend))).values_list("pk", flat=True)))
        got = await vinyl_outcome(make(Item.vinyl).values_list("pk", flat=True))
        answers[name] = (want, got)
    assert answers["literal"] == (("raised", "DataError"),) * 2
    assert answers["function"] == (("raised", "ProgrammingError"),) * 2
    assert answers["both"] == (("raised", "DataError"), ("raised", "ProgrammingError"))
    assert answers["bytes"] == (("raised", "TypeError"),) * 2
    assert answers["bytes and function"] == (("raised", "TypeError"),) * 2


# ---------------------------------------------------------------- prefetch
async def test_a_prefetch_queryset_filtered_through_the_relation_reuses_its_join(backend: str) -> None:
    """make fuzz seed 9702 (PostgreSQL, SQLite): Prefetch('tags', queryset=Tag.vinyl.filter(items__exact=k)).
    Django's prefetcher filters on the owners reusing every join the queryset made (one through-table row per
    tag); vinyl joined the through table again, and each owner got the tag once per owner holding it."""
    tags = [await Tag.vinyl.create(name=f"t{i}", weight=i) for i in range(3)]
    items = [await Item.vinyl.create(name=f"i{i}") for i in range(4)]
    for item in items:
        await item.tags.add(*tags[: 1 + item.pk % 3])
    await items[0].tags.add(tags[2])
    chosen = items[1].pk

    def shape(model: Any, tag: Any) -> Any:
        return model.order_by("pk").prefetch_related(Prefetch("tags", queryset=tag.filter(items__exact=chosen).order_by("pk")))

    def answer(rows: Any, vinyl: bool = False) -> list:
        # Django's prefetched manager; vinyl's item["tags"], the prefetched list.
        return [(item.name, [tag.name for tag in (item["tags"] if vinyl else item.tags.all())]) for item in rows]

    expected = await django(lambda: answer(shape(Item.objects.using(sync(backend)), Tag.objects)))
    assert any(names for _, names in expected)  # the chosen item's tags, on every item holding them
    for _ in range(2):  # cold, then on the plans
        assert answer(await shape(Item.vinyl, Tag.vinyl), vinyl=True) == expected
    # The same through another lookup of the relation, and without one (the plain filter).
    for lookup in ({"items__name": items[1].name}, {"weight__gte": 1}):
        def other(model: Any, tag: Any, lookup: dict = lookup) -> Any:
            return model.order_by("pk").prefetch_related(Prefetch("tags", queryset=tag.filter(**lookup).order_by("pk")))

        expected = await django(lambda: answer(other(Item.objects.using(sync(backend)), Tag.objects)))
        assert answer(await other(Item.vinyl, Tag.vinyl), vinyl=True) == expected


async def test_a_statement_wrong_on_two_rows_is_refused_as_django_on_the_same_rows(backend: str) -> None:
    # make fuzz seed 2906 shape 107 (PostgreSQL): update(slug=None, small=F('small') * 2147483648) sets a NOT NULL
    # column to NULL on every row and overflows on the rows whose small is not 0. The server refuses it for the
    # fault of the first row it reaches, so the rows' physical order decides the class; the harness restores the
    # rows before each ORM's run and the order may change. On the same rows, vinyl must be refused as Django is.
    # (known.py ACCEPTED refusal-follows-physical-row-order)
    def update(model: Any) -> Any:
        return model.update(slug=None, small=F("small") * 2147483648)

    answers = []
    for smalls in ((0, 3), (3, 0)):  # the first row inserted reaches the server first
        await Item.vinyl.all().delete()
        for small in smalls:
            await Item.vinyl.create(name="x", small=small)
        # vinyl first: a refused statement changes no row, so Django meets the same rows after it.
        got = await vinyl_outcome(update(Item.vinyl.all()))
        expected = await django(lambda: update(Item.objects.using(sync(backend))))
        assert got == expected
        assert expected[0] == "raised"
        answers.append(expected)
        assert sorted([(i.name, i.slug, i.small) async for i in Item.vinyl.all()]) == sorted(("x", "", s) for s in smalls)
    if backend == "postgresql":
        # The order decides: the NOT NULL fault where a 0 comes first, the overflow where a 3 does.
        assert answers == [("raised", "IntegrityError"), ("raised", "DataError")]


# ------------------------------------------------- answers that depend on the row order
async def test_a_chunked_prefetch_answers_as_django_in_the_same_row_order(backend: str) -> None:
    # make fuzz seed 2903 shape 32 (PostgreSQL): an unordered stream with a Prefetch whose queryset joins the
    # relation twice. Django reads each tag's owner key from the first join and filters the owners of the chunk on
    # the last one, so an item's prefetched tags depend on which items share its chunk: on the row order. Django's
    # iterator() (a DECLARE CURSOR) met another order than its list() and vinyl's stream. In one row order, vinyl
    # must answer exactly as Django. (known.py ACCEPTED chunked-prefetch-follows-row-order)
    await sync_to_async(restore)(sync(backend), Dataset.draw(2903))

    def shape(model: Any, tag: Any, order: Any) -> Any:
        inner = tag.filter(items__day__exact=datetime.date(1970, 1, 1)).filter(items__id__gte=1)
        return model.prefetch_related(Prefetch("tags", queryset=inner), "tags__items").distinct().order_by(order)

    def answer(items: list, vinyl: bool = False) -> list:
        def tags(obj: Any) -> list:
            return obj["tags"] if vinyl else list(obj.tags.all())

        def items_of(tag: Any) -> list:
            return tag["items"] if vinyl else list(tag.items.all())

        # (No ORDER BY orders a tag's items: compared as sets; an item's tags, repeats kept, as multisets.)
        return [(item.pk, sorted((tag.pk, sorted(i.pk for i in items_of(tag))) for tag in tags(item))) for item in items]

    pks = [pk async for pk in Item.vinyl.order_by("pk").values_list("pk", flat=True)]
    answers = []
    # Two row orders that pair the rows into other chunks of two.
    for keys in (pks, pks[1:] + pks[:1]):
        order = Case(*(When(pk=pk, then=Value(i)) for i, pk in enumerate(keys)), output_field=IntegerField())
        expected = await django(lambda: answer(list(
            shape(Item.objects.using(sync(backend)), Tag.objects.using(sync(backend)), order).iterator(chunk_size=2))))
        got = answer([item async for item in shape(Item.vinyl, Tag.vinyl, order).iterator(chunk_size=2)], vinyl=True)
        assert [pk for pk, _ in expected] == keys
        assert got == expected
        answers.append(sorted(expected))
    # The order decides the prefetched lists: Django's own answers differ between the two.
    assert answers[0] != answers[1]


# ------------------------------------------------- errors that depend on the plan
@pytest.mark.backends("postgresql", reason="Django streams through a DECLARE CURSOR only on PostgreSQL")
async def test_an_overflow_only_some_plans_evaluate_is_djangos_own_answer_too(backend: str) -> None:
    # make fuzz seed 9801 shape 1220: exclude(big=F('integer') + -5, ...) beside other conditions, where
    # integer + -5 overflows on a row that the other conditions leave out. Whether the server evaluates it on that
    # row depends on its plan: on one database Django's own list() raised DataError while its iterator() (a DECLARE
    # CURSOR, planned for its first rows) answered []; on a fresh one both answered []. vinyl may meet either plan
    # too; what it may never do is answer other rows or another error. (known.py ACCEPTED pg-overflow-depends-on-plan)
    await sync_to_async(restore)(sync(backend), Dataset.draw(9801))

    def shape(model: Any, tag: Any) -> Any:
        return (model.filter(Exists(tag.filter(items=OuterRef("pk"), weight__gt=0))).order_by("id")
                .filter(owner__premium__level__gt=2, clock__isnull=False)
                .exclude(Q(big=F("integer") + -5, owner__age__lt=-1)))

    async def streamed() -> list:
        return [item.pk async for item in shape(Item.vinyl, Tag.vinyl).iterator(chunk_size=2)]

    async def listed() -> list:
        return [item.pk for item in await shape(Item.vinyl, Tag.vinyl)]

    answers = {
        "Django list": await django(lambda: [i.pk for i in shape(Item.objects.using(sync(backend)), Tag.objects)]),
        "Django iterator": await django(
            lambda: [i.pk for i in shape(Item.objects.using(sync(backend)), Tag.objects).iterator(chunk_size=2)]),
        "vinyl list": await vinyl_outcome(listed()),
        "vinyl stream": await vinyl_outcome(streamed()),
    }
    # The rows no plan disputes: none. The only other answer a plan may give: the overflow's DataError.
    disputed = {name: answer for name, answer in answers.items() if answer not in ([], ("raised", "DataError"))}
    assert disputed == {}


@pytest.mark.backends("postgresql", reason="Django streams through a DECLARE CURSOR only on PostgreSQL")
async def test_an_overflow_a_cursors_plan_evaluates_is_djangos_own_answer_too(backend: str) -> None:
    # make fuzz seed 7071 shape 79, the other way round from the test above: small < integer + -5 overflows on a
    # row with integer = -2**31 that tags__pk__gt=12 leaves out. Django's list() filtered it out first and answered
    # []; its iterator() (a DECLARE CURSOR, planned for its first rows) evaluated it and raised DataError; vinyl's
    # list and stream answered []. Each may meet either plan; no other rows, no other error.
    # (known.py ACCEPTED pg-overflow-depends-on-plan)
    await sync_to_async(restore)(sync(backend), Dataset.draw(7071))

    def shape(model: Any) -> Any:
        return model.filter(small__lt=F("integer") + -5).filter(tags__pk__gt=12, flt__gt=F("owner__profile__score"))

    async def streamed() -> list:
        return [item.pk async for item in shape(Item.vinyl).iterator(chunk_size=2)]

    async def listed() -> list:
        return [item.pk for item in await shape(Item.vinyl)]

    answers = {
        "Django list": await django(lambda: [i.pk for i in shape(Item.objects.using(sync(backend)))]),
        "Django iterator": await django(lambda: [i.pk for i in shape(Item.objects.using(sync(backend))).iterator(chunk_size=2)]),
        "vinyl list": await vinyl_outcome(listed()),
        "vinyl stream": await vinyl_outcome(streamed()),
    }
    disputed = {name: answer for name, answer in answers.items() if answer not in ([], ("raised", "DataError"))}
    assert disputed == {}


@pytest.mark.backends("postgresql", reason="PostgreSQL orders a WHERE's conditions by their estimated cost")
async def test_an_in_list_is_evaluated_before_an_overflowing_sum_as_in_django(backend: str) -> None:
    # make fuzz seed 3028 shape 85: pbig__in=[1, 2**63 - 1, 3] beside small < integer + 1, which overflows on the
    # row with integer = 2**31 - 1 that the IN list leaves out. PostgreSQL evaluates a WHERE's conditions in the
    # order of their estimated cost. Django's literal list (a constant array) is estimated cheap and evaluated
    # first, whichever order the filters are written in: rows. vinyl sent the list as the array's text cast on the
    # server in a subquery, which PostgreSQL estimated dearer than the sum: DataError. It now sends a binary array
    # parameter. Each shape runs 8 times on one connection: past the first 5 runs of a prepared statement,
    # PostgreSQL may keep a generic plan, in which the list is a parameter, not a constant.
    await sync_to_async(restore)(sync(backend), Dataset.draw(3028))
    in_list = {"tags__pk__gt": 3, "pbig__in": [1, 9223372036854775807, 3]}
    overflowing = Q(small__lt=F("integer") + 1)

    def in_list_first(model: Any) -> Any:
        return model.filter(**in_list).filter(overflowing).values_list("pint", "clock").distinct()

    def sum_first(model: Any) -> Any:
        return model.filter(overflowing).filter(**in_list).values_list("pint", "clock").distinct()

    async def listed(shape: Callable[[Any], Any]) -> Any:
        return sorted(await shape(Item.vinyl), key=repr)

    for shape in (in_list_first, sum_first):
        rows = await django(lambda: sorted(shape(Item.objects.using(sync(backend))), key=repr))
        assert rows and rows != ("raised", "DataError")
        async with vinyl.atomic():  # one connection: its prepared statement, run again
            for _ in range(8):
                assert await vinyl_outcome(listed(shape)) == rows


async def test_an_expression_grouped_and_compared_in_having_is_one_expression_as_in_django(backend: str) -> None:
    # make fuzz seed 2909 shape 200 (PostgreSQL): exclude(Q(age__gte=F('level') - k) & ..., n_items__gte=0) after
    # annotate(n_items=Count('items')) puts the condition in HAVING, and Django groups by F('level') - k there too.
    # Django's psycopg writes k into the SQL, so GROUP BY ("level" - 0) and HAVING ... ("level" - 0) are one
    # expression to PostgreSQL; vinyl sent $2 and $3, two expressions, and the server refused the query ("must
    # appear in the GROUP BY clause"). Equal constants of a GROUP BY statement now share one placeholder (text only
    # within a grouped expression written again); no plan is made of such a statement.
    for i, (age, level) in enumerate([(5, 3), (2, 4), (None, 1), (9, 0)]):
        owner = await Premium.vinyl.create(name=f"p{i}", age=age, level=level)
        await Profile.vinyl.create(owner_id=owner.pk, score=1.5 + i)
        for j in range(i):
            await Item.vinyl.create(name=f"i{i}{j}", owner_id=owner.pk)

    def grouped(model: Any, k: int, low: Any) -> Any:
        return (model.annotate(n_items=Count("items"))
                .exclude(Q(age__gte=F("level") - k) & Q(profile__score__range=[low, 1e300]), n_items__gte=0)
                .values_list("age", flat=True).annotate(n_items_g=Count("items")))

    def having(model: Any, k: int, floor: int) -> Any:
        return (model.annotate(n=Count("items")).filter(Q(age__gte=F("level") - k) | Q(n__gte=2), level__gte=floor)
                .values_list("name", "n").order_by("name"))

    def text(model: Any, suffix: str) -> Any:
        # Text takes its type from where it stands: it shares a placeholder within the grouped expression only.
        return (model.values("age").annotate(n=Count("items"))
                .filter(Q(name__gt=Concat("code", Value(suffix))) | Q(n__gte=2), name__gte=suffix)
                .values_list("n", flat=True).order_by("n"))

    sync_premium = Premium.objects.using(sync(backend))
    for suffix in ("9", "p", "9"):
        expected = await django(lambda: list(text(sync_premium, suffix)))
        assert backend != "postgresql" or type(expected) is list, expected
        assert await vinyl_outcome(_awaited(text(Premium.vinyl, suffix))) == expected
    # k then k again (a plan), another k, and a floor equal to k by chance (two slots: a plan of
    # its own for other values), then not.
    for k, low, floor in [(0, decimal.Decimal("1.5"), 1), (0, 2.25, 3), (3, 2.25, 1), (1, 2.25, 1), (1, 0.5, 2)]:
        for name, answer in [
            ("exists", (await django(lambda: grouped(sync_premium, k, low).exists()),
                        await vinyl_outcome(grouped(Premium.vinyl, k, low).exists()))),
            ("count", (await django(lambda: grouped(sync_premium, k, low).count()),
                       await vinyl_outcome(grouped(Premium.vinyl, k, low).count()))),
            ("rows", (await django(lambda: sorted(grouped(sync_premium, k, low), key=str)),
                      _sorted(await vinyl_outcome(_awaited(grouped(Premium.vinyl, k, low)))))),
            ("having", (await django(lambda: list(having(sync_premium, k, floor))),
                        await vinyl_outcome(_awaited(having(Premium.vinyl, k, floor))))),
        ]:
            expected, got = answer
            if backend == "postgresql":  # (MariaDB refuses some of these as Django's MySQL backend does)
                assert not (isinstance(expected, tuple) and expected[:1] == ("raised",)), (name, k, expected)
            assert got == expected, (name, k, low, floor)


async def _awaited(qs: Any) -> Any:
    return await qs


def _sorted(answer: Any) -> Any:
    return sorted(answer, key=str) if isinstance(answer, list) else answer


# pg-cardinality-violation-class (fuzz seed 3004, writes): bulk_create(update_conflicts=True) with two new rows of
# the same unique key makes PostgreSQL refuse the statement with SQLSTATE 21000 (a row affected twice); psycopg, and
# so Django, raise ProgrammingError, vinyl raised DatabaseError (no entry for SQLSTATE class 21). MariaDB and SQLite
# accept the statement: the last row wins on either side.
async def test_an_upsert_touching_a_row_twice_is_refused_as_django_refuses_it(backend: str) -> None:
    def tags() -> list[Tag]:
        return [Tag(name="a$", weight=0), Tag(name="b", weight=1), Tag(name="a$", weight=2)]

    options: dict[str, Any] = {"update_conflicts": True, "unique_fields": ["name"], "update_fields": ["weight"]}
    expected = await django(lambda: [(t.name, t.weight) for t in Tag.objects.using(sync(backend)).bulk_create(tags(), **options)])
    rows_after_django = await django(lambda: sorted(Tag.objects.using(sync(backend)).values_list("name", "weight")))
    await django(lambda: Tag.objects.using(sync(backend)).all().delete())
    got = await vinyl_outcome(Tag.vinyl.bulk_create(tags(), **options))
    if isinstance(got, list):
        got = [(t.name, t.weight) for t in got]
    assert got == expected
    if backend == "postgresql":
        assert expected == ("raised", "ProgrammingError")
    assert sorted(await Tag.vinyl.values_list("name", "weight")) == rows_after_django


# probe-overflows-at-the-end-of-a-range (fuzz seed 3005): a planned shape meeting timedelta(days=999999999) raised
# OverflowError where Django answers: the plan's probe of the value (another value of its kind, to tell the slots
# apart) was the value plus some seconds, past timedelta.max. Every kind's probe must stay within its range.
_RANGE_ENDS = [
    ("span", datetime.timedelta(days=3, microseconds=5), datetime.timedelta(days=999999999)),
    ("span", datetime.timedelta(days=3), datetime.timedelta.max),
    ("span", datetime.timedelta(days=3), datetime.timedelta.min),
    ("at", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc)),
    ("at", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), datetime.datetime(1, 1, 2, tzinfo=datetime.timezone.utc)),
    ("day", datetime.date(2024, 1, 1), datetime.date.max),
    ("day", datetime.date(2024, 1, 1), datetime.date.min),
    ("clock", datetime.time(12, 0), datetime.time(23, 59, 59, 999999)),
    ("big", 5, 2**63 - 1),
    ("big", 5, -2**63),
    ("integer", 5, 2**31 - 1),
    ("dec", decimal.Decimal("1.5"), decimal.Decimal("999999999.999")),
    ("flt", 1.5, 1.7976931348623157e308),
    ("uid", uuid.UUID(int=5), uuid.UUID(int=2**128 - 1)),
]


@pytest.mark.parametrize("case", range(len(_RANGE_ENDS)))
async def test_a_planned_shape_answers_for_a_value_at_the_end_of_its_range(backend: str, case: int) -> None:
    field, usual, extreme = _RANGE_ENDS[case]
    await Item.vinyl.create(name="a", **{field: usual})
    # The value last of many (a probe moves a value further the later it stands), in a shape of this case alone
    # (its own list length), planned from the extreme value first, then used with the usual one and back.
    names = ["a"] + [f"n{i}" for i in range(40 + case)]  # (fewer than a long list's 64: each value a slot)
    for value in (extreme, usual, extreme):
        expected = await django(lambda: sorted(Item.objects.using(sync(backend)).filter(name__in=names, **{field: value})
                                               .values_list("name", flat=True)))
        got = await vinyl_outcome(_awaited(Item.vinyl.filter(name__in=names, **{field: value}).values_list("name", flat=True)))
        assert _sorted(got) == expected, (field, value)
    if not (backend == "sqlite" and field == "span"):  # (SQLite: Django's int of microseconds is too large, OverflowError)
        assert expected == []


def _only_item_a(alias: str) -> Any:
    """Django's items on ``alias`` (the manager), left holding one row, named "a"."""
    items = Item.objects.using(alias)
    items.all().delete()
    items.create(name="a")
    return items


async def _only_item_a_in_vinyl() -> None:
    """The same rows, written through vinyl."""
    await Item.vinyl.all().delete()
    await Item.vinyl.create(name="a")


# a-failed-write-dooms-its-block (fuzz seed 3016, SQLite): a write that fails inside an atomic block, its error
# caught there with no savepoint, leaves the block only able to roll back: Django marks it (atomic(savepoint=False)
# around bulk_create, mark_for_rollback_on_error around update() and save()) whatever the exception, the next
# query is refused (TransactionManagementError) and the block rolls back on exit. vinyl marked it only for a
# database error: an OverflowError of SQLite's driver (a too large integer) let the block commit.
_FAILING_WRITES: dict[str, tuple[Callable[[Any], Any], Callable[[], Any]]] = {
    "bulk_create, an integer out of range": (
        lambda manager: manager.bulk_create([Item(name="x", big=2**63)]),
        lambda: Item.vinyl.bulk_create([Item(name="x", big=2**63)]),
    ),
    "bulk_create, a value that is no number": (
        lambda manager: manager.bulk_create([Item(name="x", integer="seven")]),
        lambda: Item.vinyl.bulk_create([Item(name="x", integer="seven")]),
    ),
    "update, an integer out of range": (
        lambda manager: manager.filter(name="a").update(big=2**63),
        lambda: Item.vinyl.filter(name="a").update(big=2**63),
    ),
    "update, a value that is no number": (
        lambda manager: manager.filter(name="a").update(integer="seven"),
        lambda: Item.vinyl.filter(name="a").update(integer="seven"),
    ),
    "create, an integer out of range": (
        lambda manager: manager.create(name="x", big=2**63),
        lambda: Item.vinyl.create(name="x", big=2**63),
    ),
    "create, a value that is no number": (
        lambda manager: manager.create(name="x", integer="seven"),
        lambda: Item.vinyl.create(name="x", integer="seven"),
    ),
    "bulk_update, an integer out of range": (
        lambda manager: manager.bulk_update([Item(pk=manager.get(name="a").pk, big=2**63)], ["big"]),
        lambda: _vinyl_bulk_update_big(2**63),
    ),
}


async def _vinyl_bulk_update_big(value: int) -> Any:
    item = await Item.vinyl.get(name="a")
    item.big = value
    return await Item.vinyl.bulk_update([item], ["big"])


@pytest.mark.parametrize("case", sorted(_FAILING_WRITES))
async def test_a_write_failing_inside_a_block_leaves_it_only_rolling_back_as_django(backend: str, case: str) -> None:
    django_write, vinyl_write = _FAILING_WRITES[case]

    def on_django() -> tuple:
        alias = sync(backend)
        _only_item_a(alias)
        answers: list = []
        with transaction.atomic(using=alias):
            Item.objects.using(alias).create(name="b")
            try:
                django_write(Item.objects.using(alias))
                answers.append("written")
            except Exception as exc:  # noqa: BLE001 - the class is the answer compared
                answers.append(classify(exc, oracle=True))
            try:
                answers.append(Item.objects.using(alias).count())
            except Exception as exc:  # noqa: BLE001
                answers.append(classify(exc, oracle=True))
        return tuple(answers), sorted(Item.objects.using(alias).values_list("name", flat=True))

    expected = await django(on_django)
    await _only_item_a_in_vinyl()
    answers: list = []
    async with vinyl.atomic():
        await Item.vinyl.create(name="b")
        try:
            await vinyl_write()
            answers.append("written")
        except Exception as exc:  # noqa: BLE001
            answers.append(classify(exc))
        try:
            answers.append(await Item.vinyl.count())
        except Exception as exc:  # noqa: BLE001
            answers.append(classify(exc))
    got = (tuple(answers), sorted(await Item.vinyl.values_list("name", flat=True)))
    assert got == expected
    if case.startswith("bulk_create") and django_version >= (6, 0):
        # Django 6 runs a bulk_create of one INSERT unmarked: the block goes on where the server lets it.
        return
    # Django's own answer: the write refused, the next query too (TransactionManagementError, a
    # ProgrammingError), nothing kept.
    assert expected[0][1] == "ProgrammingError" and expected[1] == ["a"]


# a-broken-block-refuses-planned-statements (fuzz seed 3018, PostgreSQL): after a write failed inside a block
# (caught there, no savepoint), Django refuses every further query of the block (TransactionManagementError), a
# nested block's too (it gets no savepoint). vinyl sent a statement whose plan it knew to the server: PostgreSQL
# refused it as the transaction was aborted (InternalError), MariaDB and SQLite ran it.
async def test_a_block_left_only_rolling_back_refuses_every_later_statement_as_django(backend: str) -> None:
    def on_django() -> tuple:
        alias = sync(backend)
        items = _only_item_a(alias)
        answers: list = []
        with transaction.atomic(using=alias):
            items.filter(name="a").update(integer=1)
            answers.append(items.filter(name="a").count())
            try:
                items.filter(name="a").update(big=2**63)
            except Exception as exc:  # noqa: BLE001 - the class is the answer compared
                answers.append(classify(exc, oracle=True))
            for step in (lambda: items.filter(name="a").count(), lambda: items.filter(name="a").update(integer=2),
                         lambda: list(items.filter(name="a").iterator(chunk_size=2)), lambda: items.create(name="c")):
                try:
                    with transaction.atomic(using=alias):
                        answers.append(step())
                except Exception as exc:  # noqa: BLE001
                    answers.append(classify(exc, oracle=True))
        return tuple(answers), sorted(items.values_list("name", "integer"))

    expected = await django(on_django)
    await _only_item_a_in_vinyl()
    answers: list = []

    async def stream() -> list:
        return [i async for i in Item.vinyl.filter(name="a").iterator(chunk_size=2)]

    async with vinyl.atomic():
        await Item.vinyl.filter(name="a").update(integer=1)
        answers.append(await Item.vinyl.filter(name="a").count())
        try:
            await Item.vinyl.filter(name="a").update(big=2**63)
        except Exception as exc:  # noqa: BLE001
            answers.append(classify(exc))
        for step in (lambda: Item.vinyl.filter(name="a").count(), lambda: Item.vinyl.filter(name="a").update(integer=2),
                     stream, lambda: Item.vinyl.create(name="c")):
            try:
                async with vinyl.atomic():
                    answers.append(await step())
            except Exception as exc:  # noqa: BLE001
                answers.append(classify(exc))
    got = (tuple(answers), sorted(await Item.vinyl.values_list("name", "integer")))
    # (SQLite stores any integer: the update does not fail there.)
    if backend != "sqlite":
        assert expected == ((1, "DataError") + ("ProgrammingError",) * 4, [("a", None)])
    assert got == expected


# A JSON value json cannot encode, after the server aborted the block's transaction (make fuzz seed 3055, Django 6,
# PostgreSQL): psycopg adapts every value before it sends a statement, so Django raises the JSON TypeError whatever
# state the transaction is in. vinyl sends such a value wrapped for later (sentlater.py) and adapted it only when
# asyncpg refused it; in an aborted transaction the server refused the statement first (InternalError).
_UNENCODABLE = {"a": decimal.Decimal("1.5")}
_AFTER_AN_ABORT: dict[str, tuple[Callable[[Any], Any], Callable[[], Any]]] = {
    "create": (lambda items: items.create(name="j", data=_UNENCODABLE), lambda: Item.vinyl.create(name="j", data=_UNENCODABLE)),
    "bulk_create": (lambda items: items.bulk_create([Item(name="j"), Item(name="k", data=_UNENCODABLE)]) and None,
                    lambda: Item.vinyl.bulk_create([Item(name="j"), Item(name="k", data=_UNENCODABLE)])),
    "update": (lambda items: items.filter(name="a").update(data=_UNENCODABLE),
               lambda: Item.vinyl.filter(name="a").update(data=_UNENCODABLE)),
    "filter": (lambda items: list(items.filter(data=_UNENCODABLE)), lambda: Item.vinyl.filter(data=_UNENCODABLE)),
    "filter_in": (lambda items: list(items.filter(data=_UNENCODABLE, name__in=["a", "b"])),
                  lambda: Item.vinyl.filter(data=_UNENCODABLE, name__in=["a", "b"])),
    "iterator": (lambda items: list(items.filter(data=_UNENCODABLE).iterator(chunk_size=2)),
                 lambda: _listed(Item.vinyl.filter(data=_UNENCODABLE).iterator(chunk_size=2))),
}


@pytest.mark.parametrize("case", sorted(_AFTER_AN_ABORT))
async def test_a_json_value_json_cannot_encode_fails_as_in_django_after_the_server_aborted_the_block(
    backend: str, case: str
) -> None:
    django_step, vinyl_step = _AFTER_AN_ABORT[case]

    def on_django() -> tuple:
        alias = sync(backend)
        items = _only_item_a(alias)
        answers: list = []
        with transaction.atomic(using=alias):
            for step in (lambda: list(items.filter(slug__regex="[")), lambda: django_step(items)):
                try:
                    answers.append(step())
                except Exception as exc:  # noqa: BLE001 - the class is the answer compared
                    answers.append(classify(exc, oracle=True))
        return tuple(answers)

    expected = await django(on_django)
    await _only_item_a_in_vinyl()
    answers: list = []
    try:
        async with vinyl.atomic():
            for step in (lambda: Item.vinyl.filter(slug__regex="["), vinyl_step):
                try:
                    answers.append(await step())
                except Exception as exc:  # noqa: BLE001
                    answers.append(classify(exc))
    except Exception:  # noqa: BLE001 - the block's end may fail as Django's does; the steps are what is compared
        pass
    assert tuple(answers) == expected
    if backend == "postgresql":
        assert expected[1] == "TypeError"


# ------------------------------------------------- SQL functions on SQLite
async def test_floor_of_null_and_regex_on_a_number_answer_as_django(backend: str) -> None:
    """SQLAlchemy's SQLite dialect replaced SQLite's FLOOR (math.floor: failed on NULL, OperationalError) and
    Django's REGEXP (re.search: failed on an integer) on vinyl's connections (seed 11 shape 139)."""
    await Item.vinyl.create(name="a", dec=None, integer=12)
    await Item.vinyl.create(name="b", dec=decimal.Decimal("-0.5"), integer=3)

    def on(qs: Any) -> Any:
        return (qs.annotate(f=Floor("dec")).order_by("name").values_list("name", "f"),
                qs.filter(integer__regex="^1").values_list("name", flat=True))

    expected = await django(lambda: tuple(list(q) for q in on(Item.objects.using(sync(backend)))))
    assert expected == ([("a", None), ("b", -1)], ["a"])
    assert tuple([await q for q in on(Item.vinyl.all())]) == expected


async def test_a_stream_after_prefetch_related_needs_a_chunk_size_where_djangos_does(backend: str) -> None:
    """iterator() without chunk_size after prefetch_related() raises ValueError in Django; its aiterator() streams
    by 2,000 and prefetches, as ``async for`` does (seed 4000 shape 128: vinyl's iterator() answered rows)."""
    owner = await Owner.vinyl.create(name="o")
    for i in range(3):
        await Item.vinyl.create(name=f"i{i}", owner_id=owner.pk)
    djangos = Item.objects.using(sync(backend)).prefetch_related("owner").order_by("pk")
    assert await django(lambda: list(djangos.iterator())) == ("raised", "ValueError")
    expected = await django(lambda: [(i.name, i.owner.name) for i in djangos.iterator(chunk_size=2000)])
    qs = Item.vinyl.prefetch_related("owner").order_by("pk")
    assert await vinyl_outcome(_names(qs.iterator())) == ("raised", "ValueError")
    assert await _names(qs.aiterator()) == expected
    assert await _names(qs.iterator(chunk_size=2)) == expected
    assert [(i.name, i["owner"].name) async for i in qs] == expected


async def _names(stream: Any) -> list:
    return [(i.name, i["owner"].name) async for i in stream]


async def test_bulk_create_wrong_in_two_objects_raises_djangos_first_error(backend: str) -> None:
    """A bulk_create whose 2nd object holds a Decimal in a JSONField (json cannot encode it: TypeError) and whose 3rd
    holds '1e3' for an integer (ValueError): the error Django raises first (seed 4018 write shape 93, Django 6.0)."""
    def objs(model: Any) -> list:
        return [model(name="a"), model(name="b", data={"a": decimal.Decimal("1.5")}), model(name="c", pint="1e3")]

    # A bulk_create before it: vinyl plans the statement (and prepares the values itself from then on).
    await Item.vinyl.bulk_create([Item(name="p", at=datetime.datetime(2024, 2, 29, 12, 29, tzinfo=datetime.timezone.utc))])
    expected = await django(lambda: Item.objects.using(sync(backend)).bulk_create(objs(Item)))
    assert expected[0] == "raised"
    assert await vinyl_outcome(Item.vinyl.bulk_create(objs(Item))) == expected


async def test_a_prefetched_row_keeps_the_owner_its_queryset_joined_as_in_django(backend: str) -> None:
    """Prefetch('items', queryset=Item...select_related('owner')) from a Premium (a child of Owner): each item keeps
    the Owner its queryset joined, as Django's prefetcher keeps a cached owner; without the join it gets the
    prefetching instance (seed 3074 shape 428: vinyl set the Premium over the joined Owner)."""
    premium = await Premium.vinyl.create(name="p")
    owner = await Owner.vinyl.create(name="o")
    for parent in (premium, owner):
        for i in range(2):
            await Item.vinyl.create(name=f"i{i}", owner_id=parent.pk)

    def shape(parents: list) -> list:  # Django's instances
        return [[(i.name, type(i.owner).__name__, i.owner is p) for i in p.items.all()] for p in parents]

    def vinyls(parents: list) -> list:  # vinyl's: a prefetch and a cached owner read by item access
        return [[(i.name, type(i["owner"]).__name__, i["owner"] is p) for i in p["items"]] for p in parents]

    for model in (Premium, Owner):
        for joined in (True, False):
            items = Item.objects.order_by("pk")
            mine = Item.vinyl.order_by("pk")
            if joined:
                items, mine = items.select_related("owner"), mine.select_related("owner")
            djangos = model.objects.using(sync(backend)).filter(name__in=["p", "o"]).order_by("pk")
            expected = await django(lambda: shape(list(djangos.prefetch_related(Prefetch("items", queryset=items)))))
            got = await model.vinyl.filter(name__in=["p", "o"]).order_by("pk").prefetch_related(Prefetch("items", queryset=mine))
            assert vinyls(got) == expected, (model.__name__, joined)
            assert any(row for parent in expected for row in parent)
