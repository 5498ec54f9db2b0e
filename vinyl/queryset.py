"""``VinylQuerySet``: Django's QuerySet API, awaited.

A ``VinylQuerySet`` holds a Django ``QuerySet`` of the vinyl model class.
Chainable methods return a new ``VinylQuerySet`` and never touch the
database; ``await qs`` and the terminal coroutines run Django's own
implementation on vinyl's connection (see ``vinyl._bridge``).
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncIterator, Generator, Generic, Iterator, TypeVar

from django.db import models
from django.db.models import Prefetch, QuerySet
from django.db.models.query import ModelIterable

from vinyl import _bridge
from vinyl.engine.scope import Scope, active_scope, checkout, close_rows, release

M = TypeVar("M", bound=models.Model)

_SYNC_USE = (
    "cannot evaluate a vinyl QuerySet synchronously: use `await qs` for a list "
    "or `async for obj in qs` to stream it"
)

#: Default rows per fetch when streaming with ``async for``.
DEFAULT_CHUNK_SIZE = 2000


def _unwrap(value: Any) -> Any:
    """Return the Django QuerySet behind a vinyl one (anything else as is)."""
    if isinstance(value, VinylQuerySet):
        return value._qs
    if isinstance(value, Prefetch) and isinstance(value.queryset, VinylQuerySet):
        clone = Prefetch(value.prefetch_through, value.queryset._qs, value.to_attr)
        clone.prefetch_to = value.prefetch_to
        return clone
    return value


class VinylQuerySet(Generic[M]):
    """A lazy, awaitable QuerySet.

    ::

        books = await Book.vinyl.filter(author__name="Ann").order_by("-id")[:10]
        book = await Book.vinyl.get(pk=1)
        async for book in Book.vinyl.all():
            ...
    """

    __slots__ = ("_qs",)

    def __init__(self, model: type[M] | None = None, *, using: str | None = None, queryset: QuerySet | None = None) -> None:
        if queryset is None:
            if model is None:
                raise TypeError("VinylQuerySet() needs a model or a queryset")
            queryset = QuerySet(model=model, using=using)
        self._qs = queryset

    @classmethod
    def _wrap(cls, queryset: QuerySet) -> VinylQuerySet:
        new = cls.__new__(cls)
        new._qs = queryset
        return new

    # What Django reads when a vinyl QuerySet is used as a value
    # (Subquery, Exists, __in lookups, Prefetch).

    @property
    def query(self) -> Any:
        return self._qs.query

    @query.setter
    def query(self, value: Any) -> None:
        self._qs.query = value

    @property
    def model(self) -> type[M]:
        return self._qs.model

    @property
    def db(self) -> str:
        return self._qs.db

    @property
    def ordered(self) -> bool:
        return self._qs.ordered

    @property
    def _iterable_class(self) -> type:
        return self._qs._iterable_class

    def resolve_expression(self, *args: Any, **kwargs: Any) -> Any:
        return self._qs.resolve_expression(*args, **kwargs)

    def _has_filters(self) -> Any:
        return self._qs._has_filters()

    def as_django(self) -> QuerySet:
        """Return the Django QuerySet this one runs (same query, same alias)."""
        return self._qs._chain()

    # Chainable methods --------------------------------------------------

    def _chain(self, method: str, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        args = tuple(_unwrap(a) for a in args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        return self._wrap(getattr(self._qs, method)(*args, **kwargs))

    def all(self) -> VinylQuerySet[M]:
        return self._chain("all")

    def filter(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chain("filter", *args, **kwargs)

    def exclude(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chain("exclude", *args, **kwargs)

    def complex_filter(self, filter_obj: Any) -> VinylQuerySet[M]:
        return self._chain("complex_filter", filter_obj)

    def order_by(self, *fields: Any) -> VinylQuerySet[M]:
        return self._chain("order_by", *fields)

    def reverse(self) -> VinylQuerySet[M]:
        return self._chain("reverse")

    def distinct(self, *fields: str) -> VinylQuerySet[M]:
        return self._chain("distinct", *fields)

    def values(self, *fields: Any, **expressions: Any) -> VinylQuerySet[M]:
        return self._chain("values", *fields, **expressions)

    def values_list(self, *fields: Any, flat: bool = False, named: bool = False) -> VinylQuerySet[M]:
        return self._chain("values_list", *fields, flat=flat, named=named)

    def annotate(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chain("annotate", *args, **kwargs)

    def alias(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chain("alias", *args, **kwargs)

    def select_related(self, *fields: Any) -> VinylQuerySet[M]:
        return self._chain("select_related", *fields)

    def prefetch_related(self, *lookups: Any) -> VinylQuerySet[M]:
        return self._chain("prefetch_related", *lookups)

    def only(self, *fields: str) -> VinylQuerySet[M]:
        return self._chain("only", *fields)

    def defer(self, *fields: Any) -> VinylQuerySet[M]:
        return self._chain("defer", *fields)

    def using(self, alias: str) -> VinylQuerySet[M]:
        return self._chain("using", alias)

    def none(self) -> VinylQuerySet[M]:
        return self._chain("none")

    def select_for_update(self, nowait: bool = False, skip_locked: bool = False, of: tuple = (), no_key: bool = False) -> VinylQuerySet[M]:
        return self._chain("select_for_update", nowait=nowait, skip_locked=skip_locked, of=of, no_key=no_key)

    def union(self, *others: Any, all: bool = False) -> VinylQuerySet[M]:
        return self._chain("union", *others, all=all)

    def intersection(self, *others: Any) -> VinylQuerySet[M]:
        return self._chain("intersection", *others)

    def difference(self, *others: Any) -> VinylQuerySet[M]:
        return self._chain("difference", *others)

    def dates(self, field_name: str, kind: str, order: str = "ASC") -> VinylQuerySet[M]:
        return self._chain("dates", field_name, kind, order=order)

    def datetimes(self, field_name: str, kind: str, order: str = "ASC", tzinfo: Any = None) -> VinylQuerySet[M]:
        return self._chain("datetimes", field_name, kind, order=order, tzinfo=tzinfo)

    # Evaluation -----------------------------------------------------------

    def __await__(self) -> Generator[Any, None, list]:
        return self._fetch().__await__()

    async def _fetch(self) -> list:
        qs = self._qs._chain()
        if qs.query.is_empty():
            return []
        return await _bridge.run(qs.db, _evaluate, qs)

    def __getitem__(self, k: int | slice) -> Any:
        if isinstance(k, slice):
            return self._wrap(self._qs[k])
        if not isinstance(k, int):
            raise TypeError(f"QuerySet indices must be integers or slices, not {type(k).__name__}.")
        return self._item(k)

    async def _item(self, k: int) -> Any:
        qs = self._qs._chain()
        return await _bridge.run(qs.db, qs.__getitem__, k)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.iterator()

    async def iterator(self, chunk_size: int | None = None) -> AsyncIterator[Any]:
        """Stream rows in chunks: ``async for obj in qs.iterator(chunk_size=500)``."""
        if chunk_size is not None and chunk_size <= 0:
            raise ValueError("Chunk size must be strictly positive.")
        size = chunk_size or DEFAULT_CHUNK_SIZE
        qs = self._qs._chain()
        if qs._prefetch_related_lookups and chunk_size is None:
            # As in Django: prefetching needs a chunk size to batch on.
            size = 100
        alias = qs.db
        scope: Scope | None = active_scope(alias)
        if scope is not None:
            # Inside atomic: stream on the block's connection.
            async with aclosing(_stream(scope, qs, size)) as rows:
                async for obj in rows:
                    yield obj
            return
        own = await checkout(alias)
        ok = False
        try:
            async with aclosing(_stream(own, qs, size)) as rows:
                async for obj in rows:
                    yield obj
            ok = True
        finally:
            await release(own, commit=ok)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(_SYNC_USE)

    def __len__(self) -> int:
        raise TypeError(_SYNC_USE)

    def __bool__(self) -> bool:
        raise TypeError(_SYNC_USE)

    def __repr__(self) -> str:
        return f"<VinylQuerySet of {self.model.__name__} on {self.db!r}>"

    def __and__(self, other: VinylQuerySet[M]) -> VinylQuerySet[M]:
        return self._wrap(self._qs & _unwrap(other))

    def __or__(self, other: VinylQuerySet[M]) -> VinylQuerySet[M]:
        return self._wrap(self._qs | _unwrap(other))

    # Terminal coroutines ------------------------------------------------

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        qs = self._qs._chain()
        args = tuple(_unwrap(a) for a in args)
        return await _bridge.run(qs.db, lambda: getattr(qs, method)(*args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> M:
        """Return the one object matching the lookups (DoesNotExist otherwise)."""
        return await self._run("get", *args, **kwargs)

    async def first(self) -> M | None:
        return await self._run("first")

    async def last(self) -> M | None:
        return await self._run("last")

    async def latest(self, *fields: Any) -> M:
        return await self._run("latest", *fields)

    async def earliest(self, *fields: Any) -> M:
        return await self._run("earliest", *fields)

    async def count(self) -> int:
        if self._qs.query.is_empty():
            return 0
        return await self._run("count")

    async def exists(self) -> bool:
        if self._qs.query.is_empty():
            return False
        return await self._run("exists")

    async def contains(self, obj: Any) -> bool:
        return await self._run("contains", obj)

    async def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await self._run("aggregate", *args, **kwargs)

    async def in_bulk(self, id_list: Any = None, *, field_name: str = "pk") -> dict[Any, M]:
        return await self._run("in_bulk", id_list, field_name=field_name)

    async def create(self, **kwargs: Any) -> M:
        """Insert a row and return its instance: ``await Book.vinyl.create(title="x")``."""
        return await self._run("create", **kwargs)

    async def get_or_create(self, defaults: Any = None, **kwargs: Any) -> tuple[M, bool]:
        return await self._run("get_or_create", defaults=defaults, **kwargs)

    async def update_or_create(self, defaults: Any = None, create_defaults: Any = None, **kwargs: Any) -> tuple[M, bool]:
        return await self._run("update_or_create", defaults=defaults, create_defaults=create_defaults, **kwargs)

    async def bulk_create(self, objs: Any, **kwargs: Any) -> list[M]:
        return await self._run("bulk_create", list(objs), **kwargs)

    async def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        return await self._run("bulk_update", list(objs), fields, batch_size=batch_size)

    async def update(self, **kwargs: Any) -> int:
        """Update matching rows; return how many rows matched."""
        return await self._run("update", **kwargs)

    async def delete(self) -> tuple[int, dict[str, int]]:
        """Delete matching rows with their cascades: Django's ``(count, {label: count})``."""
        return await self._run("delete")

    async def explain(self, *, format: str | None = None, **options: Any) -> str:
        return await self._run("explain", format=format, **options)


def _evaluate(qs: QuerySet) -> list:
    qs._fetch_all()
    return qs._result_cache  # type: ignore[return-value]


async def _stream(scope: Scope, qs: QuerySet, size: int) -> AsyncIterator[Any]:
    rows = await scope.run_sync(_start_stream, qs, size)
    try:
        while True:
            batch = await scope.run_sync(_next_batch, rows, size)
            if not batch:
                return
            for obj in batch:
                yield obj
    finally:
        # Close the driver cursor inside the bridge, where it can await
        # (unless the rows ran out or an error already closed it).
        if getattr(rows, "gi_frame", True) is not None:
            await close_rows(scope, rows)


def _start_stream(qs: QuerySet, size: int) -> Iterator[Any]:
    return iter(qs.iterator(chunk_size=size))


def _next_batch(rows: Iterator[Any], size: int) -> list:
    batch = []
    for obj in rows:
        batch.append(obj)
        if len(batch) >= size:
            break
    return batch


__all__ = ["DEFAULT_CHUNK_SIZE", "ModelIterable", "VinylQuerySet"]
