"""Values through the generated row loops, compared with Django's sync ORM value by value and type by type.

The harness's ``norm`` compares values (a ``memoryview`` and ``bytes`` of the
same bytes are one value there, an aware datetime is its ISO text). Here each
value is compared with its exact type, its time zone's name and its fold, on
every path that builds rows with converters inlined or not: plain instances,
select_related (with only()/defer()), annotations and extra() columns,
values()/values_list() of every style, streams (``async for``, iterator()) and
prefetch_related; with the MySQL connection's time zone set (DATABASES
TIME_ZONE) as well as UTC.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.db.models import F, Prefetch, Value
from django.db.models.functions import Coalesce

from tests.diffapp.models import Item, Owner, Premium, Profile, Tag
from tests.differential.compare import classify

pytestmark = pytest.mark.usefixtures("vinyl_db")

UTC = datetime.timezone.utc
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")

MOMENTS = [
    None,
    datetime.datetime(2024, 3, 31, 0, 59, 59, 999999, tzinfo=UTC),  # before Paris springs forward
    datetime.datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # after
    datetime.datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # Paris 02:30, first time (fold 0)
    datetime.datetime(2024, 10, 27, 1, 30, tzinfo=UTC),  # Paris 02:30, second time (fold 1)
    datetime.datetime(2024, 11, 3, 5, 30, 0, 123456, tzinfo=UTC),  # New York 01:30, first
    datetime.datetime(2024, 11, 3, 6, 30, tzinfo=UTC),  # New York 01:30, second
    datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime.datetime(1, 1, 2, tzinfo=UTC),
    datetime.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
]
DECIMALS = [None, decimal.Decimal("0"), decimal.Decimal("-0.001"), decimal.Decimal("1.500"), decimal.Decimal("999999999.999"),
            decimal.Decimal("-999999999.999"), decimal.Decimal("12.3")]
JSONS = [None, {"a": 1}, [1, "x", None], "str", 5, 1.5, True, False, {}, [], {"é": {"n": [1, 2.5]}}, {"a": None}]
SPANS = [None, datetime.timedelta(0), datetime.timedelta(microseconds=1), datetime.timedelta(seconds=-60),
         datetime.timedelta(days=3, seconds=5, microseconds=7), datetime.timedelta(days=-1, microseconds=5)]
BLOBS = [None, b"", b"\x00", bytes(range(256)), b"ab"]
UUIDS = [None, uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID("12345678-1234-5678-1234-567812345678")]
CLOCKS = [None, datetime.time(0), datetime.time(23, 59, 59, 999999), datetime.time(12, 30, 0, 5)]
DAYS = [None, datetime.date(1, 1, 1), datetime.date(9999, 12, 31), datetime.date(2024, 2, 29)]
FLOATS = [None, 0.0, -0.0, 1e300, -1e-300, 0.1, 2.5]


def strict(x: Any, seen: tuple = ()) -> Any:
    """``x`` with its exact type, and for datetimes their zone's name and fold; an instance met again on the
    way down (a prefetched object's cache of its parent) by its model and key only."""
    from django.db.models import Model

    if isinstance(x, Model):
        if any(x is s for s in seen):
            return ("again", x._meta.label, x.pk)
        seen = seen + (x,)
        deferred = x.get_deferred_fields()
        values = tuple((k, strict(v, seen)) for k, v in sorted(x.__dict__.items()) if k != "_state" and not k.startswith("_prefetched"))
        cache = tuple((k, strict(v, seen)) for k, v in sorted(x._state.fields_cache.items()))
        prefetched = tuple((k, strict(list(v), seen)) for k, v in sorted(getattr(x, "_prefetched_objects_cache", {}).items()))
        state = tuple((k, v if k != "fetch_mode" else type(v).__name__) for k, v in sorted(vars(x._state).items())
                      if k not in ("db", "fields_cache"))
        return (type(x)._meta.label, state, x._state.db is not None, tuple(sorted(deferred)), values, cache, prefetched)
    if isinstance(x, datetime.datetime):
        return ("datetime", x.isoformat(), x.fold, str(x.tzinfo), x.tzinfo.utcoffset(x) if x.tzinfo else None)
    if isinstance(x, float):
        return ("float", repr(x))
    if isinstance(x, decimal.Decimal):
        return ("Decimal", str(x))
    if isinstance(x, dict):
        return ("dict", tuple((k, strict(v, seen)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        name = type(x).__name__ if type(x) in (list, tuple) else "namedtuple:" + ",".join(x._fields)
        return (name, tuple(strict(i, seen) for i in x))
    if isinstance(x, memoryview):
        return ("memoryview", bytes(x))
    return (type(x).__name__, x)


async def django(fn: Callable[[], Any]) -> Any:
    def run() -> Any:
        try:
            return strict(fn())
        except Exception as exc:  # noqa: BLE001 - the class is the answer compared
            return ("raised", classify(exc, oracle=True))

    return await sync_to_async(run)()


async def mine(coro: Any) -> Any:
    try:
        return strict(await coro)
    except Exception as exc:  # noqa: BLE001
        return ("raised", classify(exc))


async def stream(qs: Any) -> list:
    return [x async for x in qs]


async def stream_chunks(qs: Any, n: int) -> list:
    return [x async for x in qs.iterator(chunk_size=n)]


def _at(i: int, pool: list) -> Any:
    return pool[i % len(pool)]


def _fill(alias: str) -> None:
    owners = []
    for i in range(6):
        owners.append(Owner.objects.using(alias).create(name=f"o{i}", age=None if i % 3 == 0 else i, joined=_at(i, DAYS)))
    for i, pk in enumerate((owners[1].pk, owners[4].pk)):
        Premium(owner_ptr_id=pk, level=i, since=_at(i + 3, MOMENTS)).save_base(using=alias, raw=True, force_insert=True)
    Profile.objects.using(alias).create(owner=owners[1], bio="b", score=1.5)
    Profile.objects.using(alias).create(owner=owners[2], bio="", score=None)
    tags = [Tag.objects.using(alias).create(name=f"t{i}", weight=i) for i in range(3)]
    n = max(len(MOMENTS), len(JSONS), len(DECIMALS))
    for i in range(n):
        item = Item.objects.using(alias).create(
            name=f"i{i:02d}", text=None if i % 4 == 0 else "x", dec=_at(i, DECIMALS), flt=_at(i, FLOATS), flag=bool(i % 2),
            maybe=[None, True, False][i % 3], day=_at(i, DAYS), at=_at(i, MOMENTS), clock=_at(i, CLOCKS), span=_at(i, SPANS),
            uid=_at(i, UUIDS), data=_at(i, JSONS), blob=_at(i, BLOBS), ip=[None, "::1", "10.0.0.2"][i % 3],
            owner=None if i % 5 == 0 else owners[i % 6], small=i - 3, big=None if i % 3 else 2**40 + i,
        )
        item.tags.set(tags[: i % 4])


#: (name, Django's QuerySet from a manager, vinyl's evaluation of the same chain)
def _chains(o: Any) -> list[tuple[str, Callable[[Any], Any]]]:
    return [
        ("plain", lambda m: m.order_by("pk")),
        ("only", lambda m: m.only("at", "dec", "data").order_by("pk")),
        ("defer", lambda m: m.defer("at", "blob").order_by("pk")),
        ("select_related", lambda m: m.select_related("owner__premium", "owner__profile").order_by("pk")),
        ("select_related_only", lambda m: m.select_related("owner__premium").only("at", "span", "owner__name", "owner__premium__since").order_by("pk")),
        ("select_related_defer", lambda m: m.select_related("owner").defer("data", "owner__joined").order_by("pk")),
        ("annotate", lambda m: m.annotate(a=F("at"), d=F("dec"), j=F("data"), u=F("uid"), s=F("span"), b=F("blob")).order_by("pk")),
        ("annotate_related", lambda m: m.select_related("owner").annotate(since=F("owner__premium__since"), oj=F("owner__joined")).order_by("pk")),
        ("annotate_coalesce", lambda m: m.annotate(c=Coalesce("at", Value(datetime.datetime(2000, 1, 1, tzinfo=UTC)))).order_by("pk")),
        ("extra", lambda m: m.extra(select={"ex_at": "at", "ex_flag": "flag"}).order_by("pk")),
        ("extra_only", lambda m: m.extra(select={"ex_at": "at"}).only("name").order_by("pk")),
        ("key", lambda m: m.annotate(k=F("data__a"), kn=F("data__é__n")).order_by("pk")),
    ]


VALUE_FIELDS = ("id", "at", "dec", "flt", "flag", "maybe", "day", "clock", "span", "uid", "data", "blob", "ip",
                "owner__premium__since", "owner__joined", "data__a")


def _values(o: Any) -> list[tuple[str, Callable[[Any], Any]]]:
    return [
        ("values", lambda m: m.values(*VALUE_FIELDS).order_by("pk")),
        ("values_list", lambda m: m.values_list(*VALUE_FIELDS).order_by("pk")),
        ("named", lambda m: m.values_list(*VALUE_FIELDS, named=True).order_by("pk")),
        ("flat_at", lambda m: m.values_list("at", flat=True).order_by("pk")),
        ("flat_since", lambda m: m.values_list("owner__premium__since", flat=True).order_by("pk")),
        ("values_annotate", lambda m: m.annotate(a=F("at")).values("a", "dec", "blob").order_by("pk")),
        ("values_list_annotate", lambda m: m.annotate(a=F("at")).values_list("a", "span", "uid").order_by("pk")),
        ("values_extra", lambda m: m.extra(select={"ex_at": "at"}).values("ex_at", "at").order_by("pk")),
        ("values_list_extra", lambda m: m.extra(select={"ex_at": "at"}).values_list("ex_at", "at", "data").order_by("pk")),
        ("dates", lambda m: m.datetimes("at", "hour")),
    ]


async def _compare(backend: str, chains: list, model: Any = Item) -> list[str]:
    alias = settings.SYNC_ALIAS[backend]
    diffs = []
    for name, chain in chains:
        theirs = await django(lambda: list(chain(model.objects.using(alias))))
        for how, run in (("await", lambda qs: qs), ("async for", stream), ("iterator(2)", lambda qs: stream_chunks(qs, 2))):
            got = await mine(run(chain(model.vinyl.all())))
            if got != theirs or got[:2] == ("raised", "RecursionError"):
                diffs.append(f"{name} ({how}): {_first(theirs, got)}")
    return diffs


def _first(a: Any, b: Any, where: str = "") -> str:
    if type(a) is tuple and type(b) is tuple and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first(x, y, f"{where}[{i}]")
    return f"{where}: Django {a!r:.300} != vinyl {b!r:.300}"


async def _fill_both(backend: str) -> None:
    await sync_to_async(_fill)(settings.SYNC_ALIAS[backend])


async def test_instances_and_values_are_djangos_type_by_type(backend: str) -> None:
    await _fill_both(backend)
    diffs = await _compare(backend, _chains(None)) + await _compare(backend, _values(None))
    assert not diffs, "\n".join(diffs)


async def test_prefetched_values_are_djangos_type_by_type(backend: str) -> None:
    await _fill_both(backend)
    chains = [
        ("owner_items", lambda m: m.prefetch_related("items").order_by("pk")),
        ("owner_items_only", lambda m: m.prefetch_related(Prefetch("items", Item.objects.only("at", "data", "owner").order_by("pk"))).order_by("pk")),
        ("owner_items_annotated", lambda m: m.prefetch_related(Prefetch("items", Item.objects.annotate(a=F("at")).order_by("pk"), to_attr="its")).order_by("pk")),
        ("owner_items_related", lambda m: m.prefetch_related(Prefetch("items", Item.objects.select_related("owner__premium").order_by("pk"))).order_by("pk")),
    ]
    diffs = await _compare(backend, chains, Owner)
    tag_chains = [
        ("tag_items", lambda m: m.prefetch_related("items").order_by("pk")),
        ("tag_items_owner", lambda m: m.prefetch_related("items__owner").order_by("pk")),
        ("tag_items_defer", lambda m: m.prefetch_related(Prefetch("items", Item.objects.defer("blob", "at").order_by("pk"))).order_by("pk")),
    ]
    diffs += await _compare(backend, tag_chains, Tag)
    item_chains = [
        ("item_owner", lambda m: m.prefetch_related("owner", "tags").order_by("pk")),
        ("item_owner_premium", lambda m: m.prefetch_related("owner__premium").order_by("pk")),
    ]
    diffs += await _compare(backend, item_chains, Item)
    assert not diffs, "\n".join(diffs)


@pytest.mark.backends("mysql", reason="only MySQL's connection has a time zone of its own for naive DATETIME columns (DATABASES TIME_ZONE)")
@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Asia/Kathmandu"])
async def test_mysql_connection_zone_values_are_djangos(backend: str, zone: str) -> None:
    aliases = (settings.SYNC_ALIAS[backend], "vinyl_default")

    def set_zone(value: str | None) -> None:
        for alias in aliases:
            connections.settings[alias]["TIME_ZONE"] = value  # None: Django's default, the connection in UTC
            conn = connections[alias]
            conn.__dict__.pop("timezone", None)
            conn.__dict__.pop("timezone_name", None)

    await sync_to_async(set_zone)(zone)
    set_zone(zone)
    try:
        await _fill_both(backend)
        diffs = await _compare(backend, _chains(None)) + await _compare(backend, _values(None))
        diffs += await _compare(backend, [("owner_items", lambda m: m.prefetch_related("items").order_by("pk"))], Owner)
    finally:
        await sync_to_async(set_zone)(None)
        set_zone(None)
    assert not diffs, "\n".join(diffs)


async def test_aggregates_and_expressions_are_djangos_type_by_type(backend: str) -> None:
    from django.db.models import Avg, Count, DurationField, ExpressionWrapper, Max, Min, Sum
    from django.db.models.functions import Cast, TruncDay, TruncHour

    await _fill_both(backend)
    alias = settings.SYNC_ALIAS[backend]
    aggregates = {
        "s_span": Sum("span"), "a_span": Avg("span"), "mx_span": Max("span"), "s_dec": Sum("dec"), "a_dec": Avg("dec"),
        "mx_at": Max("at"), "mn_at": Min("at"), "mn_day": Min("day"), "mx_clock": Max("clock"), "a_int": Avg("small"),
        "s_big": Sum("big"), "mx_uid": Max("uid"), "n": Count("data"), "s_flt": Sum("flt"),
    }
    for name, agg in aggregates.items():
        theirs = await django(lambda: Item.objects.using(alias).aggregate(x=agg))
        got = await mine(Item.vinyl.aggregate(x=agg))
        assert got == theirs, (name, theirs, got)
    chains = [
        ("span_sum", lambda m: m.annotate(x=F("span") + F("span")).order_by("pk")),
        ("at_minus", lambda m: m.annotate(x=ExpressionWrapper(F("at") - F("owner__premium__since"), output_field=DurationField())).order_by("pk")),
        ("at_plus_span", lambda m: m.annotate(x=F("at") + F("span")).order_by("pk")),
        ("trunc", lambda m: m.annotate(x=TruncHour("at"), y=TruncDay("at")).order_by("pk")),
        ("cast", lambda m: m.annotate(x=Cast("dec", output_field=models_float()), y=Cast("small", output_field=models_dec())).order_by("pk")),
        ("grouped", lambda m: m.values("owner").annotate(s=Sum("span"), a=Avg("dec"), mx=Max("at")).order_by("owner")),
        ("grouped_list", lambda m: m.values_list("owner").annotate(s=Sum("span"), mx=Max("at")).order_by("owner")),
    ]
    diffs = await _compare(backend, chains)
    assert not diffs, "\n".join(diffs)


def models_float() -> Any:
    from django.db.models import FloatField

    return FloatField()


def models_dec() -> Any:
    from django.db.models import DecimalField

    return DecimalField(max_digits=10, decimal_places=2)
