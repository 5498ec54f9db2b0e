"""Count the SQL statements vinyl sends (bridge and cached plans alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vinyl.engine.observe import observe


@contextmanager
def count_queries(alias: str = "vinyl_default") -> Iterator[list[str]]:
    """Collect the SQL of every statement run on ``alias`` inside the block."""
    statements: list[str] = []

    def record(where: str, sql: str, params: Any) -> None:
        if where == alias:
            statements.append(sql)

    with observe(record):
        yield statements
