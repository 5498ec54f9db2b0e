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

import datetime
import decimal
import uuid
from typing import Any, Sequence

_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1

# Exact Python type -> cast of its placeholder. Types not listed (str, None,
# lists...) stay untyped and PostgreSQL infers them from their context.
_CASTS: dict[type, str] = {
    bool: "::boolean",
    float: "::float8",
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
        return "::int4" if _INT4_MIN <= value <= _INT4_MAX else "::int8"
    if kind is datetime.datetime:
        return "::timestamptz" if value.tzinfo is not None else "::timestamp"
    return _CASTS.get(kind, "")


def format_to_numeric_dollar(sql: str, params: Sequence[Any] | None) -> str:
    """Return ``sql`` with ``%s`` as typed ``$n`` placeholders and ``%%`` as ``%``.

    >>> format_to_numeric_dollar("SELECT %s, x LIKE '%%a'", (1,))
    "SELECT $1::int4, x LIKE '%a'"
    """
    if not params:
        return sql.replace("%%", "%") if "%" in sql else sql
    return sql % tuple(f"${i}{_cast(value)}" for i, value in enumerate(params, 1))
