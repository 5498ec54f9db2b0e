"""The vinyl model classes, and Django's own machinery handing out their instances.

``vinyl_model(Book)`` is the vinyl class of ``Book`` (see ``vinyl.models``,
which builds it: the modules below it in the ORM layer only look it up).
Querysets built by Django's relation code (related managers, prefetching,
the deletion collector) are querysets of the user's model; ``as_vinyl_queryset``
turns one into the same query on the vinyl model class, and
``VinylModelIterable`` gives the objects joined by ``select_related`` the vinyl
class too, so item access and ``await`` work at every level of a result.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator, TypeVar

from django.db import models
from django.db.models.query import ModelIterable, QuerySet

from vinyl._compat import chain, iterable_class, set_iterable_class

Q = TypeVar("Q", bound=QuerySet)
M = TypeVar("M", bound=models.Model)

_classes: dict[type, type] = {}
_lock = threading.Lock()
_builder: Callable[[type], type] | None = None


def set_builder(build: Callable[[type], type]) -> None:
    """Name the function that builds a vinyl class (``vinyl.models`` does, on import)."""
    global _builder
    _builder = build


def vinyl_model(model: type[M]) -> type[M]:
    """Return the vinyl model class of ``model`` (itself if already vinyl)."""
    cls = _classes.get(model)  # the usual case, first: no attribute lookups
    if cls is not None:
        return cls
    if getattr(model, "_vinyl_origin", None) is not None and model.__dict__.get("_vinyl_class"):
        return model
    if _builder is None:
        raise RuntimeError("vinyl model classes are built by vinyl.models: import vinyl first")
    with _lock:
        cls = _classes.get(model)
        if cls is None:
            cls = _classes[model] = _builder(model)
    return cls


def is_vinyl_model(model: type) -> bool:
    return bool(model.__dict__.get("_vinyl_class"))


def origin_model(model: type[models.Model]) -> type[models.Model]:
    """Return the user's model class behind a vinyl class (else ``model``)."""
    return model.__dict__.get("_vinyl_origin") or model


def adopt(obj: Any) -> Any:
    """Give a freshly built instance of a user's model its vinyl class.

    The vinyl class is a proxy of the model with no state of its own, so the
    instance keeps its fields and cache unchanged.
    """
    if isinstance(obj, models.Model) and not is_vinyl_model(type(obj)):
        if not type(obj)._meta.abstract:
            obj.__class__ = vinyl_model(type(obj))
    return obj


def adopt_related(obj: Any, seen: set[int] | None = None) -> None:
    """Adopt the objects that ``select_related`` cached on ``obj``, recursively."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for related in obj._state.fields_cache.values():
        if related is not None:
            adopt(related)
            adopt_related(related, seen)


class VinylModelIterable(ModelIterable):
    """Django's ``ModelIterable``, with joined related objects adopted too."""

    def __iter__(self) -> Iterator[Any]:
        joined = bool(self.queryset.query.select_related)
        for obj in super().__iter__():
            if joined:
                adopt_related(obj)
            yield obj


def as_vinyl_queryset(queryset: Q) -> Q:
    """Return ``queryset`` as the same query on the vinyl model class."""
    model = vinyl_model(queryset.model)
    if queryset.model is model and iterable_class(queryset) is not ModelIterable:
        return queryset
    clone = chain(queryset)
    clone.model = model
    clone.query.model = model
    if iterable_class(clone) is ModelIterable:
        set_iterable_class(clone, VinylModelIterable)
    return clone


def as_vinyl_querysets(querysets: Iterable[QuerySet] | None) -> list[QuerySet] | None:
    """Convert the querysets that Django passes to ``get_prefetch_querysets``."""
    if not querysets:
        return querysets  # type: ignore[return-value]
    return [as_vinyl_queryset(getattr(qs, "_qs", qs)) for qs in querysets]
