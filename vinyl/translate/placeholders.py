"""Rewrite Django's ``%s`` placeholders for drivers with another paramstyle.

Django's compilers emit ``format`` style SQL (``%s``, and ``%%`` for a literal
``%``). asyncmy takes it unchanged. asyncpg wants ``$1``, ``$2``... and infers
each parameter's type from the server, so a bare ``$1`` in a select list is
typed ``text`` and an ``int`` sent there fails. A client-side binding driver
such as psycopg inlines literals whose type PostgreSQL reads from their
syntax; casting the placeholder to the type of the Python value gives the same
result.
"""

from __future__ import annotations

import bisect
import datetime
import decimal
import math
import re
import uuid
from typing import Any, Mapping, Sequence

_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1
_INT8_MIN, _INT8_MAX = -(2**63), 2**63 - 1

# Exact Python type -> cast of its placeholder. Types not listed (str, None,
# lists...) stay untyped and PostgreSQL infers them from their context.
_CASTS: dict[type, str] = {
    bool: "::boolean",
    decimal.Decimal: "::numeric",
    datetime.date: "::date",
    datetime.time: "::time",
    datetime.timedelta: "::interval",
    uuid.UUID: "::uuid",
    bytes: "::bytea",
    bytearray: "::bytea",
    memoryview: "::bytea",
}


def _cast(value: Any) -> str:
    kind = type(value)
    if kind is int:
        if _INT4_MIN <= value <= _INT4_MAX:
            return "::int4"
        # Beyond 64 bits, numeric: what psycopg sends, so the server compares
        # (or refuses to store) the value as Django's driver has it do.
        return "::int8" if _INT8_MIN <= value <= _INT8_MAX else "::numeric"
    if kind is datetime.datetime:
        return "::timestamptz" if value.tzinfo is not None else "::timestamp"
    return _CASTS.get(kind, "")


#: A finite float's placeholder: Django's psycopg writes the float into the
#: SQL as its repr (``0.1``), which PostgreSQL reads as a numeric. So
#: arithmetic on it is numeric's, exact (``3 * 0.1`` equals ``0.3``, where
#: float8's gives 0.30000000000000004), and its text is numeric's (``30.0``).
#: asyncpg binds the float8; its text (the shortest digits that read back as
#: the same float8, as Python's repr, with PostgreSQL's default
#: extra_float_digits of 1) read as a numeric is psycopg's literal, -0.0
#: included (numeric has no negative zero: Django stores and compares 0).
FLOAT_AS_NUMERIC = "::float8::text::numeric"


def _placeholder(number: int, value: Any) -> str:
    if type(value) is float:
        # (NaN and the infinities: psycopg writes 'NaN'::float8, a float8.)
        return f"${number}{FLOAT_AS_NUMERIC}" if math.isfinite(value) else f"${number}::float8"
    return f"${number}{_cast(value)}"


def format_to_numeric_dollar(sql: str, params: Sequence[Any] | None) -> str:
    """Return ``sql`` with ``%s`` as typed ``$n`` placeholders and ``%%`` as ``%``.

    >>> format_to_numeric_dollar("SELECT %s, x LIKE '%%a'", (1,))
    "SELECT $1::int4, x LIKE '%a'"
    """
    if not params:
        return sql.replace("%%", "%") if "%" in sql else sql
    # Text and None, most values of a long list, are untyped: no call for them
    # (this is _sent_as inlined, for long lists).
    return sql % tuple(
        f"${i}" if type(value) is str or value is None else _placeholder(i, value) for i, value in enumerate(params, 1)
    )


def _sent_as(number: int, value: Any) -> str:
    """The placeholder of ``value`` as parameter ``number`` (untyped for text and None)."""
    return f"${number}" if type(value) is str or value is None else _placeholder(number, value)


#: Types of the parameters that may share one placeholder with any equal
#: value (see :func:`equal_constants`): those whose placeholder is cast, so
#: that a shared placeholder's type is the cast's wherever it stands.
_SHAREABLE = frozenset(_CASTS) | {int, float, datetime.datetime}
_FORMAT_MARKS = re.compile(r"%[%s]")
#: What ends a GROUP BY clause at its own depth (besides its closing parenthesis).
_AFTER_GROUP_BY = re.compile(r" (?:HAVING|ORDER BY|LIMIT|OFFSET|FOR (?:UPDATE|SHARE|NO KEY|KEY)|UNION|INTERSECT|EXCEPT|WINDOW)\b")


def equal_constants(sql: str, params: Sequence[Any]) -> tuple[int, ...] | None:
    """For a statement with a ``GROUP BY``: the index of the first parameter
    each parameter is sent as (its own index when it is sent itself), or None
    when each is sent itself.

    Django's psycopg writes each value into the SQL as a literal, so an
    expression grouped on (``GROUP BY ("level" - 1)``) and the same expression
    in ``HAVING``, the select list or ``ORDER BY`` are the same text, and
    PostgreSQL matches them. Two placeholders ``$2`` and ``$3`` are two
    expressions to it ("must appear in the GROUP BY clause"), so they share
    one, as they would be one literal:

    - a value whose placeholder is cast shares with every equal value of its
      type (the cast types it wherever it stands). Equal means the same cast
      and the same ``repr`` (``Decimal('1.5')`` and ``Decimal('1.50')`` are
      other literals);
    - an untyped value (text, None) takes its type from where it stands: it
      shares only within a grouped expression written again, the same text
      with the same values.
    """
    if "GROUP BY" not in sql or len(params) < 2:
        return None
    firsts = list(range(len(params)))
    seen: dict[tuple[str, str], int] = {}
    untyped = False
    for i, value in enumerate(params):
        if type(value) in _SHAREABLE:
            firsts[i] = seen.setdefault((_placeholder(0, value), repr(value)), i)
        else:
            untyped = True
    if untyped:
        _share_grouped_expressions(sql, params, firsts)
    return tuple(firsts) if firsts != list(range(len(params))) else None


