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


_TZ_LOOKUPS = ("__date", "__hour", "__day", "__month", "__year", "__minute", "__week_day", "__time")


def _excludes_across_relation_by_zone(m: Any) -> bool:
    """exclude() with a time-zone dependent lookup across a multi-valued relation (items__at__date...)."""
    return any(name == "exclude" and key.split("__")[0] in ("items", "tags") and any(t in key for t in _TZ_LOOKUPS)
               for name, args, kwargs in m.case.ops for key, _ in kwargs)


KNOWN: list[Known] = [
    # MySQL/SQLite: a plan of ip__exact made from an IPv4 address replays an IPv6 one raw; Django normalizes it.
    Known("ip-normalized-plan-replays-raw", "test_an_ipv6_value_django_normalizes_is_not_replayed_raw",
          lambda m: m.backend != "postgresql" and not m.case.write and m.django[0] == m.vinyl[0] == "ok"
          and any(key.split("__")[0] == "ip" and ":" in str(value) for _, _, kwargs in m.case.ops for key, value in kwargs)),
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
