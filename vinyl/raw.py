"""``Model.vinyl.raw(sql, params)``: raw SQL mapped to instances."""

from __future__ import annotations

from typing import Any, AsyncIterator, Generator

from django.db.models.query import RawQuerySet

from vinyl import _bridge


class VinylRawQuerySet:
    """Awaitable (a list of instances) and iterable with ``async for``."""

    __slots__ = ("_raw",)

    def __init__(self, model: type, raw_query: str, params: Any, translations: Any, using: str) -> None:
        self._raw = RawQuerySet(raw_query, model=model, params=params, translations=translations, using=using)

    def __await__(self) -> Generator[Any, None, list]:
        return self._fetch().__await__()

    async def _fetch(self) -> list:
        raw = self._raw
        return await _bridge.run(raw.db, lambda: list(raw.iterator()))

    async def __aiter__(self) -> AsyncIterator[Any]:
        for obj in await self._fetch():
            yield obj

    def __iter__(self) -> Any:
        raise TypeError("cannot iterate a vinyl raw query synchronously: use `await` or `async for`")

    def __repr__(self) -> str:
        return f"<VinylRawQuerySet: {self._raw.raw_query}>"
