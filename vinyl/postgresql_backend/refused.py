"""Values asyncpg refuses to encode, sent as literals PostgreSQL reads itself.

asyncpg encodes each parameter in the binary format of the type the server
inferred for it, so it refuses a value of another Python type: a ``str`` for
an ``interval`` (``DurationField`` keeps strings as they are), or an aware
``datetime`` before year 1 once moved to UTC. psycopg, Django's driver, sends
such values as text of unknown type, which the server parses for the type it
infers; the query then answers as in Django.

vinyl does the same, only for what asyncpg refused (nothing changes on the
normal path): the refused parameter becomes a quoted literal of unknown type
in the statement, and the statement runs again. asyncpg refuses before the
statement runs, so the transaction is untouched until the server reads the
literal. An integer out of its column's range (or an array holding one) is
inlined too: the server then refuses it as it refuses Django's literal, and
a transaction is left aborted as Django's is, where asyncpg's refusal alone
left it going.

A refused value that vinyl sent wrapped for later (see sentlater.py) is
adapted as psycopg adapts it when sending: its error is raised, or the
statement runs again with the adapted value.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from vinyl.postgresql_backend.sentlater import sent_value

T = TypeVar("T")

_REFUSED = re.compile(r"invalid input for query argument \$(\d+):")
_PLACEHOLDER = re.compile(r"\$(\d+)")


def refused_argument(exc: BaseException | None) -> int | None:
    """The 1-based number of the parameter asyncpg refused to encode, if ``exc`` is that."""
    for _ in range(4):  # the exception, SQLAlchemy's wrapper of it, and so on
        if exc is None:
            return None
        if isinstance(exc, asyncpg.DataError):
            match = _REFUSED.match(str(exc))
            return int(match.group(1)) if match else None
        exc = exc.__cause__
    return None


def _as_text(value: Any) -> str | None:
    """The text PostgreSQL parses back into ``value``, or None for values left refused."""
    if isinstance(value, str):
        text = value
    elif type(value) is int:
        # Out of its type's range (a smallint's 40000): the server refuses
        # it as it refuses Django's literal, and its transaction is then
        # aborted as Django's is (asyncpg's refusal leaves it untouched).
        return str(value)
    elif isinstance(value, (list, tuple)) and all(type(v) is int or v is None for v in value):
        # An array of such integers (bulk_create's UNNEST columns).
        return "{" + ",".join("NULL" if v is None else str(v) for v in value) + "}"
    elif isinstance(value, datetime.datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, (datetime.date, datetime.time)):
        text = value.isoformat()
    else:
        return None
    # PostgreSQL's text cannot hold NUL, nor a lone surrogate (no UTF-8 for
    # it): asyncpg's refusal stands, mapped as Django's driver's error.
    if "\x00" in text or not text.isascii() and not _utf8(text):
        return None
    return text


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _literal(text: str) -> str:
    # An escape string constant, whatever standard_conforming_strings says.
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def inline_refused(sql: str, params: Sequence[Any], exc: BaseException) -> tuple[str, tuple] | None:
    """``sql`` and ``params`` with the refused parameter as a literal, or None.

    None when ``exc`` is not a refused parameter or its value is not one
    PostgreSQL can read from text; the caller then lets ``exc`` stand.
    Raises psycopg's error for a value sent for later that it cannot adapt
    (then while ``exc`` is handled: it stays as the context, not as the
    cause, which would make the error a database error).
    """
    # psycopg adapts every value before it sends the statement: a value sent
    # for later that it cannot adapt raises before the server reads any
    # other, whatever the server answered vinyl meanwhile (a transaction
    # already aborted, a value it refused; a literal inlined below could
    # only fail on the server).
    adapted = _sent(params)
    number = refused_argument(exc)
    if number is None or not 0 < number <= len(params):
        return None
    if adapted[number - 1] is not params[number - 1]:
        return sql, adapted
    params = adapted
    text = _as_text(params[number - 1])
    if text is None:
        return None
    literal = _literal(text)

    def renumber(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n == number:
            return literal
        return f"${n - 1}" if n > number else match.group(0)

    rest = tuple(params[: number - 1]) + tuple(params[number:])
    return _PLACEHOLDER.sub(renumber, sql), rest


def _sent(params: Sequence[Any]) -> tuple:
    """``params`` with each value sent for later adapted, in order (psycopg's error raised)."""
    adapted = tuple(params)
    for i, value in enumerate(adapted):
        sent = sent_value(value)
        if sent is not None:
            adapted = (*adapted[:i], sent, *adapted[i + 1:])
    return adapted


async def rerun_refused(run: Callable[[str, tuple], Awaitable[T]], sql: str, params: Sequence[Any], exc: BaseException) -> T:
    """After ``run(sql, params)`` raised ``exc``: run again with the refused parameter inlined.

    Re-raises ``exc`` when asyncpg refused no parameter (the server's own
    error: an invalid regular expression, an aborted transaction...), or
    psycopg's error for a value sent for later. The statement did run then,
    and in a transaction, running it again would only meet the aborted
    transaction ("current transaction is aborted") in place of ``exc``.
    """
    rewritten = inline_refused(sql, params, exc)
    if rewritten is None:
        raise exc
    return await run_inlining_refused(run, *rewritten)


async def run_inlining_refused(run: Callable[[str, tuple], Awaitable[T]], sql: str, params: Sequence[Any]) -> T:
    """``await run(sql, params)``, again with each refused parameter inlined."""
    params = tuple(params)
    while True:
        try:
            return await run(sql, params)
        except asyncpg.PostgresError as exc:
            rewritten = inline_refused(sql, params, exc)
            if rewritten is None:
                raise
            sql, params = rewritten


def raise_unsent(params: Sequence[Any]) -> None:
    """Raise psycopg's error for a value in ``params`` sent for later that it
    cannot adapt (psycopg raises it before the statement is sent)."""
    _sent(params)


def call_inlining_refused(run: Callable[[str, tuple], T], sql: str, params: Sequence[Any]) -> T:
    """The same for a synchronous ``run`` (SQLAlchemy's adapted cursor, in a greenlet)."""
    params = tuple(params)
    while True:
        try:
            return run(sql, params)
        except Exception as exc:
            rewritten = inline_refused(sql, params, exc)
            if rewritten is None:
                raise
            sql, params = rewritten
