"""Django's async method names as aliases of vinyl's coroutines.

Django names the async form of each query method with an ``a`` prefix
(``aget``, ``acount``, ``asave``, ``aadd``...). vinyl's methods are coroutines
under the plain names, which stay the documented ones; the prefixed names are
the same functions, so Django's async shortcuts (``aget_object_or_404`` calls
``aget``) and code written for ``Model.objects.a*`` run on ``Model.vinyl``::

    book = await Book.vinyl.aget(pk=1)          # is `await Book.vinyl.get(pk=1)`
    await book.asave(update_fields=["title"])   # is `await book.save(...)`

The table below is the one list; :func:`add_async_aliases` applies it to the
manager, QuerySet, related manager and instance classes.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T", bound=type)

#: Django's async name -> vinyl's coroutine (QuerySets and managers). (``aiterator`` is a method of its own:
#: Django's has another default chunk size than its ``iterator()``, and prefetches without one.)
QUERYSET_ALIASES: dict[str, str] = {
    "aaggregate": "aggregate",
    "abulk_create": "bulk_create",
    "abulk_update": "bulk_update",
    "acontains": "contains",
    "acount": "count",
    "acreate": "create",
    "adelete": "delete",
    "aearliest": "earliest",
    "aexists": "exists",
    "aexplain": "explain",
    "afirst": "first",
    "aget": "get",
    "aget_or_create": "get_or_create",
    "ain_bulk": "in_bulk",
    "alast": "last",
    "alatest": "latest",
    "aupdate": "update",
    "aupdate_or_create": "update_or_create",
}

#: Related managers add their writes (``author.book_set.aadd(book)``).
RELATED_ALIASES: dict[str, str] = {
    **QUERYSET_ALIASES,
    "aadd": "add",
    "aclear": "clear",
    "aremove": "remove",
    "aset": "set",
}

#: Model instances (``await obj.asave()``).
INSTANCE_ALIASES: dict[str, str] = {
    "adelete": "delete",
    "arefresh_from_db": "refresh_from_db",
    "asave": "save",
}


def add_async_aliases(cls: T, aliases: dict[str, str]) -> T:
    """Give ``cls`` each alias of ``aliases`` whose plain method it defines.

    The alias is the method object itself (``cls.aget is cls.get``); a
    subclass that overrides a plain method applies the aliases again.
    """
    for alias, plain in aliases.items():
        if alias in cls.__dict__:
            continue
        for klass in cls.__mro__:
            if plain in klass.__dict__:
                setattr(cls, alias, klass.__dict__[plain])
                break
    return cls


__all__ = ["INSTANCE_ALIASES", "QUERYSET_ALIASES", "RELATED_ALIASES", "add_async_aliases"]
