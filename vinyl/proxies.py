"""The QuerySet API of managers, derived from ``VinylQuerySet`` itself.

``Book.vinyl``, ``author.book_set`` and ``bookmark.tags`` offer each public
method of :class:`~vinyl.queryset.VinylQuerySet` but :data:`QUERYSET_ONLY`,
called on the manager's ``get_queryset()``, as Django's managers offer its
QuerySet's (``BaseManager.from_queryset``). The QuerySet class is the one
declaration: a method added to it reaches every manager. A manager defines a
method itself only where it differs (a related manager's ``create`` relates
the new object).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Generic, TypeVar

from django.db import models

from vinyl._aliases import RELATED_ALIASES
from vinyl.queryset import VinylQuerySet

M = TypeVar("M", bound=models.Model)

#: Public methods of ``VinylQuerySet`` that describe or convert one QuerySet:
#: not offered by managers (Django keeps ``as_manager`` and such off them too).
QUERYSET_ONLY = frozenset({"as_django", "resolve_expression"})


def queryset_api() -> dict[str, Callable[..., Any]]:
    """Name -> function of each QuerySet method a manager offers.

    Django's async names (``aget``...) are left out: ``vinyl._aliases``
    makes each the plain method of the manager's own class.
    """
    return {
        name: function
        for name, function in inspect.getmembers(VinylQuerySet, inspect.isfunction)
        if not name.startswith("_") and name not in QUERYSET_ONLY and name not in RELATED_ALIASES
    }


def _proxy(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``manager.name(...)``: ``manager.get_queryset().name(...)``, with the QuerySet method's doc and signature.

    A coroutine the QuerySet marks ``_vinyl_on_managers`` is offered as it
    is: it starts from ``self._queryset()`` itself (one coroutine, not two).
    """
    if getattr(function, "_vinyl_on_managers", False):
        return function

    async def coroutine(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.get_queryset(), name)(*args, **kwargs)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.get_queryset(), name)(*args, **kwargs)

    proxy = coroutine if inspect.iscoroutinefunction(function) else method
    functools.update_wrapper(proxy, function)
    proxy.__qualname__ = f"QuerySetMethods.{name}"
    return proxy


class QuerySetMethods(Generic[M]):
    """Base of the managers: the QuerySet API, each call on ``self.get_queryset()``."""

    __slots__ = ()

    # Does the manager offer what create() reads of a QuerySet (_model, _db,
    # _built, _recipe) as its get_queryset() would? (BoundVinylManager does.)
    _vinyl_fresh: bool = False

    def get_queryset(self) -> VinylQuerySet[M]:
        raise NotImplementedError

    def _queryset(self) -> VinylQuerySet[M]:
        """The QuerySet a shared QuerySet coroutine starts from (see ``_proxy``)."""
        return self.get_queryset()


for _name, _function in queryset_api().items():
    setattr(QuerySetMethods, _name, _proxy(_name, _function))


__all__ = ["QUERYSET_ONLY", "QuerySetMethods", "queryset_api"]
