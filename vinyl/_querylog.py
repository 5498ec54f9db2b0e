"""The statements vinyl sends: the ``vinyl.sql`` logger and ``capture_queries``.

Every statement a vinyl backend executes is logged at DEBUG on ``vinyl.sql``
(SQL as sent to the driver, params, duration, alias), as Django logs on
``django.db.backends``. ``async with vinyl.capture_queries() as q`` records
the statements run by the current task (and tasks it starts) in the block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, overload

logger = logging.getLogger("vinyl.sql")

# The recorders of the capture blocks the current context is inside.
_recorders: ContextVar[tuple[CapturedQueries, ...]] = ContextVar("vinyl_capture_queries", default=())


@dataclass(frozen=True)
class CapturedQuery:
    """One statement: SQL as sent to the driver, its params, seconds taken."""

    sql: str
    params: Any
    duration: float
    alias: str


class CapturedQueries(Sequence[CapturedQuery]):
    """The statements run in a ``capture_queries()`` block, in order.

    ::

        async with vinyl.capture_queries() as queries:
            await Book.vinyl.select_related("author").get(pk=1)
        assert len(queries) == 1
        print(queries[0].sql)
    """

    __slots__ = ("_queries", "_token")

    def __init__(self) -> None:
        self._queries: list[CapturedQuery] = []
        self._token: Any = None

    @overload
    def __getitem__(self, index: int) -> CapturedQuery: ...
    @overload
    def __getitem__(self, index: slice) -> list[CapturedQuery]: ...
    def __getitem__(self, index: int | slice) -> CapturedQuery | list[CapturedQuery]:
        return self._queries[index]

    def __len__(self) -> int:
        return len(self._queries)

    def __iter__(self) -> Iterator[CapturedQuery]:
        return iter(self._queries)

    @property
    def sqls(self) -> list[str]:
        """The SQL of each statement."""
        return [q.sql for q in self._queries]

    def __repr__(self) -> str:
        return f"<CapturedQueries: {len(self._queries)} statements>"


class capture_queries:
    """Record the statements vinyl runs in the block, for this task only.

    ::

        async with vinyl.capture_queries() as q:
            await Author.vinyl.count()
        assert len(q) == 1

    Tasks started inside the block are recorded too; concurrent tasks
    started elsewhere are not. Blocks nest: each records what runs in it.
    """

    def __init__(self) -> None:
        self._queries = CapturedQueries()
        self._tokens: list[Any] = []

    async def __aenter__(self) -> CapturedQueries:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)

    def __enter__(self) -> CapturedQueries:
        self._tokens.append(_recorders.set((*_recorders.get(), self._queries)))
        return self._queries

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _recorders.reset(self._tokens.pop())


def observing() -> bool:
    """Does anyone want to know about statements right now? (cheap)"""
    return bool(_recorders.get()) or logger.isEnabledFor(logging.DEBUG)


def record(alias: str, sql: str, params: Any, started: float, *, many: bool = False, capture: bool = True) -> None:
    """Log one executed statement and add it to the active capture blocks.

    Transaction control (BEGIN, COMMIT, SAVEPOINT...) is logged only
    (``capture=False``): ``capture_queries`` counts statements, as Django's
    ``assertNumQueries`` does.
    """
    duration = time.perf_counter() - started
    query = CapturedQuery(sql=sql, params=params, duration=duration, alias=alias)
    if capture:
        for recorder in _recorders.get():
            recorder._queries.append(query)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "(%.3f) %s; %s=%r; alias=%s",
            duration,
            sql,
            "params_list" if many else "args",
            params,
            alias,
            extra={"duration": duration, "sql": sql, "params": params, "alias": alias},
        )


__all__ = ["CapturedQueries", "CapturedQuery", "capture_queries", "logger", "observing", "record"]
