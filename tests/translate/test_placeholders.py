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
    assert sql == "SELECT $1::int4, $2::boolean, $3::float8::text::numeric, $4::numeric WHERE a = $5 AND b = $6"


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


def test_a_plans_statement_is_converted_as_at_every_call():
    # The converted SQL is kept per kind of parameters; a value whose cast
    # differs from the kept one (an int past int4, -0.0, a naive datetime)
    # gets its own conversion, as format_to_numeric_dollar gives it.
    from vinyl.translate.placeholders import NumberedStatement

    sql = "INSERT INTO t (a, b, c, d) VALUES (%s, %s, %s, %s) RETURNING '%%'"
    statement = NumberedStatement(sql)
    aware = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    calls = [
        (1, "x", 1.5, aware),
        (2, "y", 2.5, aware),
        (2**31, "y", 2.5, aware),
        (2**63, None, -0.0, aware.replace(tzinfo=None)),
        (3, "z", -0.0, aware),
        (4, "z", 0.0, aware),
        (True, b"x", decimal.Decimal(1), aware.date()),
        (-(2**31) - 1, "w", 1.0, aware),
        (5, "v", 1.0, aware),
        # int4's bounds, each side, after an int4 was kept (the kept
        # placeholder is reused for an int4 without recomputing it).
        (2**31 - 1, "v", 1.0, aware),
        (-(2**31), "v", 1.0, aware),
        (2**31, "v", 1.0, aware),
        (-(2**31) - 1, "v", 1.0, aware),
        (0, "v", 1.0, aware),
    ]
    for params in calls + calls:
        assert statement.convert(params) == format_to_numeric_dollar(sql, params), params


def test_equal_cast_constants_of_a_grouped_statement_share_one_placeholder():
    from vinyl.translate.placeholders import equal_constants, format_sharing_constants

    sql = "SELECT %s FROM t GROUP BY (a - %s), b HAVING a >= (a - %s) AND c = %s AND d = %s AND e = %s AND f = %s"
    params = (1, 0, 0, "x", "x", decimal.Decimal("1.5"), decimal.Decimal("1.50"))
    firsts = equal_constants(sql, params)
    # Text shares nothing (its type comes from where it stands); 1.5 and 1.50 are other literals.
    assert firsts == (0, 1, 1, 3, 4, 5, 6)
    assert format_sharing_constants(sql, params, firsts) == (
        "SELECT $1::int4 FROM t GROUP BY (a - $2::int4), b HAVING a >= (a - $2::int4) AND c = $3 AND d = $4"
        " AND e = $5::numeric AND f = $6::numeric",
        (1, 0, "x", "x", decimal.Decimal("1.5"), decimal.Decimal("1.50")),
    )
    # The same values without GROUP BY, or of other types (0 and 0.0, 1 and True), share nothing.
    assert equal_constants(sql.replace("GROUP BY", "ORDER BY"), params) is None
    assert equal_constants(sql, (1, 0, 0.0, "x", "y", True, 2)) is None


def test_text_shares_a_placeholder_only_within_a_grouped_expression_written_again():
    from vinyl.translate.placeholders import equal_constants, format_sharing_constants

    sql = ('SELECT COUNT(*) FROM t WHERE "t"."b" = %s GROUP BY "t"."a", CONCAT("t"."c", %s)'
           ' HAVING ("t"."n" > CONCAT("t"."c", %s) OR COUNT(*) > %s) ORDER BY "t"."a"')
    firsts = equal_constants(sql, ("x", "x", "x", 2))
    # The WHERE's "x" stands elsewhere: its own placeholder.
    assert firsts == (0, 1, 1, 3)
    assert format_sharing_constants(sql, ("x", "x", "x", 2), firsts)[0] == (
        'SELECT COUNT(*) FROM t WHERE "t"."b" = $1 GROUP BY "t"."a", CONCAT("t"."c", $2)'
        ' HAVING ("t"."n" > CONCAT("t"."c", $2) OR COUNT(*) > $3::int4) ORDER BY "t"."a"'
    )
    # Another value, or the same text without a GROUP BY around it: nothing shared.
    assert equal_constants(sql, ("x", "x", "y", 2)) is None
    inner = 'SELECT * FROM t WHERE "t"."a" IN (SELECT U0."a" FROM u U0 GROUP BY LOWER(%s), U0."a" HAVING MAX(U0."a") = LOWER(%s))'
    assert equal_constants(inner, ("x", "x")) is None  # (no column in the grouped expression)
