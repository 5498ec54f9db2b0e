"""``prefetch_related`` of reverse foreign keys without Django's prefetcher.

For ``Author.vinyl.filter(...).prefetch_related("book_set")`` Django runs the
books query and then builds one related queryset per author (two clones
each), in the bridge. Here the main rows and the books come through the plan
cache (``book.author_id IN (...)``), the books are grouped by author in one
pass, and each author gets a lightweight queryset of its books whose filter
is applied only if something chains on it. Anything else (many-to-many,
forward relations, nested lookups, ``Prefetch`` objects, custom default
managers) keeps Django's prefetcher.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Sequence

from django.db import models
from django.db.models.fields.related_descriptors import ManyToManyDescriptor, ReverseManyToOneDescriptor
from django.db.models.query import QuerySet
from django.db.models.sql import Query

from vinyl import _compat
from vinyl._vinylize import VinylModelIterable, vinyl_model
from vinyl.generic import is_generic_relation
from vinyl.translate.gcpause import batched

if TYPE_CHECKING:
    from vinyl.queryset import VinylQuerySet


def reverse_fk_relations(model: type[models.Model], lookups: Sequence[Any]) -> list[Any] | None:
    """The relations (``ManyToOneRel``) of ``lookups`` if vinyl can prefetch them all."""
    relations = []
    for lookup in lookups:
        if not isinstance(lookup, str) or "__" in lookup:
            return None
        descriptor = inspect.getattr_static(model, lookup, None)
        if not isinstance(descriptor, ReverseManyToOneDescriptor) or isinstance(descriptor, ManyToManyDescriptor):
            return None
        if is_generic_relation(descriptor):
            return None  # filtered on a content type too: Django's prefetcher
        rel = descriptor.rel
        related = rel.related_model
        manager = related._default_manager
        if type(manager).get_queryset is not models.Manager.get_queryset or rel.field.remote_field.parent_link:
            return None  # its queryset may filter: Django's prefetcher knows
        if len(rel.field.foreign_related_fields) != 1:
            return None
        relations.append(rel)
    return relations


async def prefetch_reverse_fk(objs: list, relations: list, db: str, queryset: type[VinylQuerySet]) -> None:
    """Load each relation's rows for ``objs`` and cache them as Django does.

    ``queryset`` is the class that reads them (``VinylQuerySet``, which
    calls this: it sits above this module).
    """
    if not objs:
        return
    for rel in relations:
        field = rel.field  # the ForeignKey on the related model
        target = field.target_field.attname
        by_key: dict[Any, list] = {}
        for obj in objs:
            key = getattr(obj, target)
            if key is not None:
                by_key.setdefault(key, [])
        related_model = vinyl_model(rel.related_model)
        if by_key:
            rows = await queryset(related_model, using=db).filter(**{f"{field.attname}__in": list(by_key)})
        else:
            rows = []
        _attach(rows, objs, rel, by_key, related_model, db)


@batched
def _attach(rows: list, objs: list, rel: Any, by_key: dict[Any, list], related_model: type, db: str) -> None:
    """Cache each owner's rows on it, and the owner on each row."""
    field = rel.field
    target = field.target_field.attname
    owners = {getattr(obj, target): obj for obj in objs}
    attname = field.attname
    for row in rows:
        key = getattr(row, attname)
        by_key[key].append(row)
        field.set_cached_value(row, owners[key])
    cache_name = rel.cache_name
    template = _template(related_model, db)
    for obj in objs:
        cache = _compat.prefetched_objects_for_update(obj)
        key = getattr(obj, target)
        cache[cache_name] = _prefetched(template, field, obj, by_key.get(key, []) if key is not None else [])


class PrefetchedQuerySet(QuerySet):
    """The queryset of one owner's prefetched rows.

    Django's related manager would clone its queryset twice per owner; here
    every owner's queryset shares one template and gets its own ``Query``
    (with the filter on the owner, Django's deferred filter) only if code
    chains on it. Iterating it gives the prefetched rows.
    """

    @property
    def query(self) -> Any:
        if _compat.lazy_query(self) is None:
            _compat.set_lazy_query(self, Query(self.model))
        return QuerySet.query.fget(self)

    @query.setter
    def query(self, value: Any) -> None:
        QuerySet.query.fset(self, value)


def _template(model: type, db: str) -> dict:
    qs = PrefetchedQuerySet(model=model, using=db)
    return _compat.prefetched_template(qs, VinylModelIterable)


def _prefetched(template: dict, field: Any, owner: Any, rows: list) -> QuerySet:
    qs = object.__new__(PrefetchedQuerySet)
    known = {field: {getattr(owner, field.target_field.attname): owner}}
    qs.__dict__ = _compat.prefetched_state(template, rows, {field.name: owner}, known)
    return qs
