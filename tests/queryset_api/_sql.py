"""Record the SQL statements vinyl sends, through Django's execute_wrapper."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from django.db import connections


@contextmanager
def captured_sql(using: str = "vinyl_default") -> Iterator[list[tuple[str, Any]]]:
    """Collect ``(sql, params)`` of every statement run on ``using`` meanwhile."""
    statements: list[tuple[str, Any]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connections[using].execute_wrapper(record):
        yield statements
