"""Generic relations (``django.contrib.contenttypes``) on vinyl instances.

::

    item = await TaggedItem.vinyl.create(tag="x", content_object=bookmark)
    target = await item.content_object          # a query, every time (None if gone)
    item.content_object = note                  # as in Django
    await item.save()

    tags = await bookmark.tags.filter(tag__startswith="x")   # GenericRelation
    await bookmark.tags.add(item)
    items = await TaggedItem.vinyl.prefetch_related("content_object")
    items[0]["content_object"]                  # item access, no query

Content types come from Django's ``ContentType`` cache of the vinyl alias,
which vinyl fills in the bridge (one query per model, then none): assigning
``content_object`` outside a query needs the target's content type, so when
it is not cached yet the assignment is completed by the next ``save()``.

This module holds the content type helpers; the accessor of
``content_object`` is ``vinyl.descriptors.VinylGenericForeignKey``, the
manager of a ``GenericRelation`` ``vinyl.related.VinylGenericRelatedManager``.
"""

from __future__ import annotations

from typing import Any, Iterable

from django.apps import apps
from django.db import models

from vinyl import _bridge, _compat
from vinyl._vinylize import origin_model

#: Set on an instance whose ``content_object`` awaits its content type.
PENDING = "_vinyl_pending_generic"


def installed() -> bool:
    return apps.is_installed("django.contrib.contenttypes")


def is_generic_foreign_key(descriptor: Any) -> bool:
    """Is ``descriptor`` Django's accessor of a ``GenericForeignKey``?"""
    if not installed():
        return False
    from django.contrib.contenttypes import fields

    # The field is its own accessor up to Django 6.0; 6.1 has a descriptor class.
    kinds = tuple(k for k in (fields.GenericForeignKey, getattr(fields, "GenericForeignKeyDescriptor", None)) if k)
    return isinstance(descriptor, kinds)


def is_generic_relation(descriptor: Any) -> bool:
    if not installed():
        return False
    from django.contrib.contenttypes.fields import ReverseGenericManyToOneDescriptor

    return isinstance(descriptor, ReverseGenericManyToOneDescriptor)


def content_types() -> Any:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects


def cached_content_type(alias: str, target: Any, for_concrete_model: bool = True) -> Any:
    """The content type of ``target`` (a model or instance) if the alias's cache has it."""
    model = origin_model(target if isinstance(target, type) else type(target))
    if for_concrete_model:
        model = model._meta.concrete_model
    try:
        # ContentTypeManager has no public "from the cache only" lookup.
        return _compat.content_type_from_cache(content_types().db_manager(alias), model._meta)
    except KeyError:
        return None


async def load_content_types(alias: str, objs: Iterable[Any], for_concrete_model: bool = True) -> None:
    """Fill the alias's content type cache for the models of ``objs`` (one query)."""
    targets = {origin_model(type(obj) if isinstance(obj, models.Model) else obj) for obj in objs}
    missing = [m for m in targets if cached_content_type(alias, m, for_concrete_model) is None]
    if missing:
        manager = content_types().db_manager(alias)
        await _bridge.run(alias, lambda: manager.get_for_models(*missing, for_concrete_models=for_concrete_model))


def bound_alias() -> str | None:
    """The vinyl alias the sync code in the bridge runs on."""
    from vinyl.engine.scope import _bound  # the bridge's own record of it

    bound = _bound.get()
    return next(iter(bound)) if bound else None


async def prepare_create(model: type[models.Model], alias: str, kwargs: dict) -> None:
    """Before ``create(content_object=x)``: have x's content type cached."""
    if not model._meta.private_fields or not installed():
        return
    from django.contrib.contenttypes.fields import GenericForeignKey

    for field in model._meta.private_fields:
        if isinstance(field, GenericForeignKey) and kwargs.get(field.name) is not None:
            await load_content_types(alias, [kwargs[field.name]], field.for_concrete_model)


def resolve_pending(instance: Any) -> None:
    """Complete ``content_object`` assignments made before the content type was known (bridge)."""
    pending = instance.__dict__.pop(PENDING, None)
    for name, value in (pending or {}).items():
        setattr(instance, name, value)


__all__ = [
    "bound_alias",
    "cached_content_type",
    "content_types",
    "installed",
    "is_generic_foreign_key",
    "is_generic_relation",
    "load_content_types",
    "prepare_create",
    "resolve_pending",
]
