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
"""

from __future__ import annotations

from typing import Any, Iterable

from django.apps import apps
from django.db import models

from vinyl import _bridge, _compat
from vinyl._vinylize import adopt, origin_model
from vinyl.engine.engines import DEFAULT_ALIAS
from vinyl.models import vinyl_model

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


def _content_types() -> Any:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects


def cached_content_type(alias: str, target: Any, for_concrete_model: bool = True) -> Any:
    """The content type of ``target`` (a model or instance) if the alias's cache has it."""
    model = origin_model(target if isinstance(target, type) else type(target))
    if for_concrete_model:
        model = model._meta.concrete_model
    try:
        # ContentTypeManager has no public "from the cache only" lookup.
        return _compat.content_type_from_cache(_content_types().db_manager(alias), model._meta)
    except KeyError:
        return None


async def load_content_types(alias: str, objs: Iterable[Any], for_concrete_model: bool = True) -> None:
    """Fill the alias's content type cache for the models of ``objs`` (one query)."""
    targets = {origin_model(type(obj) if isinstance(obj, models.Model) else obj) for obj in objs}
    missing = [m for m in targets if cached_content_type(alias, m, for_concrete_model) is None]
    if missing:
        manager = _content_types().db_manager(alias)
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


class VinylGenericForeignKey:
    """``item.content_object`` on a vinyl class: awaited outside the bridge.

    Wraps Django's own accessor (the ``GenericForeignKey`` field itself up to
    Django 6.0, its ``GenericForeignKeyDescriptor`` from 6.1), which still
    answers inside the bridge.
    """

    def __init__(self, original: Any) -> None:
        self.original = original
        self.field = getattr(original, "field", original)

    @property
    def name(self) -> str:
        return self.field.name

    def is_cached(self, instance: Any) -> bool:
        return self.field.is_cached(instance)

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        if _bridge.in_bridge():
            return self.original.__get__(instance, cls)
        from vinyl.descriptors import Fetch

        return Fetch(f"{type(instance).__name__}.{self.name}", _fetch_generic, self.field, instance)

    def __set__(self, instance: Any, value: Any) -> None:
        field = self.field
        pending = instance.__dict__.get(PENDING)
        if pending:
            pending.pop(field.name, None)
        ct = None
        if value is not None:
            alias = bound_alias() if _bridge.in_bridge() else None
            alias = alias or _alias_of(instance, value)
            if _bridge.in_bridge():
                ct = _content_types().db_manager(alias).get_for_model(value, for_concrete_model=field.for_concrete_model)
            else:
                ct = cached_content_type(alias, value, field.for_concrete_model)
                if ct is None:
                    # No query outside await: save() completes the assignment.
                    instance.__dict__.setdefault(PENDING, {})[field.name] = value
        if ct is not None or value is None:
            setattr(instance, field.ct_field, ct)
        setattr(instance, field.fk_field, value.pk if value is not None else None)
        field.set_cached_value(instance, value)

    def get_prefetch_querysets(self, instances: Any, querysets: Any = None) -> Any:
        # Django's own reads each content type's rows on the default alias
        # (ContentType.get_all_objects_for_this_type): here they are read on
        # the bound vinyl alias, one query per content type, as vinyl rows.
        from vinyl._vinylize import as_vinyl_queryset

        field = self.field
        alias = bound_alias() or DEFAULT_ALIAS
        types = _content_types().db_manager(alias)
        custom = {}
        for queryset in querysets or ():
            queryset = getattr(queryset, "_qs", queryset)
            ct = types.get_for_model(origin_model(queryset.query.model), for_concrete_model=field.for_concrete_model)
            if ct.pk in custom:
                raise ValueError("Only one queryset is allowed for each content type.")
            custom[ct.pk] = queryset
        ct_attname = field.model._meta.get_field(field.ct_field).attname
        wanted: dict[Any, set] = {}
        for instance in instances:
            ct_id = getattr(instance, ct_attname)
            key = getattr(instance, field.fk_field)
            if ct_id is not None and key is not None:
                wanted.setdefault(ct_id, set()).add(key)
        rows: list = []
        for ct_id, keys in wanted.items():
            if ct_id in custom:
                queryset = custom[ct_id]
            else:
                model = types.get_for_id(ct_id).model_class()
                if model is None:
                    continue
                queryset = model._base_manager.all()
            rows.extend(adopt(row) for row in as_vinyl_queryset(queryset.using(alias).filter(pk__in=keys)))

        def owner_key(obj: Any) -> Any:
            ct_id = getattr(obj, ct_attname)
            model = types.get_for_id(ct_id).model_class() if ct_id is not None else None
            if model is None:
                return None
            return model._meta.pk.to_python(getattr(obj, field.fk_field)), model

        return rows, lambda obj: (obj.pk, origin_model(type(obj))), owner_key, True, field.name, False


def _alias_of(instance: Any, value: Any) -> str:
    for candidate in (instance._state.db, getattr(value, "_state", None) and value._state.db):
        if candidate and str(_settings(candidate).get("ENGINE", "")).startswith("vinyl."):
            return candidate
    return DEFAULT_ALIAS


