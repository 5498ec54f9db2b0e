"""Count the SQL statements vinyl sends (bridge and cached plans alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import vinyl


@contextmanager
def count_queries(alias: str = "vinyl_default") -> Iterator[list[str]]:
    """Collect the SQL of every statement run on ``alias`` inside the block."""
    statements: list[str] = []
    with vinyl.capture_queries() as queries:
        yield statements
        statements.extend(q.sql for q in queries if q.alias == alias)
