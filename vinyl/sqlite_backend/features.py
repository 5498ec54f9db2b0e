from __future__ import annotations

import sqlite3

from django.db.backends.sqlite3.features import DatabaseFeatures as SQLiteFeatures
from django.utils.functional import cached_property


def _probe_connection() -> sqlite3.Connection:
    # The SQLite library aiosqlite runs is the sqlite3 module's own: a private
    # in-memory connection answers questions about it without touching the
    # database file or the event loop.
    return sqlite3.connect(":memory:")


def _variable_limit() -> int:
    conn = _probe_connection()
    try:
        getlimit = getattr(conn, "getlimit", None)
        if getlimit is None:  # pragma: no cover - Python < 3.11
            return 999
        return getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        conn.close()


_MAX_QUERY_PARAMS = _variable_limit()


class DatabaseFeatures(SQLiteFeatures):
    # Can other statements run on the connection while a server-side cursor
    # is open on it? SQLite reads a result step by step in the same
    # connection: yes.
    can_interleave_with_server_side_cursor = True
    # Django 6 reads this limit from an open connection; vinyl's SQLite
    # library is the same as the sqlite3 module's, so ask it once at import.
    max_query_params = _MAX_QUERY_PARAMS
    # Can this backend stream rows with a server-side cursor? aiosqlite's
    # cursor fetches lazily on the connection's own thread.
    can_stream_with_server_side_cursor = True
    # Can a query take row locks (SELECT ... FOR UPDATE)? SQLite locks the
    # whole database instead; vinyl refuses select_for_update() there.
    has_select_for_update = False

    @cached_property
    def supports_json_field(self) -> bool:
        conn = _probe_connection()
        try:
            conn.execute("SELECT JSON('{\"a\": \"b\"}')")
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
        return True
