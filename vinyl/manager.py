"""``VinylManager``: the async entry point declared beside ``objects``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, overload

from django.db import models
from typing_extensions import TypeVar

from vinyl._aliases import QUERYSET_ALIASES, add_async_aliases
from vinyl import models as _models  # noqa: F401 (importing it lets vinyl_model build classes)
from vinyl._vinylize import vinyl_model
from vinyl.proxies import QuerySetMethods
from vinyl.queryset import VinylQuerySet
from vinyl.translate.recipes import EMPTY

if TYPE_CHECKING:
    from typing import Self

    # Type checkers see the QuerySet's methods on the manager, typed by its
    # model; at run time they are vinyl.proxies' (the same names).
    _QuerySetAPI = VinylQuerySet
else:
    _QuerySetAPI = QuerySetMethods

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
        # owner class -> its bound manager (immutable: made once per class).
        self._bound: dict[type, BoundVinylManager] = {}

    def contribute_to_class(self, model: type[models.Model], name: str) -> None:
        # Not a Django manager: Django must never pick it as the default
        # manager for its own sync machinery (admin, related descriptors).
        self.name = name
        setattr(model, name, self)
        from vinyl import construct
        from vinyl._syncguard import guard_model

        guard_model(model, name)
        construct.install(model)

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
        bound = self._bound.get(owner)
        if bound is None:
            bound = self._bound[owner] = BoundVinylManager(vinyl_model(owner), self._using)
        return bound


class BoundVinylManager(_QuerySetAPI[M]):
    """``Model.vinyl``: QuerySet methods bound to one model and alias.

    Each method of ``VinylQuerySet`` (see ``vinyl.proxies``) starts a new
    QuerySet: ``Book.vinyl.filter(...)`` is ``Book.vinyl.all().filter(...)``.
    """

    __slots__ = ("_model", "_db")

    # What create() and a first chained call read of a QuerySet, as this
    # manager's fresh one has it (see VinylQuerySet._start): they run
    # without making it.
    _vinyl_fresh = True
    _built = None
    _recipe = EMPTY
    _steps = ()
    _values = ()

    def __init__(self, model: type[M], using: str | None) -> None:
        self._model = model
        self._db = using

    @property
    def model(self) -> type[M]:
        """The vinyl model class: every instance vinyl returns is of it."""
        return self._model

    def get_queryset(self) -> VinylQuerySet[M]:
        return VinylQuerySet._fresh(self._model, self._db)

    # The usual first calls, written here rather than through vinyl.proxies
    # (its frame, getattr and get_queryset()'s frame on every statement):
    # ``Book.vinyl.filter(...)`` and the coroutines that start from
    # ``_queryset()`` (get, count, create...), which is get_queryset itself.
    _queryset = get_queryset

    @property
    def _qs(self) -> Any:
        """The Django QuerySet of the fresh QuerySet (a first call Django must build)."""
        return VinylQuerySet._fresh(self._model, self._db)._qs

    def filter(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        # (The manager read as its fresh QuerySet: _chained makes the new one.)
        return VinylQuerySet._chained(self, "filter", args, kwargs)

    def all(self) -> VinylQuerySet[M]:
        return self.get_queryset()

    def using(self, alias: str) -> VinylQuerySet[M]:
        return VinylQuerySet(self._model, using=alias)

    def db_manager(self, using: str) -> Self:
        return type(self)(self._model, using)

    def __repr__(self) -> str:
        where = repr(self._db) if self._db else "the routers' alias"
        return f"<VinylManager of {self._model.__name__} on {where}>"


# Django's async names (aget, acount, acreate...) are the same coroutines.
add_async_aliases(BoundVinylManager, QUERYSET_ALIASES)
