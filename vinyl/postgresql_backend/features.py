from __future__ import annotations

from django.db.backends.postgresql.features import DatabaseFeatures as PostgreSQLFeatures


class DatabaseFeatures(PostgreSQLFeatures):
    # Does the driver bind parameters on the server (and so need typed
    # placeholders)? asyncpg always does; vinyl casts the placeholders.
    uses_server_side_binding = False
    # Can this backend stream rows with a server-side cursor? asyncpg's
    # cursors, inside the operation's transaction.
    can_stream_with_server_side_cursor = True
    # How many parameters can one statement bind? asyncpg sends at most
    # 32767 (a signed 16-bit count in its protocol messages).
    max_query_params = 2**15 - 1
    # Can other statements run on the connection while a server-side cursor
    # is open on it? asyncpg's cursors are portals: yes.
    can_interleave_with_server_side_cursor = True
