"""Statements with more parameters than asyncpg can bind.

asyncpg binds at most 32,767 parameters per statement (the protocol's
16-bit count) and refuses more (``InterfaceError``). psycopg, Django's
driver, binds on the client by default and has no such limit, so Django
answers ``filter(id__in=<100,000 values>)``.

Above the limit, vinyl sends each ``IN ($a, $a+1, ..., $b)`` list of plain
parameters as ``= ANY($k)``, one array parameter whose element type the
server infers from the left operand (``NOT IN`` as ``<> ALL($k)``): the
same rows, NULLs included (``x IN (1, NULL)`` and ``x = ANY('{1,NULL}')``
are both NULL when x is not 1). Only the statement sent changes, at run time: cached plans keep
their SQL. A statement that still has too many parameters (no such lists)
is sent as it is, and asyncpg's refusal is Django's OperationalError.

Below the limit, :func:`as_arrays` sends every such list as an array too
(see the section at the end).
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Sequence
from typing import Any

from vinyl.translate.placeholders import FLOAT_AS_NUMERIC

#: asyncpg's limit on the parameters of one statement.
MAX_ARGUMENTS = 32767

# An IN list of two or more plain parameters, or any other parameter.
_PLACEHOLDERS = re.compile(r"\b(NOT )?IN \((\$\d+(?:::\w+)*(?:, \$\d+(?:::\w+)*)+)\)|\$(\d+)")
_ITEM = re.compile(r"\$(\d+)(?:::(\w+(?:::\w+)*))?")
#: The element type of an array of items cast so, where it is not their cast:
#: a finite float's placeholder reads it as a numeric (FLOAT_AS_NUMERIC); as
#: an element of a list compared with a float8 (the only column a float
#: reaches: Django makes it a Decimal or an int for the others) the float8
#: is the same value.
_ELEMENT_OF = {FLOAT_AS_NUMERIC[2:]: "float8"}
# Integer casts (vinyl's placeholders, by the value's size), narrowest first:
# a list of mixed sizes is compared as the widest.
_WIDENING = ("int4", "int8", "numeric")


def within_limit(sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """``sql`` and ``params``, with IN lists as arrays when there are more
    parameters than asyncpg binds (see the module docstring)."""
    if len(params) <= MAX_ARGUMENTS:
        return sql, params
    rewritten = in_lists_as_arrays(sql, params)
    return rewritten if rewritten is not None else (sql, params)


def in_lists_as_arrays(sql: str, params: Sequence[Any]) -> tuple[str, tuple] | None:
    """Each ``IN`` list of plain parameters as ``= ANY($k)`` (``NOT IN``:
    ``<> ALL($k)``) with one array
    parameter, or None if the placeholders are not numbered in order (each
    once, as vinyl numbers Django's)."""
    out: list[Any] = []
    pieces: list[str] = []
    position = 0
    expected = 1
    for match in _PLACEHOLDERS.finditer(sql):
        pieces.append(sql[position : match.start()])
        position = match.end()
        if match.group(2) is not None:
            items = [_ITEM.fullmatch(item) for item in match.group(2).split(", ")]
            numbers = [int(item.group(1)) for item in items if item is not None]
            if numbers != list(range(expected, expected + len(items))):
                return None
            values = list(params[expected - 1 : expected - 1 + len(items)])
            cast = _array_cast({_element(item.group(2)) for item, value in zip(items, values) if value is not None})  # type: ignore[union-attr]
            if cast is None:
                return None
            out.append(values)
            expected += len(items)
            operator = "<> ALL" if match.group(1) else "= ANY"
            pieces.append(f"{operator}(${len(out)}{cast})")
        else:
            if int(match.group(3)) != expected:
                return None
            out.append(params[expected - 1])
            expected += 1
            pieces.append(f"${len(out)}")
    if expected != len(params) + 1:
        return None
    pieces.append(sql[position:])
    return "".join(pieces), tuple(out)


def _element(cast: str | None) -> str | None:
    return _ELEMENT_OF.get(cast, cast) if cast else cast


def _array_cast(casts: set[str | None]) -> str | None:
    """The cast of the array for items cast so (``""``: none, the server
    infers the type); None when the items have no common type."""
    if not casts or casts == {None}:
        return ""
    if None in casts:
        return None  # typed and untyped values in one list
    if len(casts) == 1:
        return f"::{next(iter(casts))}[]"
    if casts <= set(_WIDENING):
        return f"::{max(casts, key=_WIDENING.index)}[]"
    return None


# -- every IN list of plain values as one array --------------------------------
#
# vinyl sends each ``IN`` list of two or more plain parameters as one array
# (``= ANY($k)``, ``NOT IN``: ``<> ALL($k)``), whatever the count: one
# parameter in place of N, a statement PostgreSQL parses and plans faster (a
# list of 100 keys: about 0.15 ms less per query), and one statement text
# for every list length, so asyncpg's statement cache and the server's
# prepared statements are shared across lengths. The rewrite depends on the
# SQL alone (kept per SQL text); each run checks that the values of each
# list are of the Python type its element type takes, else the statement is
# sent as it is.
#
# A list of integers goes as a binary array parameter (``= ANY($k::int8[])``),
# as any other list. It was sent as the array's text, cast on the server in a
# scalar subquery (``(SELECT $k::text::int8[])::int8[]``), because asyncpg's
# binary encoding asks an ABC isinstance check of every element (about 2,000
# instructions each; the text costs about 100). That saved the client time
# and cost answers and server time: PostgreSQL cannot see into the subquery
# when it plans, so it never hashes the list (a scan of 50,000 rows by 100
# values: 18 ms against 3.3 ms for the array parameter in a custom plan, 1,000
# values: 213 against 3.4 ms), and it ordered an overflowing expression of
# the same filter before the list, raising DataError on a row the list leaves
# out, where Django's literals answer rows (benchmarks.in_lists; the known
# class pg-in-list-array-evaluated-after-an-overflow, now fixed).

#: Python types of the values of a list, by the cast of its placeholders
#: (vinyl's, by value type; "" none: text the server types from the column).
_ELEMENT_TYPES: dict[str, frozenset[type]] = {
    "": frozenset({str}),
    "int4": frozenset({int}),
    "int8": frozenset({int}),
    "numeric": frozenset({int, decimal.Decimal}),
    "float8": frozenset({float}),
    "boolean": frozenset({bool}),
    "uuid": frozenset({uuid.UUID}),
    "date": frozenset({datetime.date}),
    "time": frozenset({datetime.time}),
    "timestamp": frozenset({datetime.datetime}),
    "timestamptz": frozenset({datetime.datetime}),
}

#: A statement's rewrite: its SQL with arrays, and per parameter of it, the
#: index of the original parameter or ``(start, stop, types)`` of a list.
Arrays = tuple[str, tuple]

_ARRAYS: dict[str, Arrays | None] = {}
#: Statements whose rewrite is kept (Django compiles some statements anew
#: for each set of values: their texts are not kept for ever).
ARRAYS_KEPT = 2_000


def as_arrays(sql: str, params: Sequence[Any]) -> tuple[str, list] | None:
    """``sql`` and ``params`` with each IN list of plain parameters as one
    array parameter, or None to send them as they are (no such list, or a
    value of another type than the list's elements take)."""
    try:
        spec = _ARRAYS[sql]
    except KeyError:
        if len(_ARRAYS) >= ARRAYS_KEPT:
            _ARRAYS.clear()
        spec = _ARRAYS[sql] = _arrays_of(sql, len(params))
    if spec is None:
        return None
    out: list[Any] = []
    append = out.append
    for part in spec[1]:
        if type(part) is int:
            append(params[part])
            continue
        start, stop, types = part
        values = params[start:stop]
        if not set(map(type, values)) <= types:
            return None
        append(list(values))
    return spec[0], out


def _arrays_of(sql: str, count: int) -> Arrays | None:
    """The rewrite of ``sql`` (see :func:`as_arrays`), None if it has no list to rewrite."""
    parts: list[Any] = []
    pieces: list[str] = []
    position = 0
    expected = 1
    lists = 0
    for match in _PLACEHOLDERS.finditer(sql):
        pieces.append(sql[position : match.start()])
        position = match.end()
        if match.group(2) is not None:
            items = [_ITEM.fullmatch(item) for item in match.group(2).split(", ")]
            if any(item is None for item in items):
                return None
            numbers = [int(item.group(1)) for item in items]  # type: ignore[union-attr]
            if numbers != list(range(expected, expected + len(items))):
                return None
            casts = {_element(item.group(2)) or "" for item in items}  # type: ignore[union-attr]
            cast = casts.pop() if len(casts) == 1 else max(casts, key=_WIDENING.index) if casts <= set(_WIDENING) else None
            if cast is None or cast not in _ELEMENT_TYPES:
                return None
            types = frozenset().union(*(_ELEMENT_TYPES[c] for c in casts | {cast}))
            parts.append((expected - 1, expected - 1 + len(items), types))
            expected += len(items)
            lists += 1
            operator = "<> ALL" if match.group(1) else "= ANY"
            pieces.append(f"{operator}(${len(parts)}{f'::{cast}[]' if cast else ''})")
        else:
            if int(match.group(3)) != expected:
                return None
            parts.append(expected - 1)
            expected += 1
            pieces.append(f"${len(parts)}")
    if not lists or expected != count + 1:
        return None
    pieces.append(sql[position:])
    return "".join(pieces), tuple(parts)
