"""Raw SQL: ``Model.vinyl.raw(sql, params)``, ``vinyl.execute``, ``vinyl.fetch``.

All three run on the connection of the current scope (the enclosing
``atomic`` block, or a pooled connection for the one statement), through
Django's cursor: Django-style ``%s`` placeholders, Django's database
exceptions, and ``execute_wrapper`` hooks apply.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Generator, Sequence

from django.db import connections
from django.db.models.query import RawQuerySet

from vinyl import _bridge, _compat
from vinyl.engine.engines import DEFAULT_ALIAS


class VinylRawQuerySet:
    """Awaitable (a list of instances) and iterable with ``async for``.

    ::

        books = await Book.vinyl.raw("SELECT * FROM app_book WHERE pages > %s", [100])
        async for book in Book.vinyl.raw("SELECT id, title FROM app_book"):
            ...

    Columns the SQL does not select are deferred: reading one raises
    ``DeferredFieldError``. Extra columns become attributes.
    """

    __slots__ = ("_raw",)

    def __init__(
        self,
        model: type | None = None,
        raw_query: str = "",
        params: Any = (),
        translations: Any = None,
        using: str = DEFAULT_ALIAS,
        *,
        raw: RawQuerySet | None = None,
    ) -> None:
        if raw is None:
            raw = RawQuerySet(raw_query, model=model, params=params, translations=translations, using=using)
        self._raw = raw

    @property
    def model(self) -> type:
        return self._raw.model

    @property
    def db(self) -> str:
        return self._raw.db

    @property
    def query(self) -> Any:
        return self._raw.query

    def using(self, alias: str) -> VinylRawQuerySet:
        """Run the same SQL on another vinyl alias."""
        return VinylRawQuerySet(raw=self._raw.using(alias))

    def prefetch_related(self, *lookups: Any) -> VinylRawQuerySet:
        """Prefetch relations of the instances, as ``QuerySet.prefetch_related``."""
        return VinylRawQuerySet(raw=self._raw.prefetch_related(*lookups))

    def __await__(self) -> Generator[Any, None, list]:
        return self._fetch().__await__()

    async def _fetch(self) -> list:
        raw = _compat.clone_raw(self._raw)
        return await _bridge.run(raw.db, _evaluate, raw)

    async def __aiter__(self) -> AsyncIterator[Any]:
        # The driver buffers a raw query's rows; instances are built at once
        # so that prefetch_related() can run on them as in Django.
        for obj in await self._fetch():
            yield obj

    def __iter__(self) -> Any:
        raise TypeError("cannot iterate a vinyl raw query synchronously: use `await` or `async for`")

    def __len__(self) -> int:
        raise TypeError("cannot evaluate a vinyl raw query synchronously: use `len(await qs)`")

    def __bool__(self) -> bool:
        raise TypeError("cannot evaluate a vinyl raw query synchronously: use `await qs`")

    def __repr__(self) -> str:
        return f"<VinylRawQuerySet: {self._raw.query}>"


def _evaluate(raw: RawQuerySet) -> list:
    return list(raw)


async def execute(sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, using: str = DEFAULT_ALIAS) -> int:
    """Run one statement; return its row count (rows matched by an UPDATE).

    ::

        n = await vinyl.execute("UPDATE app_book SET pages = %s WHERE id = %s", [10, 1])

    Placeholders are Django's ``%s`` (write a literal ``%`` as ``%%`` when
    there are params). Inside ``vinyl.atomic(using)`` it joins the block's
    transaction; otherwise it commits on its own.
    """
    return await _bridge.run(using, _execute, using, sql, params)


async def fetch(sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *, using: str = DEFAULT_ALIAS) -> list[tuple]:
    """Run a query; return its rows as a list of tuples.

    ::

        rows = await vinyl.fetch("SELECT id, title FROM app_book WHERE pages > %s", [100])

    Values are what the driver returns (no model field conversion).
    """
    return await _bridge.run(using, _fetch, using, sql, params)


def _execute(using: str, sql: str, params: Any) -> int:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _fetch(using: str, sql: str, params: Any) -> list[tuple]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.description is None:
            return []
        return [tuple(row) for row in cursor.fetchall()]


__all__ = ["VinylRawQuerySet", "execute", "fetch"]
