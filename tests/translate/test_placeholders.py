"""Placeholder rewriting for asyncpg: exact SQL, no database."""

import datetime
import decimal
import uuid

from vinyl.translate.placeholders import format_to_numeric_dollar


def test_placeholders_are_numbered_and_typed_by_value():
    sql = format_to_numeric_dollar(
        "SELECT %s, %s, %s, %s WHERE a = %s AND b = %s",
        (1, True, 1.5, decimal.Decimal("2"), "x", None),
    )
    assert sql == "SELECT $1::int4, $2::boolean, $3::float8, $4::numeric WHERE a = $5 AND b = $6"


def test_big_integers_are_int8():
    assert format_to_numeric_dollar("%s %s", (2**31, -(2**31) - 1)) == "$1::int8 $2::int8"
    assert format_to_numeric_dollar("%s", (2**31 - 1,)) == "$1::int4"


def test_temporal_and_binary_values_are_cast():
    aware = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    sql = format_to_numeric_dollar(
        "%s %s %s %s %s %s %s",
        (aware, aware.replace(tzinfo=None), aware.date(), datetime.time(1), datetime.timedelta(1), uuid.uuid4(), b"x"),
    )
    assert sql == "$1::timestamptz $2::timestamp $3::date $4::time $5::interval $6::uuid $7::bytea"


def test_literal_percent_survives_with_and_without_params():
    assert format_to_numeric_dollar("x LIKE '%%a' AND y = %s", ("b",)) == "x LIKE '%a' AND y = $1"
    assert format_to_numeric_dollar("x LIKE '%%a'", ()) == "x LIKE '%a'"
    assert format_to_numeric_dollar("SELECT 1", None) == "SELECT 1"


def test_named_placeholders_are_numbered_in_order_of_use():
    from vinyl.translate.placeholders import pyformat_to_numeric_dollar

    sql, params = pyformat_to_numeric_dollar(
        "SELECT %(b)s, %(a)s WHERE x = %(b)s AND y LIKE '%%z'", {"a": 1, "b": "t", "unused": 3}
    )
    assert sql == "SELECT $1, $2::int4 WHERE x = $1 AND y LIKE '%z'"
    assert params == ("t", 1)
