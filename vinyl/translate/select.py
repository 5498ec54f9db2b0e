"""Compile a QuerySet to the ``(sql, params)`` its driver executes."""

from __future__ import annotations

from typing import Any

from django.db import connections


def compile_select(queryset: Any) -> tuple[str, tuple]:
    """Return the SQL and parameters vinyl sends for ``queryset``.

    Django's own compiler builds the SQL for the queryset's alias; the
    backend's cursor then rewrites it for the driver (``$n`` placeholders on
    asyncpg). No I/O: this never touches the database.
    """
    qs = getattr(queryset, "_qs", queryset)
    connection = connections[qs.db]
    sql, params = qs.query.get_compiler(connection=connection).as_sql()
    return connection.vinyl_cursor_class.prepare(sql, tuple(params))
