from __future__ import annotations

import sqlite3
import threading
from typing import Any

from django.db.backends.sqlite3.operations import DatabaseOperations as SQLiteOperations

_quoting = threading.local()


def _quoting_connection() -> sqlite3.Connection:
    # A private in-memory database of the same SQLite library, one per
    # thread: QUOTE() answers there as on the database file.
    conn = getattr(_quoting, "conn", None)
    if conn is None:
        conn = _quoting.conn = sqlite3.connect(":memory:")
    return conn


class DatabaseOperations(SQLiteOperations):
    compiler_module = "vinyl.sqlite_backend.compiler"

    def _quote_params_for_last_executed_query(self, params: Any) -> tuple:
        # Django's last_executed_query (used with DEBUG = True) quotes the
        # parameters with SQLite's QUOTE() on the sqlite3 connection itself;
        # vinyl's is an aiosqlite adapter whose cursor answers
        # asynchronously. The parameters are quoted on a private in-memory
        # connection instead (Django's private helper, overridden here only).
        conn = _quoting_connection()
        size = min(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), conn.getlimit(sqlite3.SQLITE_LIMIT_COLUMN))
        quoted: tuple = ()
        for start in range(0, len(params), size):
            chunk = tuple(params[start : start + size])
            sql = "SELECT " + ", ".join(["QUOTE(?)"] * len(chunk))
            quoted += tuple(conn.execute(sql, chunk).fetchone())
        return quoted
