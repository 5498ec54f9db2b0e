from __future__ import annotations

from vinyl.mysql_backend import _mysqldb

_mysqldb.import_django_mysql()

from django.db.backends.mysql.features import DatabaseFeatures as MySQLFeatures  # noqa: E402

from vinyl.engine.engines import cached_facts  # noqa: E402


class DatabaseFeatures(MySQLFeatures):
    # What does the driver's fetchmany() return once rows are exhausted?
    # SQLAlchemy's asyncmy adapter returns a list, not MySQLdb's tuple.
    empty_fetchmany_value: list = []
    # Can this backend stream rows with a server-side cursor? asyncmy's
    # unbuffered cursor, on a connection nothing else uses meanwhile.
    can_stream_with_server_side_cursor = True
    # Can other statements run on the connection while a server-side cursor
    # is open on it? Not with an unbuffered result: it would lose rows.
    can_interleave_with_server_side_cursor = False

    @property
    def supports_transactions(self) -> bool:
        # Django's test case asks every alias of a test, in sync code, before
        # any vinyl query may have connected: answer from the server's
        # default storage engine once known, else as for InnoDB (MariaDB's
        # and MySQL's default; vinyl.atomic needs it).
        facts = cached_facts(self.connection.alias)
        if facts is None:
            return True
        return facts["mysql_server_data"]["default_storage_engine"] != "MyISAM"
