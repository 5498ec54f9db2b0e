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
import logging
from typing import Any, Callable

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, ProgrammingError
from django.db.models import F
from django.utils import timezone

import vinyl
from tests.diffapp.models import Item, Owner, Premium, Profile
from tests.differential.compare import classify

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
@pytest.mark.xfail(strict=True, reason="stream-driver-error-leak: async for raises asyncpg's NumericValueOutOfRangeError, "
                   "not django.db.DataError (vinyl/engine, faults helper)")
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
@pytest.mark.xfail(strict=True, reason="pg-int-beyond-int64-param: asyncpg refuses a Python int beyond 64 bits "
                   "(DataError) where psycopg sends numeric (parameter typing: vinyl/engine, faults helper)")
async def test_int_beyond_64_bits_in_filter(backend: str) -> None:
    await Item.vinyl.create(name="a", big=2**63 - 1)
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(big__range=(2**63 - 1, 2**64)).values_list("name", flat=True)))
    assert expected == ["a"]
    assert await Item.vinyl.filter(big__range=(2**63 - 1, 2**64)).values_list("name", flat=True) == expected


@pytest.mark.backends("postgresql", reason="asyncpg types every parameter; the other drivers send text")
@pytest.mark.xfail(strict=True, reason="pg-text-param-for-typed-column: a str for a DurationField (interval) parameter: "
                   "psycopg lets PostgreSQL cast it, asyncpg raises DataError (parameter typing: faults helper)")
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
@pytest.mark.xfail(strict=True, reason="mysql-1690-not-integrityerror: Django maps 1690 to IntegrityError, vinyl raises "
                   "OperationalError (vinyl/exceptions.py, faults helper)")
async def test_mysql_out_of_range_arithmetic_is_integrityerror(backend: str) -> None:
    await Item.vinyl.create(name="a", pint=0, psmall=1)
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(psmall__gt=F("pint") - 5)))
    assert expected == ("raised", "IntegrityError")
    with pytest.raises(IntegrityError):
        await Item.vinyl.filter(psmall__gt=F("pint") - 5)


@pytest.mark.backends("mysql", reason="MySQL has no float infinity; the driver refuses it")
@pytest.mark.xfail(strict=True, reason="mysql-float-inf-in-sql: vinyl's driver writes float('-inf') into the SQL as "
                   "'-infe0' (error 1054, unknown column: ProgrammingError from await qs, OperationalError from count()) "
                   "where Django's refuses it (ProgrammingError); vinyl/engine + exceptions, faults helper")
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
@pytest.mark.xfail(strict=True, reason="validation-deferred-to-await: once a shape was accepted, a later filter() with "
                   "an invalid value raises at await, not at filter() as in Django (vinyl/queryset.py recipe "
                   "laziness + vinyl/translate, plans helper)")
async def test_invalid_value_raises_at_filter_after_a_valid_one(backend: str) -> None:
    await Item.vinyl.create(name="a", flag=True)
    expected = await django(lambda: Item.objects.using(sync(backend)).filter(flag="abc"))
    assert expected == ("raised", "ValidationError")
    assert await Item.vinyl.filter(name="a").filter(flag="true").count() == 1  # a str Django converts
    with pytest.raises(ValidationError):
        Item.vinyl.filter(name="a").filter(flag="abc")  # no await: Django raises here


# ------------------------------------------------------------------ pool
@pytest.mark.xfail(strict=True, reason="pool-overflow-close-outside-greenlet: with a plan, a connection returned to a full "
                   "pool is closed outside SQLAlchemy's greenlet: 'Exception closing connection' (MissingGreenlet) logged by "
                   "sqlalchemy.pool, the connection left unclosed (vinyl/engine release on the planned path, faults helper)")
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
@pytest.mark.xfail(strict=True, reason="tz-compiled-into-plan: the current time zone is compiled into a plan; the same "
                   "shape under timezone.override() returns the first zone's rows (vinyl/translate, plans helper)")
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


@pytest.mark.xfail(strict=True, reason="validation-skipped-for-accepted-shape: once filter(dec__lt=<Decimal>) was "
                   "accepted, Decimal('Infinity') is neither validated at filter() nor refused: rows come back "
                   "(vinyl/queryset.py recipe + vinyl/translate, plans helper)")
async def test_invalid_decimal_is_refused_after_a_valid_one(backend: str) -> None:
    await Item.vinyl.create(name="a", dec=decimal.Decimal("1.5"))
    assert await Item.vinyl.filter(dec__lt=decimal.Decimal("2")).count() == 1
    expected = await django(lambda: Item.objects.using(sync(backend)).filter(dec__lt=decimal.Decimal("Infinity")))
    assert expected == ("raised", "ValidationError")
    with pytest.raises(ValidationError):
        Item.vinyl.filter(dec__lt=decimal.Decimal("Infinity"))


# ---------------------------------------------------- PostgreSQL parameters
@pytest.mark.backends("postgresql", reason="asyncpg types every parameter; the other drivers send text")
@pytest.mark.xfail(strict=True, reason="pg-bytes-param-given-str: filter(blob='ab'): Django's TypeError (its adapter "
                   "refuses str), vinyl's DataError from asyncpg (parameter adaptation, faults helper)")