def _share_grouped_expressions(sql: str, params: Sequence[Any], firsts: list[int]) -> None:
    # Each later occurrence of a grouped expression's text, with equal values
    # at its placeholders, is sent with the placeholders of the first.
    marks = [m.start() for m in _FORMAT_MARKS.finditer(sql) if m.group() == "%s"]
    if len(marks) != len(params):
        return
    for start, end in _grouped_expressions(sql):
        text = sql[start:end]
        # (Only an expression of columns, quoted, must be matched: a text of
        # placeholders alone would match any.)
        if "%s" not in text or '"' not in text:
            continue
        occurrences = []
        at = sql.find(text)
        while at >= 0:
            first_mark = bisect.bisect_left(marks, at)
            occurrences.append(list(range(first_mark, first_mark + text.count("%s"))))
            at = sql.find(text, at + len(text))
        earlier = occurrences[0]
        for later in occurrences[1:]:
            if all(_same_literal(params[a], params[b]) for a, b in zip(earlier, later)):
                for a, b in zip(earlier, later):
                    firsts[b] = min(firsts[b], firsts[a])


def _same_literal(a: Any, b: Any) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


def _grouped_expressions(sql: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each expression in each GROUP BY clause of ``sql``."""
    found: list[tuple[int, int]] = []
    at = sql.find("GROUP BY ")
    while at >= 0:
        position = start = at + len("GROUP BY ")
        depth = 0
        quote = ""
        while position < len(sql):
            char = sql[position]
            if quote:
                if char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and char == ",":
                found.append((start, position))
                start = position + 2 if sql.startswith(", ", position) else position + 1
            elif depth == 0 and char == " " and _AFTER_GROUP_BY.match(sql, position):
                break
            position += 1
        found.append((start, position))
        at = sql.find("GROUP BY ", position)
    return found


def format_sharing_constants(sql: str, params: Sequence[Any], firsts: Sequence[int]) -> tuple[str, tuple]:
    """:func:`format_to_numeric_dollar` where parameter ``i`` takes the
    placeholder of parameter ``firsts[i]``; returns the SQL and the
    parameters left (each shared one once, in order)."""
    numbers: list[int] = []
    kept: list[Any] = []
    placeholders: list[str] = []
    for i, value in enumerate(params):
        first = firsts[i]
        if first == i:
            kept.append(value)
            numbers.append(len(kept))
        else:
            numbers.append(numbers[first])
        placeholders.append(_sent_as(numbers[i], value))
    return sql % tuple(placeholders), tuple(kept)


#: Types whose cast depends on the value, not on the type alone (an int's
#: range, whether a float is finite, a datetime's time zone).
_VALUE_CASTS = frozenset((int, float, datetime.datetime))
#: Kinds of parameters a statement keeps its converted SQL for.
_KINDS_KEPT = 16


class NumberedStatement:
    """One ``format`` statement of a plan, converted to ``$n`` placeholders
    once per kind of parameters instead of at every call.

    The conversion (see :func:`format_to_numeric_dollar`) depends on the
    exact type of each parameter, and for ints, floats and datetimes on the
    value too: the SQL is kept per tuple of types, with the placeholder of
    each value-dependent parameter, which a call must give again to reuse it.
    """

    __slots__ = ("sql", "_by_types")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        # types -> (SQL, (position, placeholder, is an int4) of each
        # parameter whose placeholder depends on its value)
        self._by_types: dict[tuple, tuple[str, tuple]] = {}

    def convert(self, params: tuple) -> str:
        """``format_to_numeric_dollar(self.sql, params)``."""
        types = tuple(map(type, params))
        known = self._by_types.get(types)
        if known is not None:
            for position, placeholder, int4 in known[1]:
                value = params[position - 1]
                # (An int4 again, the usual key: no call to tell; its type
                # is int, as the types are the same.)
                if int4 and _INT4_MIN <= value <= _INT4_MAX:
                    continue
                if _placeholder(position, value) != placeholder:
                    return format_to_numeric_dollar(self.sql, params)
            return known[0]
        sql = format_to_numeric_dollar(self.sql, params)
        if len(self._by_types) < _KINDS_KEPT:
            checks = tuple(
                (i, _placeholder(i, value), type(value) is int and _INT4_MIN <= value <= _INT4_MAX)
                for i, value in enumerate(params, 1)
                if type(value) in _VALUE_CASTS
            )
            self._by_types[types] = (sql, checks)
        return sql


class _Numbered(dict):
    """Number each ``%(name)s`` on first use; a repeated name reuses its $n."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        self.params = params
        self.order: list[Any] = []

    def __missing__(self, name: str) -> str:
        value = self.params[name]
        self.order.append(value)
        placeholder = self[name] = _placeholder(len(self.order), value)
        return placeholder


def pyformat_to_numeric_dollar(sql: str, params: Mapping[str, Any]) -> tuple[str, tuple]:
    """Return ``sql`` with ``%(name)s`` as typed ``$n`` and the params in order.

    >>> pyformat_to_numeric_dollar("SELECT %(a)s, %(b)s, %(a)s", {"a": 1, "b": "x"})
    ('SELECT $1::int4, $2, $1::int4', (1, 'x'))
    """
    numbered = _Numbered(params)
    return sql % numbered, tuple(numbered.order)
