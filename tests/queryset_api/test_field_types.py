"""Every field type of AllTypes round-trips exactly, through every path.

Paths: create/get, filter by the value, values()/values_list(), update(),
bulk_create(); plus the lookups each type is queried with.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from zoneinfo import ZoneInfo

import pytest
from django.db.models import JSONField, Value
from django.db.models.functions import Cast

from tests.testapp.models import AllTypes, UUIDKeyed

try:  # Django 6.1+: JSON null is spelled JSONNull() in lookups.
    from django.db.models import JSONNull

    JSON_NULL_LOOKUP = JSONNull()
except ImportError:  # Django 5.2: None means JSON null in an exact lookup.
    JSON_NULL_LOOKUP = None

pytestmark = pytest.mark.usefixtures("vinyl_db")

UTC = datetime.timezone.utc
PARIS = ZoneInfo("Europe/Paris")

FIRST = {
    "big": 2**62 + 7,
    "small": -32768,
    "positive": 2**31 - 1,
    "flag": True,
    "text": "multi\nline 'quoted' \"double\" 100% é ☃ %s %(x)s",
    "char": "percent % and $1",
    "decimal": decimal.Decimal("12345678.1234"),
    "floating": 1.5,
    "day": datetime.date(2024, 2, 29),
    "moment": datetime.datetime(2024, 7, 14, 23, 30, 15, 123456, tzinfo=PARIS),
    "clock": datetime.time(13, 14, 15, 654321),
    "span": datetime.timedelta(days=3, hours=4, seconds=5, microseconds=6),
    "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "data": {"a": {"b": 1, "c": [1, "x", None, True, 2.5]}, "s": "é%", "n": None},
    "blob": bytes(range(256)),
    "ip": "192.168.0.1",
    "slug": "a-slug",
    "email": "ann@example.com",
    "url": "https://example.com/a?b=c%20d",
}

SECOND = {
    "big": -(2**63),
    "small": 32767,
    "positive": 0,
    "flag": False,
    "text": "",
    "char": "",
    "decimal": decimal.Decimal("-0.0001"),
    "floating": -2.25,
    "day": datetime.date(1970, 1, 1),
    "moment": datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    "clock": datetime.time(0, 0),
    "span": datetime.timedelta(microseconds=-1),
    "uid": uuid.UUID("87654321-4321-4765-8321-876543218765"),
    "data": [1, [2, [3]], {"k": "v"}],
    "blob": b"",
    "ip": "2001:db8::1",
    "slug": "b",
    "email": "b@example.org",
    "url": "http://b.example",
}

FIELDS = list(FIRST)


def assert_same(obj_or_dict, expected: dict) -> None:
    for name, value in expected.items():
        got = obj_or_dict[name] if isinstance(obj_or_dict, dict) else getattr(obj_or_dict, name)
        if name == "blob" and got is not None:
            got = bytes(got)
        assert got == value, name
        if value is not None and name != "blob":
            assert type(got) is type(value) or isinstance(got, type(value)), (name, type(got))
        if name == "moment" and value is not None:
            assert got.utcoffset() == datetime.timedelta(0)


async def test_create_then_get_round_trips_every_field():
    for values in (FIRST, SECOND):
        obj = await AllTypes.vinyl.create(**values)
        assert_same(await AllTypes.vinyl.get(pk=obj.pk), values)


async def test_every_field_stores_sql_null():
    obj = await AllTypes.vinyl.create()
    fresh = await AllTypes.vinyl.get(pk=obj.pk)
    assert_same(fresh, {name: None for name in FIELDS})
    for name in FIELDS:
        assert await AllTypes.vinyl.filter(**{f"{name}__isnull": True}).count() == 1, name


@pytest.mark.parametrize("name", FIELDS)
async def test_filter_by_each_value_finds_its_row(name):
    await AllTypes.vinyl.create(**FIRST)
    await AllTypes.vinyl.create(**SECOND)
    for values in (FIRST, SECOND):
        found = await AllTypes.vinyl.filter(**{name: values[name]}).values_list(name, flat=True)
        assert len(found) == 1, name
        got = found[0]
        assert (bytes(got) if name == "blob" else got) == values[name]


async def test_values_and_values_list_convert_every_field():
    await AllTypes.vinyl.create(**FIRST)
    [row] = await AllTypes.vinyl.values(*FIELDS)
    assert_same(row, FIRST)
    [tup] = await AllTypes.vinyl.values_list(*FIELDS)
    assert_same(dict(zip(FIELDS, tup)), FIRST)
    [named] = await AllTypes.vinyl.values_list(*FIELDS, named=True)
    assert_same(named._asdict(), FIRST)


async def test_update_writes_every_field():
    obj = await AllTypes.vinyl.create(**FIRST)
    assert await AllTypes.vinyl.filter(pk=obj.pk).update(**SECOND) == 1
    assert_same(await AllTypes.vinyl.get(pk=obj.pk), SECOND)
    await AllTypes.vinyl.filter(pk=obj.pk).update(**{name: None for name in FIELDS})
    assert_same(await AllTypes.vinyl.get(pk=obj.pk), {name: None for name in FIELDS})


async def test_save_writes_every_field():
    obj = await AllTypes.vinyl.create(**FIRST)
    for name, value in SECOND.items():
        setattr(obj, name, value)
    await obj.save()
    assert_same(await AllTypes.vinyl.get(pk=obj.pk), SECOND)


async def test_bulk_create_round_trips_every_field():
    model = AllTypes.vinyl.model
    objs = await AllTypes.vinyl.bulk_create([model(**FIRST), model(**SECOND), model()])
    assert all(o.pk is not None for o in objs)
    rows = {o.pk: o for o in await AllTypes.vinyl.all()}
    assert_same(rows[objs[0].pk], FIRST)
    assert_same(rows[objs[1].pk], SECOND)
    assert_same(rows[objs[2].pk], {name: None for name in FIELDS})


async def test_bulk_update_round_trips_every_field():
    obj = await AllTypes.vinyl.create(**FIRST)
    other = await AllTypes.vinyl.create(**SECOND)
    for name in FIELDS:
        setattr(obj, name, SECOND[name])
        setattr(other, name, FIRST[name])
    assert await AllTypes.vinyl.bulk_update([obj, other], FIELDS) == 2
    assert_same(await AllTypes.vinyl.get(pk=obj.pk), SECOND)
    assert_same(await AllTypes.vinyl.get(pk=other.pk), FIRST)


# JSON -------------------------------------------------------------------


async def test_json_null_and_sql_null_are_different():
    sql_null = await AllTypes.vinyl.create(data=None)
    json_null = await AllTypes.vinyl.create(data=Value(None, JSONField()))
    assert (await AllTypes.vinyl.get(pk=sql_null.pk)).data is None
    assert (await AllTypes.vinyl.get(pk=json_null.pk)).data is None
    # As Django documents: an exact JSON null matches JSON null only,
    # __isnull the SQL NULL only.
    assert [o.pk for o in await AllTypes.vinyl.filter(data=JSON_NULL_LOOKUP)] == [json_null.pk]
    assert [o.pk for o in await AllTypes.vinyl.filter(data__isnull=True)] == [sql_null.pk]


async def test_json_scalars_round_trip():
    for value in ("text", 0, 1.25, True, False, [], {}, {"deep": {"er": {"est": [1, {"x": None}]}}}):
        obj = await AllTypes.vinyl.create(data=value)
        got = (await AllTypes.vinyl.get(pk=obj.pk)).data
        assert got == value and type(got) is type(value)


async def test_json_key_lookups(backend):
    one = await AllTypes.vinyl.create(data={"a": {"b": 1}, "tags": ["x", "y"], "name": "Ann", "n": None})
    two = await AllTypes.vinyl.create(data={"a": {"b": 2}, "tags": ["y"], "name": "Bob"})
    await AllTypes.vinyl.create(data=None)

    async def pks(**lookup):
        return sorted(o.pk for o in await AllTypes.vinyl.filter(**lookup))

    assert await pks(data__a__b=1) == [one.pk]
    assert await pks(data__a__b__gt=1) == [two.pk]
    assert await pks(data__name="Bob") == [two.pk]
    assert await pks(data__name__startswith="A") == [one.pk]
    assert await pks(data__name__in=["Ann", "Bob"]) == [one.pk, two.pk]
    assert await pks(data__tags__0="x") == [one.pk]
    if backend == "sqlite":
        return  # Django has no JSON contains / contained_by on SQLite
    assert await pks(data__contains={"a": {"b": 2}}) == [two.pk]
    assert await pks(data__contains={"tags": ["y"]}) == [one.pk, two.pk]
    assert await pks(data__contained_by={"a": {"b": 2}, "tags": ["y"], "name": "Bob", "z": 1}) == [two.pk]
    assert await pks(data__has_key="n") == [one.pk]
    assert await pks(data__has_keys=["a", "tags"]) == [one.pk, two.pk]
    assert await pks(data__has_any_keys=["n", "zzz"]) == [one.pk]
    assert await pks(data__n=None) == [one.pk]
    assert await pks(data__n__isnull=True) == sorted([two.pk, (await AllTypes.vinyl.get(data__isnull=True)).pk])
    assert await pks(data__a__b__in=[2, 3]) == [two.pk]
    values = await AllTypes.vinyl.filter(pk=one.pk).values_list("data__a", "data__a__b", "data__tags")
    assert values == [({"b": 1}, 1, ["x", "y"])]


async def test_json_value_in_update_and_cast():
    obj = await AllTypes.vinyl.create(data={"a": 1})
    await AllTypes.vinyl.filter(pk=obj.pk).update(data={"b": [None, "c"]})
    assert (await AllTypes.vinyl.get(pk=obj.pk)).data == {"b": [None, "c"]}
    annotated = await AllTypes.vinyl.annotate(j=Cast(Value('{"x": [1]}'), JSONField())).values_list("j", flat=True)
    assert annotated == [{"x": [1]}]


# Other lookups ------------------------------------------------------------


async def test_uuid_lookups_and_uuid_primary_keys():
    keyed = [await UUIDKeyed.vinyl.create(label=f"k{i}") for i in range(3)]
    assert all(isinstance(k.pk, uuid.UUID) for k in keyed)
    got = await UUIDKeyed.vinyl.get(pk=keyed[1].pk)
    assert got.pk == keyed[1].pk and type(got.pk) is uuid.UUID
    assert (await UUIDKeyed.vinyl.get(pk=str(keyed[2].pk))).label == "k2"
    found = await UUIDKeyed.vinyl.filter(pk__in=[keyed[0].pk, str(keyed[2].pk)]).order_by("label")
    assert [k.label for k in found] == ["k0", "k2"]
    assert await UUIDKeyed.vinyl.in_bulk([keyed[0].pk]) == {keyed[0].pk: keyed[0]}
    await AllTypes.vinyl.create(uid=FIRST["uid"])
    assert await AllTypes.vinyl.filter(uid__in=[FIRST["uid"], SECOND["uid"]]).count() == 1
    assert await AllTypes.vinyl.filter(uid__startswith="1234").count() == 1
    assert await AllTypes.vinyl.filter(uid__icontains="5678-1234").count() == 1


async def test_in_range_isnull_and_comparisons():
    first = await AllTypes.vinyl.create(**FIRST)
    second = await AllTypes.vinyl.create(**SECOND)
    empty = await AllTypes.vinyl.create()

    async def pks(**lookup):
        return sorted(o.pk for o in await AllTypes.vinyl.filter(**lookup))

    assert await pks(big__in=[FIRST["big"], 5]) == [first.pk]
    assert await pks(text__in=[FIRST["text"], SECOND["text"]]) == [first.pk, second.pk]
    assert await pks(ip__in=["2001:db8::1"]) == [second.pk]
    assert await pks(day__range=(datetime.date(2024, 1, 1), datetime.date(2024, 12, 31))) == [first.pk]
    assert await pks(moment__range=(datetime.datetime(2024, 7, 14, tzinfo=UTC), datetime.datetime(2024, 7, 15, tzinfo=UTC))) == [first.pk]
    assert await pks(decimal__gt=decimal.Decimal("0")) == [first.pk]
    assert await pks(span__lt=datetime.timedelta(0)) == [second.pk]
    assert await pks(clock__gte=datetime.time(12)) == [first.pk]
    assert await pks(floating__lte=0) == [second.pk]
    assert await pks(flag=False) == [second.pk]
    assert await pks(flag__isnull=True) == [empty.pk]
    assert await pks(blob__isnull=False) == [first.pk, second.pk]
    assert await pks(char__contains="%") == [first.pk]
    assert await pks(char__icontains="$1") == [first.pk]
    assert await pks(text__endswith="%(x)s") == [first.pk]


async def test_regex_and_iregex():
    await AllTypes.vinyl.create(char="Alpha-42")
    await AllTypes.vinyl.create(char="beta")
    assert await AllTypes.vinyl.filter(char__regex=r"^[A-Z][a-z]+-\d+$").values_list("char", flat=True) == ["Alpha-42"]
    assert await AllTypes.vinyl.filter(char__regex=r"^alpha").count() == 0
    assert await AllTypes.vinyl.filter(char__iregex=r"^ALPHA").count() == 1
    assert await AllTypes.vinyl.filter(char__iregex=r"^(alpha|BETA)").count() == 2


async def test_date_and_time_part_lookups():
    first = await AllTypes.vinyl.create(**FIRST)  # 2024-07-14 21:30:15.123456 UTC
    second = await AllTypes.vinyl.create(**SECOND)

    async def pks(**lookup):
        return sorted(o.pk for o in await AllTypes.vinyl.filter(**lookup))

    assert await pks(day__year=2024) == [first.pk]
    assert await pks(day__month=2, day__day=29) == [first.pk]
    assert await pks(day__week_day=5) == [first.pk, second.pk]  # both Thursdays
    assert await pks(day__quarter=1) == [first.pk, second.pk]
    assert await pks(day__quarter=2) == []
    assert await pks(moment__year=2024) == [first.pk]
    assert await pks(moment__year__gte=2000) == [first.pk]
    assert await pks(moment__date=datetime.date(2024, 7, 14)) == [first.pk]
    assert await pks(moment__hour=21, moment__minute=30, moment__second=15) == [first.pk]
    assert await pks(moment__iso_year=1999) == [second.pk]
    assert await pks(moment__time=datetime.time(21, 30, 15, 123456)) == [first.pk]
    assert await pks(clock__hour=13) == [first.pk]
    assert await pks(moment__week=28) == [first.pk]