async def test_text_for_binary_field_in_filter(backend: str) -> None:
    await Item.vinyl.create(name="a", blob=b"ab")
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(blob="ab")))
    assert expected == ("raised", "TypeError")
    with pytest.raises(TypeError):
        await Item.vinyl.filter(blob="ab")


@pytest.mark.backends("postgresql", reason="asyncpg converts aware datetimes to UTC itself; psycopg sends the offset")
@pytest.mark.xfail(strict=True, reason="pg-datetime-before-year-1-param: filter(at__year=1) under a zone east of UTC: "
                   "the lower bound is before year 1 in UTC; Django's query runs, asyncpg raises DataError (faults helper)")
async def test_year_1_lookup_under_an_eastern_zone(backend: str) -> None:
    await Item.vinyl.create(name="a", at=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    expected = await django(lambda: _in_zone("Asia/Tokyo", lambda: list(
        Item.objects.using(sync(backend)).filter(at__year=1).values_list("name", flat=True))))
    assert expected == []
    with timezone.override("Asia/Tokyo"):
        assert await Item.vinyl.filter(at__year=1).values_list("name", flat=True) == expected


@pytest.mark.backends("postgresql", reason="asyncpg maps date.min/date.max to -infinity/infinity; the others store dates")
@pytest.mark.xfail(strict=True, reason="pg-date-extremes-written-as-infinity: vinyl stores date.max as 'infinity' "
                   "(asyncpg's encoding), Django as 9999-12-31 (parameter encoding, faults helper)")
async def test_date_extremes_are_stored_as_dates(backend: str) -> None:
    obj = await Item.vinyl.create(name="a", day=datetime.date.max, at=datetime.datetime(9999, 12, 31, tzinfo=datetime.timezone.utc))
    stored = await django(lambda: Item.objects.using(sync(backend)).extra(select={"d": "day::text"}).values_list("d", flat=True).get(pk=obj.pk))
    assert stored == "9999-12-31"


@pytest.mark.backends("mysql", reason="MySQL error numbers")
@pytest.mark.xfail(strict=True, reason="mysql-errno-class-differs: error 1139 (bad regular expression) is "
                   "OperationalError in Django (PyMySQL's map) and ProgrammingError in vinyl (asyncmy's): map by "
                   "error number as Django's driver does (vinyl/exceptions.py, faults helper)")
async def test_mysql_regex_error_class(backend: str) -> None:
    await Item.vinyl.create(name="a")
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(name__regex="*a")))
    assert expected == ("raised", "OperationalError")
    assert await vinyl_outcome(Item.vinyl.filter(name__regex="*a")) == expected


@pytest.mark.backends("mysql", "sqlite", reason="PostgreSQL's iexact is UPPER(...) = UPPER(%s), no LIKE")
@pytest.mark.xfail(strict=True, reason="iexact-like-escaping-in-plan: iexact is LIKE with the value escaped; the plan "
                   "made for 'bob' replays '_' unescaped, a wildcard (vinyl/translate, plans helper)")
async def test_iexact_escaping_survives_a_plan(backend: str) -> None:
    for name in ("bob", "_", "a_b", "axb", "a%b", "%"):
        await Owner.vinyl.create(name=name)
    assert await Owner.vinyl.filter(name__iexact="BOB").values_list("name", flat=True) == ["bob"]
    for needle in ("_", "a_b", "%"):
        expected = await django(lambda: list(Owner.objects.using(sync(backend)).filter(name__iexact=needle).values_list("name", flat=True)))
        assert expected == [needle]
        assert await Owner.vinyl.filter(name__iexact=needle).values_list("name", flat=True) == expected


@pytest.mark.xfail(strict=True, reason="in-duplicate-breaks-shape: a first __in list with a duplicate makes the plan "
                   "that later lists of its length replay (issue 12; vinyl/translate, plans helper)")
async def test_in_list_with_a_duplicate_then_another_list(backend: str) -> None:
    pks = [(await Item.vinyl.create(name=f"n{i}")).pk for i in range(3)]
    assert sorted(await Item.vinyl.filter(id__in=[pks[0], pks[1], pks[0]]).values_list("id", flat=True)) == pks[:2]
    expected = await django(lambda: sorted(Item.objects.using(sync(backend)).filter(id__in=pks).values_list("id", flat=True)))
    assert expected == pks
    assert sorted(await Item.vinyl.filter(id__in=pks).values_list("id", flat=True)) == expected


@pytest.mark.backends("mysql", reason="Django drops a WHERE whose value overflows an unsigned MySQL column")
@pytest.mark.xfail(strict=True, reason="mysql-range-overflow-drops-where: the plan of pint__lt=5_000_000_000 (no WHERE) "
                   "is replayed for 2_500_000_000 (issue 12; vinyl/translate, plans helper)")
async def test_mysql_out_of_range_value_keeps_its_where(backend: str) -> None:
    await Item.vinyl.create(name="small", pint=7)
    await Item.vinyl.create(name="big", pint=3_000_000_000)
    await Item.vinyl.create(name="null")
    assert await Item.vinyl.filter(pint__lt=5_000_000_000).count() == 2
    expected = await django(lambda: list(Item.objects.using(sync(backend)).filter(pint__lt=2_500_000_000).values_list("name", flat=True)))
    assert expected == ["small"]
    assert await Item.vinyl.filter(pint__lt=2_500_000_000).values_list("name", flat=True) == expected
