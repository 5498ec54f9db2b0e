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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: asyncpg's limit on the parameters of one statement.
MAX_ARGUMENTS = 32767

# An IN list of two or more plain parameters, or any other parameter.
_PLACEHOLDERS = re.compile(r"\b(NOT )?IN \((\$\d+(?:::\w+)?(?:, \$\d+(?:::\w+)?)+)\)|\$(\d+)")
_ITEM = re.compile(r"\$(\d+)(?:::(\w+))?")
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
            cast = _array_cast({item.group(2) for item, value in zip(items, values) if value is not None})  # type: ignore[union-attr]
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
