from __future__ import annotations

from vinyl.mysql_backend import _mysqldb

_mysqldb.install()

from django.db.backends.mysql.features import DatabaseFeatures as MySQLFeatures  # noqa: E402


class DatabaseFeatures(MySQLFeatures):
    # What does the driver's fetchmany() return once rows are exhausted?
    # SQLAlchemy's asyncmy adapter returns a list, not MySQLdb's tuple.
    empty_fetchmany_value = []
    # Can this backend stream rows with a server-side cursor? asyncmy's
    # unbuffered cursor, on a connection nothing else uses meanwhile.
    can_stream_with_server_side_cursor = True
    # Can other statements run on the connection while a server-side cursor
    # is open on it? Not with an unbuffered result: it would lose rows.
    can_interleave_with_server_side_cursor = False
