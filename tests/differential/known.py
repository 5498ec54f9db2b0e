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
