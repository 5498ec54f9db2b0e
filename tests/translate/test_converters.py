"""Rows converted by generated code are the rows Django's apply_converters gives: no database."""

import datetime
import uuid
import zoneinfo

import pytest
from django.db import connections
from django.test import override_settings

from tests.testapp.models import AllTypes
from vinyl.translate.converters import aware_epoch, rows_converter

NAIVE = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)
COLUMNS = ("id", "moment", "flag", "uid", "text")


def _compiler(alias: str, *columns: str):
    qs = AllTypes.objects.using(alias).values_list(*columns)
    compiler = qs.query.get_compiler(using=alias)
    compiler.setup_query()
    fields = [s[0] for s in compiler.select[0 : compiler.col_count]]
    return compiler, compiler.get_converters(fields)


def _both(compiler, converters, rows, width=None):
    mine = rows_converter(converters, width, compiler.connection)(rows)
    trimmed = [row[:width] for row in rows] if width is not None else rows
    theirs = [tuple(row) for row in compiler.apply_converters(trimmed, converters)]
    return [tuple(row) for row in mine], theirs


ROWS = [
    (1, NAIVE, 1, uuid.UUID(int=7).hex, "a"),
    (2, None, 0, None, None),
    (3, datetime.datetime(1, 1, 1), None, uuid.UUID(int=8).hex, "b"),
]


@pytest.mark.parametrize("alias", ["sync_mysql", "sync_postgresql", "sync_sqlite"])
def test_rows_are_what_django_converts(alias):
    compiler, converters = _compiler(alias, *COLUMNS)
    rows = ROWS if alias == "sync_mysql" else [(r[0], r[1] and r[1].replace(tzinfo=datetime.timezone.utc), *r[2:]) for r in ROWS]
    if alias == "sync_sqlite":
        rows = [(r[0], r[1] and str(r[1].replace(tzinfo=None)), r[2], r[3], r[4]) for r in ROWS]
    mine, theirs = _both(compiler, converters, rows)
    assert mine == theirs
    assert [[type(v) for v in row] for row in mine] == [[type(v) for v in row] for row in theirs]


def test_mysql_datetimes_are_aware_in_the_connection_zone():
    compiler, converters = _compiler("sync_mysql", "id", "moment")
    conn = connections["sync_mysql"]
    zone = zoneinfo.ZoneInfo("Asia/Kathmandu")
    saved = conn.__dict__.get("timezone")
    conn.__dict__["timezone"] = zone
    try:
        mine, theirs = _both(compiler, converters, [(1, NAIVE)])
    finally:
        conn.__dict__.pop("timezone")
        if saved is not None:
            conn.__dict__["timezone"] = saved
    assert mine == theirs and mine[0][1].tzinfo is zone and mine[0][1].microsecond == 123456


def test_mysql_datetimes_stay_naive_without_use_tz():
    with override_settings(USE_TZ=False):
        compiler, converters = _compiler("sync_mysql", "id", "moment")
        mine, theirs = _both(compiler, converters, [(1, NAIVE)])
    assert mine == theirs == [(1, NAIVE)]


@pytest.mark.parametrize("value", [NAIVE.replace(tzinfo=datetime.timezone.utc), "0000-00-00 00:00:00"])
def test_values_django_refuses_raise_djangos_error(value):
    compiler, converters = _compiler("sync_mysql", "id", "moment")
    with pytest.raises(Exception) as django_error:
        list(compiler.apply_converters([(1, value)], converters))
    with pytest.raises(type(django_error.value)) as mine:
        rows_converter(converters, None, compiler.connection)([(1, value)])
    assert str(mine.value) == str(django_error.value)


def test_columns_beyond_the_width_are_dropped():
    compiler, converters = _compiler("sync_mysql", *COLUMNS)
    mine, theirs = _both(compiler, converters, [(*row, "order by column") for row in ROWS], width=len(COLUMNS))
    assert mine == theirs and all(len(row) == len(COLUMNS) for row in mine)


def test_no_converters_leaves_rows_alone():
    rows = [(1, "a", "extra")]
    assert rows_converter({}, None, None)(rows) is rows
    assert rows_converter({}, 2, None)(rows) == [(1, "a")]


# MySQL's datetimes are made aware by generated code that builds them with
# date arithmetic (aware epoch + (value - naive epoch)), not replace(): the
# very values Django's converter gives, fold 1 and subclasses through it.
AWARE_CASES = [
    NAIVE,
    datetime.datetime(2024, 1, 1),  # midnight, no microseconds
    datetime.datetime(1, 1, 1),  # the first and last a DATETIME(6) holds
    datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime.datetime(2021, 11, 7, 1, 30, 0, 1),  # ambiguous in New York
    datetime.datetime(2021, 11, 7, 1, 30, 0, 1, fold=1),
    datetime.datetime(2021, 3, 14, 2, 30),  # missing in New York
    datetime.datetime(2024, 2, 29, 23, 59, 59, 999999, fold=1),
]


class _Moment(datetime.datetime):
    pass