def _settings(alias: str) -> dict:
    from django.db import connections

    return connections.settings.get(alias) or {}


async def _fetch_generic(field: Any, instance: Any) -> Any:
    ct_id = getattr(instance, instance._meta.get_field(field.ct_field).attname)
    pk = getattr(instance, field.fk_field)
    if ct_id is None or pk is None:
        return None
    alias = instance._state.db or DEFAULT_ALIAS
    manager = _content_types().db_manager(alias)
    ct = await _bridge.run(alias, lambda: manager.get_for_id(ct_id), readonly=True)
    model = ct.model_class()
    if model is None:
        return None  # a content type of a model that is gone
    try:
        return await vinyl_model(model).vinyl_queryset(alias).get(pk=pk)
    except model.DoesNotExist:
        return None


__all__ = [
    "VinylGenericForeignKey",
    "cached_content_type",
    "is_generic_foreign_key",
    "is_generic_relation",
    "load_content_types",
    "VinylGenericRelatedManager",
]


class VinylGenericRelatedManager:
    """``bookmark.tags`` of a ``GenericRelation``: QuerySet methods and awaited writes.

    The QuerySets filter on the content type by id once it is cached, else by
    its app label and model name (a join), so building one never queries.
    Writes (``create``, ``add``, ``remove``, ``clear``, ``set``...) run Django's
    generic manager in the bridge, as one operation.
    """

    def __init__(self, descriptor: Any, instance: Any) -> None:
        self._descriptor = descriptor
        self.instance = instance

    @property
    def _field(self) -> Any:
        return self._descriptor.field  # the GenericRelation

    @property
    def model(self) -> type:
        return vinyl_model(self._field.related_model)

    def _alias(self) -> str:
        state = self.instance._state
        if state.db is None:
            state.db = DEFAULT_ALIAS
        return state.db

    def get_queryset(self) -> Any:
        """A fresh query for the related objects (never a prefetched cache)."""
        from vinyl.queryset import VinylQuerySet

        field = self._field
        alias = self._alias()
        ct_field = field.content_type_field_name
        ct = cached_content_type(alias, self.instance, field.for_concrete_model)
        owner = origin_model(type(self.instance))
        if field.for_concrete_model:
            owner = owner._meta.concrete_model
        if ct is not None:
            lookups: dict[str, Any] = {f"{ct_field}__pk": ct.pk}
        else:
            lookups = {f"{ct_field}__app_label": owner._meta.app_label, f"{ct_field}__model": owner._meta.model_name}
        lookups[field.object_id_field_name] = self.instance.pk
        return VinylQuerySet(self.model, using=alias).filter(**lookups)

    def __getattr__(self, name: str) -> Any:
        from vinyl._aliases import RELATED_ALIASES
        from vinyl.related import _QUERYSET_METHODS

        name = RELATED_ALIASES.get(name, name)
        if name in _QUERYSET_METHODS:
            return getattr(self.get_queryset(), name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<VinylGenericRelatedManager of {self._field.related_model.__name__} for {self.instance!r}>"

    async def _write(self, method: str, objs: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        from vinyl.related import _adopted

        objs = list(objs)
        alias = self._alias()
        await load_content_types(alias, [self.instance], self._field.for_concrete_model)

        def call() -> Any:
            manager = self._descriptor.vinyl_manager_class(self.instance)
            with _adopted(objs, alias):
                return getattr(manager, method)(*args, **kwargs)

        return await _bridge.run(alias, call)

    async def create(self, **kwargs: Any) -> Any:
        """Create a related object pointing at this instance."""
        return await self._write("create", (), **kwargs)

    async def get_or_create(self, **kwargs: Any) -> Any:
        return await self._write("get_or_create", (), **kwargs)

    async def update_or_create(self, **kwargs: Any) -> Any:
        return await self._write("update_or_create", (), **kwargs)

    async def add(self, *objs: Any, bulk: bool = True) -> None:
        """Point ``objs`` at this instance (saved with an UPDATE, or one by one with ``bulk=False``)."""
        await self._write("add", objs, *objs, bulk=bulk)

    async def remove(self, *objs: Any, bulk: bool = True) -> None:
        """Delete ``objs`` (a generic relation's objects cannot exist unrelated)."""
        await self._write("remove", objs, *objs, bulk=bulk)

    async def clear(self, *, bulk: bool = True) -> None:
        await self._write("clear", (), bulk=bulk)

    async def set(self, objs: Iterable[Any], *, bulk: bool = True, clear: bool = False) -> None:
        """Make the related set exactly ``objs``, in one transaction."""
        from vinyl.queryset import VinylQuerySet

        if isinstance(objs, VinylQuerySet):
            objs = await objs
        objs = list(objs)
        await self._write("set", objs, objs, bulk=bulk, clear=clear)


def _add_aliases() -> None:
    from vinyl._aliases import RELATED_ALIASES, add_async_aliases

    add_async_aliases(VinylGenericRelatedManager, RELATED_ALIASES)


_add_aliases()
