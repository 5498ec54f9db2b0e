"""Record the SQL statements vinyl sends (bridge and cached plans alike)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import vinyl


class _Statements(Sequence):
    """A live view of ``(sql, params)`` of the statements run on one alias."""

    def __init__(self, queries: Any, using: str) -> None:
        self._queries = queries
        self._using = using

    def _items(self) -> list[tuple[str, Any]]:
        return [(q.sql, q.params) for q in self._queries if q.alias == self._using]

    def __getitem__(self, index: Any) -> Any:
        return self._items()[index]

    def __len__(self) -> int:
        return len(self._items())

    def __eq__(self, other: object) -> bool:
        return self._items() == list(other) if isinstance(other, (list, tuple)) else NotImplemented

    def __repr__(self) -> str:
        return repr(self._items())


@contextmanager
def captured_sql(using: str = "vinyl_default") -> Iterator[Sequence[tuple[str, Any]]]:
    """Collect ``(sql, params)`` of every statement run on ``using`` meanwhile."""
    with vinyl.capture_queries() as queries:
        yield _Statements(queries, using)
