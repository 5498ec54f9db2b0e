"""Count the SQL statements vinyl runs, through Django's ``execute_wrapper``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections


@contextmanager
def count_queries(alias: str = "vinyl_default") -> Iterator[list[str]]:
    """Collect the SQL of every statement run on ``alias`` inside the block."""
    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connections[alias].execute_wrapper(record):
        yield statements
