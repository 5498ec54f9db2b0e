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
    # (pg-in-list-array-evaluated-after-an-overflow, seed 3028 shape 85, was fixed by sending integer IN lists as a
    # binary array parameter: see test_an_in_list_is_evaluated_before_an_overflowing_sum_as_in_django.)
]


def _first_of_two_faults(m: Any) -> bool:
    """PostgreSQL refused the statement on both sides, for two different faults of it."""
    d, v = _django_error(m), _vinyl_error(m)
    if not (m.backend == "postgresql" and d[:2] == v[:2] == ("error", "run") and d[2] != v[2]):
        return False
    # A literal the server cannot parse (psycopg sends it inlined in the statement). (A value psycopg refuses to
    # adapt before anything is sent, a str for a bytea, was accepted here too: vinyl now raises psycopg's error
    # first, as Django does.)
    return ({d[2], v[2]} <= {"DataError", "ProgrammingError"}
            and "invalid input syntax" in d[3] and "invalid input syntax" not in v[3])


def _overflow_in_a_stream(m: Any) -> bool:
    """PostgreSQL streams: one side answered, the other met an arithmetic overflow (either way round)."""
    if m.backend != "postgresql" or m.case.terminal[0] != "iter":
        return False
    d, v = _django_error(m), _vinyl_error(m)
    return any(answered[0] == "ok" and raised[:3] == ("error", "run", "DataError") and "out of range" in raised[3]
               for answered, raised in ((m.django, v), (m.vinyl, d)))


#: Differences that are not bugs: each says why vinyl cannot (and should not)
#: answer as Django there, and names the test that pins both answers down.
ACCEPTED: list[Known] = [
    # A statement wrong in two ways: Django's psycopg binds values on the client, so PostgreSQL meets a literal it
    # cannot parse while it analyses the statement (DataError); asyncpg binds on the server, which analyses first
    # and reports the other fault (a missing function or operator: ProgrammingError). Likewise a str for a bytea,
    # which psycopg refuses before sending (TypeError; seed 5454 under Django 6.1). Each fault alone agrees.
    Known("pg-first-of-two-faults", "test_a_statement_wrong_twice_reports_either_fault", _first_of_two_faults),
    # An expression that overflows on some row (F('integer') + -5) is evaluated there or not as the plan decides:
    # Django's iterator() streams through a DECLARE CURSOR, planned for its first rows, and may skip it where its
    # list() and vinyl's stream (an asyncpg portal, planned whole) raise DataError (seed 9801), or evaluate it where
    # they filter the row out first and answer [] (seed 7071 shape 79). Django disagrees with itself there.
    Known("pg-overflow-depends-on-plan", "test_an_overflow_only_some_plans_evaluate_is_djangos_own_answer_too",
          _overflow_in_a_stream),
    # A stream (iterator(chunk_size=2)) of an unordered query prefetches chunk by chunk. With a Prefetch queryset
    # that joins the relation again (Tag.filter(items__day=...).filter(items__id__gte=...)), Django reads the owner
    # key from the first join and filters the owners on the last one, so a row's prefetched list depends on which
    # rows share its chunk: on the row order. PostgreSQL gives Django's DECLARE CURSOR (planned for its first rows)
    # another order than Django's list() and vinyl's stream (seed 2903 shape 32). Accepted only when the runner
    # ran the case again and Django, given vinyl's row order, answered exactly as vinyl did.
    # A write with two faults (slug=None on a NOT NULL column, small=F('small') * 2147483648 overflowing on rows
    # whose small is not 0) is refused for the fault of the first row the server reaches; the runner restores the
    # rows before each ORM's run, and PostgreSQL may place them in another physical order (seed 2906 shape 107).
    # Accepted only when, run again on the very same rows (vinyl first: a refused statement changes none), Django
    # refused it with vinyl's error.
    Known("refusal-follows-physical-row-order", "test_a_statement_wrong_on_two_rows_is_refused_as_django_on_the_same_rows",
          lambda m: m.agrees_on_the_same_rows),
    Known("chunked-prefetch-follows-row-order", "test_a_chunked_prefetch_answers_as_django_in_the_same_row_order",
          lambda m: m.agrees_in_vinyls_order),
]


def match(mismatch: Any) -> str | None:
    """The name of the known class ``mismatch`` belongs to, else None."""
    for entry in KNOWN + ACCEPTED:
        try:
            if entry.matches(mismatch):
                return entry.name
        except Exception:  # noqa: BLE001 - a predicate that cannot read this mismatch does not match
            continue
    return None
