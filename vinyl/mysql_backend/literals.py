"""Many plain parameters written into the SQL as asyncmy writes them, more cheaply.

asyncmy (a text-protocol driver) sends no parameters: its ``execute(sql,
params)`` writes each one into the SQL as a literal, through a generator and
two method calls per value (``Connection.literal``, ``escape``): about 3,400
instructions a value, most of a 1,000-row ``bulk_create``'s client time.
For a statement with many parameters, all strings, integers or None, vinyl
writes the same literals itself in one list comprehension and hands asyncmy
the finished SQL: a string is asyncmy's own ``escape_string`` of it between
quotes (what ``Connection.escape`` gives a ``str``), an integer ``str()`` of
it and None ``NULL`` (what asyncmy's default encoders give them). The server
receives the same bytes. Anything else (fewer parameters, another type, a
session in ``NO_BACKSLASH_ESCAPES`` mode, where asyncmy doubles quotes
instead) goes through asyncmy as given.
"""

from __future__ import annotations

from typing import Any

from asyncmy.constants.SERVER_STATUS import SERVER_STATUS_NO_BACKSLASH_ESCAPES
from asyncmy.converters import escape_string

#: From this many parameters on, the literals are written here.
MANY = 32

_PLAIN = frozenset((str, int, type(None)))


def arguments(connection: Any, sql: str, params: Any) -> tuple:
    """``cursor.execute()``'s arguments for ``sql`` and ``params`` on the
    asyncmy ``connection``: ``(sql with the literals written in,)`` where
    this module writes them (see above), else ``(sql, params)``."""
    if (
        type(params) is not tuple
        or len(params) < MANY
        or connection.server_status & SERVER_STATUS_NO_BACKSLASH_ESCAPES
        or not _PLAIN.issuperset(map(type, params))
    ):
        return sql, params
    return (sql % tuple([("'" + escape_string(v) + "'") if type(v) is str else "NULL" if v is None else str(v) for v in params]),)
