"""``VinylManager``: the async entry point declared beside ``objects``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from django.db import models

from vinyl.engine.engines import DEFAULT_ALIAS
from vinyl.models import vinyl_model
from vinyl.queryset import VinylQuerySet, no_async_alias

if TYPE_CHECKING:
    from typing import Self

M = TypeVar("M", bound=models.Model)

# Methods that start a QuerySet: ``Book.vinyl.filter(...)`` is
# ``Book.vinyl.all().filter(...)``.
_PROXIED = (
    "filter", "exclude", "complex_filter", "order_by", "reverse", "distinct",
    "values", "values_list", "annotate", "alias", "select_related",
    "prefetch_related", "only", "defer", "none", "select_for_update", "union",
    "intersection", "difference", "dates", "datetimes", "get", "first", "last",
    "latest", "earliest", "count", "exists", "contains", "aggregate", "in_bulk",
    "create", "get_or_create", "update_or_create", "bulk_create", "bulk_update",
    "update", "delete", "explain", "iterator", "extra",
)  # fmt: skip


class VinylManager(Generic[M]):
    """Declare beside ``objects`` to query the model asynchronously.

    ::

        class Book(models.Model):
            objects = models.Manager()
            vinyl = VinylManager()

        book = await Book.vinyl.create(title="x")
        books = await Book.vinyl.filter(title__startswith="x")

    ``VinylManager(using="vinyl_other")`` binds another vinyl alias.
    """

    def __init__(self, using: str | None = None) -> None:
        self._using = using
        self.name: str | None = None

    def contribute_to_class(self, model: type[models.Model], name: str) -> None:
        # Not a Django manager: Django must never pick it as the default
        # manager for its own sync machinery (admin, related descriptors).
        self.name = name
        setattr(model, name, self)

    @overload
    def __get__(self, instance: None, owner: type[M]) -> BoundVinylManager[M]: ...
    @overload
    def __get__(self, instance: M, owner: type[M]) -> BoundVinylManager[M]: ...
    def __get__(self, instance: Any, owner: type[M]) -> BoundVinylManager[M]:
        if instance is not None:
            raise AttributeError(
                f"the vinyl manager isn't accessible via {owner.__name__} "
                f"instances: use {owner.__name__}.{self.name}"
            )
        return BoundVinylManager(vinyl_model(owner), self._using or DEFAULT_ALIAS)


class BoundVinylManager(Generic[M]):
    """``Model.vinyl``: QuerySet methods bound to one model and alias."""

    __slots__ = ("model", "_using")

    def __init__(self, model: type[M], using: str) -> None:
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

    def raw(self, raw_query: str, params: Any = (), translations: Any = None) -> Any:
        from vinyl.raw import VinylRawQuerySet

        return VinylRawQuerySet(self.model, raw_query, params, translations, self._using)

    def __getattr__(self, name: str) -> Any:
        if name in _PROXIED:
            return getattr(self.get_queryset(), name)
        raise no_async_alias(type(self).__name__, name)

    def __repr__(self) -> str:
        return f"<VinylManager of {self.model.__name__} on {self._using!r}>"