def test_a_datetime_subclass_stays_djangos():
    compiler, converters = _compiler("sync_mysql", "id", "moment")
    mine, theirs = _both(compiler, converters, [(1, _Moment(2024, 5, 6, 7, 8, 9, 10))])
    assert mine == theirs and type(mine[0][1]) is type(theirs[0][1]) and mine[0][1].tzinfo is theirs[0][1].tzinfo


@pytest.mark.parametrize("zone", [datetime.timezone.utc, zoneinfo.ZoneInfo("America/New_York"), zoneinfo.ZoneInfo("Asia/Kathmandu")])
def test_mysql_aware_datetimes_are_djangos_to_the_field_and_zone_object(zone):
    compiler, converters = _compiler("sync_mysql", "id", "moment")
    conn = connections["sync_mysql"]
    saved = conn.__dict__.get("timezone")
    conn.__dict__["timezone"] = zone
    try:
        rows = [(i, value) for i, value in enumerate(AWARE_CASES)] + [(99, None)]
        mine, theirs = _both(compiler, converters, rows)
    finally:
        conn.__dict__.pop("timezone")
        if saved is not None:
            conn.__dict__["timezone"] = saved
    assert mine == theirs
    for (_, got), (_, want) in zip(mine, theirs):
        if want is None:
            assert got is None
            continue
        assert type(got) is type(want) is datetime.datetime
        assert got.tzinfo is want.tzinfo is zone
        assert (got.fold, repr(got), got.utcoffset()) == (want.fold, repr(want), want.utcoffset())


def test_instances_built_with_inlined_converters_are_djangos():
    # The generated loop converts each value as it stores it (no converted
    # copy of the row): the instance Django's converters and from_db give.
    from vinyl.translate.converters import value_expressions
    from vinyl.translate.instances import rows_maker

    names = ["id", "flag", "text", "moment", "uid"]  # in field order, as a query selects them
    compiler, converters = _compiler("sync_mysql", *names)
    rows = [(r[0], r[2], r[4], r[1], r[3]) for r in ROWS]
    converted = value_expressions(converters, compiler.connection, "row")
    mine = rows_maker(AllTypes, names, 0, None, converted=converted)("sync_mysql", rows)
    theirs = [AllTypes.from_db("sync_mysql", names, tuple(row)) for row in compiler.apply_converters(rows, converters)]
    assert len(mine) == len(theirs) == len(ROWS)
    for got, want in zip(mine, theirs):
        assert [(k, v, type(v)) for k, v in got.__dict__.items() if k != "_state"] == [
            (k, v, type(v)) for k, v in want.__dict__.items() if k != "_state"
        ]
        assert got.moment is None or got.moment.tzinfo is want.moment.tzinfo


def test_mysql_datetimes_go_by_type_only_with_asyncmys_own_decoders(monkeypatch):
    # (A decoder of the caller's may give aware values or fold 1: Django's
    # checks then run on each value, see tests/backends/test_mysql_datetimes.py.)
    import asyncmy
    from asyncmy.constants import FIELD_TYPE

    conn = connections["vinyl_mysql"]
    assert conn.vinyl_driver_datetimes_naive
    monkeypatch.setitem(asyncmy.converters.conversions, FIELD_TYPE.TIMESTAMP, lambda value: value)
    assert not conn.vinyl_driver_datetimes_naive


def test_the_aware_epoch_is_made_once_per_zone_object():
    # Each batch of MySQL datetimes needs the epoch in the connection's zone:
    # it is made once for the zone (replace() parses its keyword), and made
    # again for another zone object, even an equal one (its name differs).
    named = datetime.timezone(datetime.timedelta(0), "Z0")
    assert named == datetime.timezone.utc
    first = aware_epoch(datetime.timezone.utc)
    assert aware_epoch(datetime.timezone.utc) is first
    assert first == datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc) and first.tzinfo is datetime.timezone.utc
    other = aware_epoch(named)
    assert other.tzinfo is named and other.tzname() == "Z0"
    assert aware_epoch(datetime.timezone.utc).tzinfo is datetime.timezone.utc


def test_mysql_datetimes_follow_the_connection_zone_from_batch_to_batch():
    # One converter, the connection's zone changed between batches (equal
    # zones of other names among them): each batch carries its zone object.
    compiler, converters = _compiler("sync_mysql", "id", "moment")
    convert = rows_converter(converters, None, compiler.connection)
    conn = connections["sync_mysql"]
    saved = conn.__dict__.get("timezone")
    zones = [datetime.timezone.utc, datetime.timezone(datetime.timedelta(0), "Z0"), zoneinfo.ZoneInfo("Asia/Kathmandu"), datetime.timezone.utc]
    try:
        for zone in zones:
            conn.__dict__["timezone"] = zone
            (row,) = convert([(1, NAIVE)])
            (want,) = compiler.apply_converters([(1, NAIVE)], converters)
            assert row[1] == want[1] and row[1].tzinfo is want[1].tzinfo is zone
            assert row[1].tzname() == want[1].tzname()
    finally:
        conn.__dict__.pop("timezone")
        if saved is not None:
            conn.__dict__["timezone"] = saved
