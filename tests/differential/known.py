"""Mismatch classes already reported (in /work/notes/diff-findings.md), not yet fixed.

The harness counts a mismatch that one of these recognizes as *known* and
does not fail on it; every other mismatch fails the run. Each entry names
its regression test (tests/differential/test_regressions.py, strict xfail
until the fix lands). This list must shrink to nothing: remove an entry
when its fix is merged and its regression test passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Known:
    name: str
    regression_test: str
    matches: Callable[[Any], bool]


def _vinyl_error(m: Any) -> tuple:
    return m.vinyl if m.vinyl[0] == "error" else ("ok", "", "", "")


def _errno(text: str) -> str | None:
    match = re.match(r".*?\((\d{4}),", text)
    return match.group(1) if match else None


def _django_error(m: Any) -> tuple:
    return m.django if m.django[0] == "error" else ("ok", "", "", "")


_TZ_LOOKUPS = ("at__date", "at__hour", "at__day", "at__month", "at__year", "at__minute", "at__week_day", "at__time",
               "since__date", "since__hour", "since__day", "since__month", "since__year", "since__minute", "since__week_day")


def _tz_sensitive(m: Any) -> bool:
    """A keyword filter on a datetime's date/hour... (Django converts to the current zone)."""
    return any(key.split("__", 1)[-1].startswith(_TZ_LOOKUPS) or key.startswith(_TZ_LOOKUPS)
               for name, args, kwargs in m.case.ops if name in ("filter", "exclude") for key, _ in kwargs)


KNOWN: list[Known] = [
    # async for / iterator(): a database error while streaming is the driver's exception.
    Known("stream-driver-error-leak", "test_stream_error_is_djangos_class",
          lambda m: m.case.terminal[0] == "iter" and _vinyl_error(m)[2].startswith("LEAK:")),
    # PostgreSQL: an int beyond 64 bits as a parameter; psycopg sends numeric, asyncpg refuses.
    Known("pg-int-beyond-int64-param", "test_int_beyond_64_bits_in_filter",
          lambda m: m.backend == "postgresql" and "out of int64 range" in _vinyl_error(m)[3]),
    # PostgreSQL: a str for an interval (DurationField) parameter: psycopg lets the server cast it, asyncpg refuses.
    Known("pg-text-param-for-typed-column", "test_duration_given_as_text_in_filter",
          lambda m: m.backend == "postgresql" and "invalid input for query argument" in _vinyl_error(m)[3]
          and "has no attribute 'days'" in _vinyl_error(m)[3]),
    # MySQL error 1690 (value out of range): Django's IntegrityError, vinyl's OperationalError.
    Known("mysql-1690-not-integrityerror", "test_mysql_out_of_range_arithmetic_is_integrityerror",
          lambda m: m.backend == "mysql" and _django_error(m)[2] == "IntegrityError"
          and _vinyl_error(m)[2] == "OperationalError" and "(1690," in _vinyl_error(m)[3]),
    # MySQL: float inf/nan in a filter: Django (the driver) refuses it; vinyl sends 'inf' as SQL text.
    Known("mysql-float-inf-in-sql", "test_mysql_infinite_float_in_filter",
          lambda m: m.backend == "mysql" and "can not be used with MySQL" in _django_error(m)[3]
          and _vinyl_error(m)[2] != "ProgrammingError"),
    # MySQL: the same error number is ProgrammingError from `await qs` and OperationalError from count().
    Known("mysql-1054-class-differs-by-terminal", "test_mysql_infinite_float_in_filter",
          lambda m: m.backend == "mysql" and "(1054," in _vinyl_error(m)[3] and _django_error(m)[2] == "ProgrammingError"),
    # A shape once accepted is not rebuilt: an invalid value raises at await instead of at filter().
    Known("validation-deferred-to-await", "test_invalid_value_raises_at_filter_after_a_valid_one",
          lambda m: m.django[0] == m.vinyl[0] == "error" and m.django[1] == "build" and m.vinyl[1] == "run"
          and m.django[2] == m.vinyl[2]),
    # A connection returned to a full pool is closed outside SQLAlchemy's greenlet (logged, not raised).
    Known("pool-overflow-close-outside-greenlet", "test_concurrent_planned_queries_log_no_pool_error",
          lambda m: m.vinyl[2] == "PoolErrorLogged" and "MissingGreenlet" in m.vinyl[3]),
    # The current time zone is compiled into a plan: a later query of the shape under another zone gets the first's rows.
    Known("tz-compiled-into-plan", "test_time_zone_is_not_compiled_into_a_plan",
          lambda m: m.django[0] == m.vinyl[0] == "ok" and _tz_sensitive(m)),
    # A value Django refuses (Decimal('Infinity'), ...) is not validated for a shape already accepted: rows come back.
    Known("validation-skipped-for-accepted-shape", "test_invalid_decimal_is_refused_after_a_valid_one",
          lambda m: m.django[0] == "error" and m.django[1] == "build" and m.vinyl[0] == "ok"),
    # PostgreSQL: a str for a BinaryField: Django's TypeError (psycopg's adapter), vinyl's DataError (asyncpg).
    Known("pg-bytes-param-given-str", "test_text_for_binary_field_in_filter",
          lambda m: m.backend == "postgresql" and _django_error(m)[2] == "TypeError"
          and "a bytes-like object is required" in _vinyl_error(m)[3]),
    # PostgreSQL: an aware datetime whose UTC value is before year 1 (year lookups near year 1 under a zone east of
    # UTC): psycopg sends it as text with its offset, asyncpg converts it to UTC and fails.
    Known("pg-datetime-before-year-1-param", "test_year_1_lookup_under_an_eastern_zone",
          lambda m: m.backend == "postgresql" and m.django[0] == "ok" and "date value out of range" in _vinyl_error(m)[3]),
    # PostgreSQL: asyncpg writes date.min / date.max (datetime too) as -infinity / infinity.
    Known("pg-date-extremes-written-as-infinity", "test_date_extremes_are_stored_as_dates",
          lambda m: m.backend == "postgresql" and m.case.write and "infinity" in repr(m.django[-1])),
    # MySQL: the same error number is another Django class in vinyl (asyncmy's errno map, not PyMySQL's as Django uses).
    Known("mysql-errno-class-differs", "test_mysql_regex_error_class",
          lambda m: m.backend == "mysql" and m.django[0] == m.vinyl[0] == "error"
          and _errno(m.django[3]) is not None and _errno(m.django[3]) == _errno(m.vinyl[3])),
    # MySQL/SQLite: iexact compiles to LIKE with the value escaped; a plan replays the raw value (_ and % match anything).
    Known("iexact-like-escaping-in-plan", "test_iexact_escaping_survives_a_plan",
          lambda m: m.backend in ("mysql", "sqlite") and m.django[0] == m.vinyl[0] == "ok"
          and any("__iexact" in key for _, _, kwargs in m.case.ops for key, _ in kwargs)),
]


def match(mismatch: Any) -> str | None:
    """The name of the known class ``mismatch`` belongs to, else None."""
    for entry in KNOWN:
        try:
            if entry.matches(mismatch):
                return entry.name
        except Exception:  # noqa: BLE001 - a predicate that cannot read this mismatch does not match
            continue
    return None
