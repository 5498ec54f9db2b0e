"""``VinylManager``: the async entry point declared beside ``objects``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Generic, overload

from django.db import models
from typing_extensions import TypeVar

from vinyl._aliases import QUERYSET_ALIASES, add_async_aliases
from vinyl import routing
from vinyl.models import vinyl_model  # (importing vinyl.models lets vinyl_model build classes)
from vinyl.queryset import VinylQuerySet, no_async_alias

if TYPE_CHECKING:
    from typing import Self

    from vinyl.raw import VinylRawQuerySet

# The model a manager serves; Any until the manager is read from a class
# (``VinylManager()`` needs no annotation: ``Book.vinyl`` knows it is Book's).
M = TypeVar("M", bound=models.Model, default=Any)
_Owner = TypeVar("_Owner", bound=models.Model)


class VinylManager(Generic[M]):
    """Declare beside ``objects`` to query the model asynchronously.

    ::

        class Book(models.Model):
            objects = models.Manager()
            vinyl = VinylManager()

        book = await Book.vinyl.create(title="x")       # typed as Book
        books = await Book.vinyl.filter(title__startswith="x")   # list[Book]

    ``VinylManager(using="vinyl_other")`` binds another vinyl alias; without
    one, each query asks ``DATABASE_ROUTERS`` (see ``vinyl.routing``) and
    runs on ``vinyl_default`` when no router answers.
    """

    def __init__(self, using: str | None = None) -> None:
        self._using = using
        self.name: str | None = None

    def contribute_to_class(self, model: type[models.Model], name: str) -> None:
        # Not a Django manager: Django must never pick it as the default
        # manager for its own sync machinery (admin, related descriptors).
        self.name = name
        setattr(model, name, self)
        from vinyl._syncguard import guard_model

        guard_model(model, name)

    @overload
    def __get__(self, instance: None, owner: type[_Owner]) -> BoundVinylManager[_Owner]: ...
    @overload
    def __get__(self, instance: models.Model, owner: type[_Owner]) -> BoundVinylManager[_Owner]: ...
    def __get__(self, instance: Any, owner: type[_Owner]) -> BoundVinylManager[_Owner]:
        if instance is not None:
            raise AttributeError(
                f"the vinyl manager isn't accessible via {owner.__name__} "
                f"instances: use {owner.__name__}.{self.name}"
            )
        # No alias bound: each query asks the routers (vinyl.routing).
        return BoundVinylManager(vinyl_model(owner), self._using)


class BoundVinylManager(Generic[M]):
    """``Model.vinyl``: QuerySet methods bound to one model and alias.

    Each method starts a new QuerySet: ``Book.vinyl.filter(...)`` is
    ``Book.vinyl.all().filter(...)``.
    """

    __slots__ = ("model", "_using")

    def __init__(self, model: type[M], using: str | None) -> None:
        #: The vinyl model class: every instance vinyl returns is of it.
        self.model = model
        self._using = using

    def get_queryset(self) -> VinylQuerySet[M]:
        return VinylQuerySet(self.model, using=self._using)

    def all(self) -> VinylQuerySet[M]:
        return self.get_queryset()

    def using(self, alias: str) -> VinylQuerySet[M]:
        return VinylQuerySet(self.model, using=alias)

    def db_manager(self, using: str) -> Self:
        return type(self)(self.model, using)

    def raw(self, raw_query: str, params: Any = (), translations: Any = None) -> VinylRawQuerySet:
        from vinyl.raw import VinylRawQuerySet

        using = self._using or routing.db_for_read(self.model)
        return VinylRawQuerySet(self.model, raw_query, params, translations, using)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the manager lacks.
        raise no_async_alias(type(self).__name__, name)

    def __repr__(self) -> str:
        where = repr(self._using) if self._using else "the routers' alias"
        return f"<VinylManager of {self.model.__name__} on {where}>"

    # Chainable methods: a new QuerySet --------------------------------

    def filter(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self.get_queryset().filter(*args, **kwargs)

    def exclude(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self.get_queryset().exclude(*args, **kwargs)

    def complex_filter(self, filter_obj: Any) -> VinylQuerySet[M]:
        return self.get_queryset().complex_filter(filter_obj)

    def order_by(self, *fields: Any) -> VinylQuerySet[M]:
        return self.get_queryset().order_by(*fields)

    def reverse(self) -> VinylQuerySet[M]:
        return self.get_queryset().reverse()

    def distinct(self, *fields: str) -> VinylQuerySet[M]:
        return self.get_queryset().distinct(*fields)

    def values(self, *fields: Any, **expressions: Any) -> VinylQuerySet[Any]:
        return self.get_queryset().values(*fields, **expressions)

    def values_list(self, *fields: Any, flat: bool = False, named: bool = False) -> VinylQuerySet[Any]:
        return self.get_queryset().values_list(*fields, flat=flat, named=named)

    def annotate(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self.get_queryset().annotate(*args, **kwargs)

    def alias(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self.get_queryset().alias(*args, **kwargs)

    def select_related(self, *fields: Any) -> VinylQuerySet[M]:
        return self.get_queryset().select_related(*fields)

    def prefetch_related(self, *lookups: Any) -> VinylQuerySet[M]:
        return self.get_queryset().prefetch_related(*lookups)

    def only(self, *fields: str) -> VinylQuerySet[M]:
        return self.get_queryset().only(*fields)

    def defer(self, *fields: Any) -> VinylQuerySet[M]:
        return self.get_queryset().defer(*fields)

    def none(self) -> VinylQuerySet[M]:
        return self.get_queryset().none()

    def fetch_mode(self, fetch_mode: Any) -> VinylQuerySet[M]:
        return self.get_queryset().fetch_mode(fetch_mode)

    def select_for_update(
        self, nowait: bool = False, skip_locked: bool = False, of: tuple = (), no_key: bool = False
    ) -> VinylQuerySet[M]:
        return self.get_queryset().select_for_update(
            nowait=nowait, skip_locked=skip_locked, of=of, no_key=no_key
        )

    def union(self, *others: Any, all: bool = False) -> VinylQuerySet[M]:
        return self.get_queryset().union(*others, all=all)

    def intersection(self, *others: Any) -> VinylQuerySet[M]:
        return self.get_queryset().intersection(*others)

    def difference(self, *others: Any) -> VinylQuerySet[M]:
        return self.get_queryset().difference(*others)

    def dates(self, field_name: str, kind: str, order: str = "ASC") -> VinylQuerySet[Any]:
        return self.get_queryset().dates(field_name, kind, order=order)

    def datetimes(self, field_name: str, kind: str, order: str = "ASC", tzinfo: Any = None) -> VinylQuerySet[Any]:
        return self.get_queryset().datetimes(field_name, kind, order=order, tzinfo=tzinfo)

    def extra(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self.get_queryset().extra(*args, **kwargs)

    def iterator(self, chunk_size: int | None = None) -> AsyncIterator[M]:
        """Stream every row: ``async for obj in Book.vinyl.iterator(chunk_size=500)``."""
        return self.get_queryset().iterator(chunk_size=chunk_size)

    # Terminal coroutines ----------------------------------------------

    async def get(self, *args: Any, **kwargs: Any) -> M:
        """Return the one object matching the lookups (DoesNotExist otherwise)."""
        return await self.get_queryset().get(*args, **kwargs)

    async def first(self) -> M | None:
        return await self.get_queryset().first()

    async def last(self) -> M | None:
        return await self.get_queryset().last()

    async def latest(self, *fields: Any) -> M:
        return await self.get_queryset().latest(*fields)

    async def earliest(self, *fields: Any) -> M:
        return await self.get_queryset().earliest(*fields)

    async def count(self) -> int:
        return await self.get_queryset().count()

    async def exists(self) -> bool:
        return await self.get_queryset().exists()

    async def contains(self, obj: Any) -> bool:
        return await self.get_queryset().contains(obj)

    async def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await self.get_queryset().aggregate(*args, **kwargs)

    async def in_bulk(self, id_list: Any = None, *, field_name: str = "pk") -> dict[Any, M]:
        return await self.get_queryset().in_bulk(id_list, field_name=field_name)

    async def create(self, **kwargs: Any) -> M:
        """Insert a row and return its instance: ``await Book.vinyl.create(title="x")``."""
        return await self.get_queryset().create(**kwargs)

    async def get_or_create(self, defaults: Any = None, **kwargs: Any) -> tuple[M, bool]:
        return await self.get_queryset().get_or_create(defaults=defaults, **kwargs)

    async def update_or_create(
        self, defaults: Any = None, create_defaults: Any = None, **kwargs: Any
    ) -> tuple[M, bool]:
        return await self.get_queryset().update_or_create(
            defaults=defaults, create_defaults=create_defaults, **kwargs
        )

    async def bulk_create(self, objs: Any, **kwargs: Any) -> list[M]:
        return await self.get_queryset().bulk_create(objs, **kwargs)

    async def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        return await self.get_queryset().bulk_update(objs, fields, batch_size=batch_size)

    async def update(self, **kwargs: Any) -> int:
        """Update every row; return how many rows matched."""
        return await self.get_queryset().update(**kwargs)

    async def delete(self) -> tuple[int, dict[str, int]]:
        """Delete every row with its cascades: Django's ``(count, {label: count})``."""
        return await self.get_queryset().delete()

    async def explain(self, *, format: str | None = None, **options: Any) -> str:
        return await self.get_queryset().explain(format=format, **options)


# Django's async names (aget, acount, acreate...) are the same coroutines.
add_async_aliases(BoundVinylManager, QUERYSET_ALIASES)
