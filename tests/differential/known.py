"""Mismatch classes already reported (in /work/notes/diff-findings.md), not yet fixed.

The harness counts a mismatch that one of these recognizes as *known* and
does not fail on it; every other mismatch fails the run. Each entry names
its regression test (tests/differential/test_regressions.py, strict xfail
until the fix lands). This list must shrink to nothing: remove an entry
when its fix is merged and its regression test passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Known:
    name: str
    regression_test: str
    matches: Callable[[Any], bool]


def _vinyl_error(m: Any) -> tuple:
    return m.vinyl if m.vinyl[0] == "error" else ("ok", "", "", "")


def _django_error(m: Any) -> tuple:
    return m.django if m.django[0] == "error" else ("ok", "", "", "")


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
