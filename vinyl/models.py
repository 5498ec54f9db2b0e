"""The vinyl model class of a Django model: same table, async instance API.

``vinyl_model(Book)`` is a proxy of ``Book`` (so ``isinstance(obj, Book)``
holds) registered in a private app registry, so migrations and system checks
never see it. On its instances:

- ``await obj.save()``, ``await obj.delete()``, ``await obj.refresh_from_db()``;
- ``await obj.author`` queries the related row every time; ``obj["author"]``
  reads what ``select_related`` / ``prefetch_related`` loaded;
- reading a field left out by ``only()`` / ``defer()`` raises instead of
  querying behind the caller's back.

Inside the bridge (Django's own sync code running on vinyl's connection) the
same methods and descriptors behave exactly like Django's.
"""

from __future__ import annotations

import copy
import inspect
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from django.apps.registry import Apps
from django.db import models, transaction
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_save, pre_save

from vinyl import _bridge
from vinyl.engine.engines import DEFAULT_ALIAS
from vinyl.exceptions import DeferredFieldError, RelationNotLoaded

if TYPE_CHECKING:
    from vinyl.queryset import VinylQuerySet

M = TypeVar("M", bound=models.Model)

# Vinyl classes live here, away from the project's registry: no migrations,
# no system checks, no clash with the user's model names.
_registry = Apps(installed_apps=())
_classes: dict[type, type] = {}
_lock = threading.Lock()


def vinyl_model(model: type[M]) -> type[M]:
    """Return the vinyl model class of ``model`` (itself if already vinyl)."""
    if getattr(model, "_vinyl_origin", None) is not None and model.__dict__.get("_vinyl_class"):
        return model
    cls = _classes.get(model)
    if cls is None:
        with _lock:
            cls = _classes.get(model)
            if cls is None:
                cls = _classes[model] = _build(model)
    return cls


def is_vinyl_model(model: type) -> bool:
    return bool(model.__dict__.get("_vinyl_class"))


def _build(model: type[M]) -> type[M]:
    if model._meta.abstract:
        raise TypeError(
            f"{model.__name__} is abstract: use VinylManager on a concrete model"
        )
    meta = type(
        "Meta",
        (),
        {"proxy": True, "app_label": model._meta.app_label, "apps": _registry},
    )
    attrs: dict[str, Any] = {
        "__module__": model.__module__,
        "__qualname__": model.__qualname__,
        "Meta": meta,
        "_vinyl_origin": model,
        "_vinyl_class": True,
    }
    cls = type(model)(model.__name__, (VinylInstance, model), attrs)
    _install_descriptors(cls, model)
    return cls


# -- descriptors ------------------------------------------------------------

_descriptor_classes: dict[tuple[type, type], type] = {}


def _vinyl_descriptor(original: Any, mixin: type) -> Any:
    """Copy a Django descriptor into a subclass of its type with ``mixin``."""
    key = (type(original), mixin)
    kind = _descriptor_classes.get(key)
    if kind is None:
        kind = _descriptor_classes[key] = type(
            "Vinyl" + type(original).__name__, (mixin, type(original)), {}
        )
    clone = copy.copy(original)
    clone.__class__ = kind
    return clone


class _NoLazyField:
    """A field descriptor that never queries for a deferred value."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.field.attname]
        except KeyError:
            pass
        if _bridge.in_bridge():
            return super().__get__(instance, cls)
        value = self._check_parent_chain(instance)
        if value is None:
            name = self.field.attname
            raise DeferredFieldError(
                f"{type(instance).__name__}.{name} was not loaded (only()/defer()): "
                f"`await obj.refresh_from_db(fields=[{name!r}])` loads it"
            )
        return value


class _AwaitedForward:
    """``await book.author``: a query every time, None for a null key."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None or _bridge.in_bridge():
            return super().__get__(instance, cls)
        return _fetch_forward(self.field, instance)


async def _fetch_forward(field: Any, instance: Any) -> Any:
    lookups = {}
    for local, remote in field.related_fields:
        value = getattr(instance, local.attname)
        if value is None:
            return None
        lookups[remote.attname] = value
    related = vinyl_model(field.remote_field.model)
    using = instance._state.db or DEFAULT_ALIAS
    return await related.vinyl_queryset(using).get(**lookups)


class _AwaitedReverseOne:
    """``await author.profile``: the reverse one-to-one row, or DoesNotExist."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None or _bridge.in_bridge():
            return super().__get__(instance, cls)
        return _fetch_reverse_one(self, instance)


async def _fetch_reverse_one(descriptor: Any, instance: Any) -> Any:
    related = descriptor.related
    model = vinyl_model(related.related_model)
    using = instance._state.db or DEFAULT_ALIAS
    try:
        return await model.vinyl_queryset(using).get(**{related.field.name: instance.pk})
    except related.related_model.DoesNotExist:
        raise descriptor.RelatedObjectDoesNotExist(
            f"{type(instance).__name__} has no {related.accessor_name}."
        ) from None


def _install_descriptors(cls: type, model: type) -> None:
    for field in model._meta.concrete_fields:
        original = inspect.getattr_static(model, field.attname, None)
        if isinstance(original, DeferredAttribute):
            setattr(cls, field.attname, _vinyl_descriptor(original, _NoLazyField))
    for field in model._meta.get_fields(include_hidden=True):
        if field.is_relation and field.concrete and (field.many_to_one or field.one_to_one):
            original = inspect.getattr_static(model, field.name, None)
            if isinstance(original, ForwardManyToOneDescriptor):
                setattr(cls, field.name, _vinyl_descriptor(original, _AwaitedForward))
        elif field.is_relation and not field.concrete and field.one_to_one:
            accessor = field.get_accessor_name()
            original = inspect.getattr_static(model, accessor, None) if accessor else None
            if isinstance(original, ReverseOneToOneDescriptor):
                setattr(cls, accessor, _vinyl_descriptor(original, _AwaitedReverseOne))


# -- instances --------------------------------------------------------------


class VinylInstance:
    """Async persistence and item access for instances of vinyl models."""

    _vinyl_origin: type[models.Model]
    _meta: Any
    _state: Any
    pk: Any

    @classmethod
    def vinyl_queryset(cls, using: str | None = None) -> VinylQuerySet:
        from vinyl.queryset import VinylQuerySet

        return VinylQuerySet(cls, using=using or DEFAULT_ALIAS)

    def _vinyl_alias(self, using: str | None) -> str:
        return using or self._state.db or DEFAULT_ALIAS

    # save -------------------------------------------------------------

    def save(self, *args: Any, **kwargs: Any) -> Any:
        """Update this row: ``await obj.save(update_fields=[...])``.

        Inserts go through ``await Model.vinyl.create(...)``.
        """
        if _bridge.in_bridge():
            return super().save(*args, **kwargs)  # type: ignore[misc]
        return self._save(*args, **kwargs)

    async def _save(
        self,
        *,
        using: str | None = None,
        update_fields: Any = None,
        force_update: bool = True,
    ) -> None:
        if self._state.adding or self.pk is None:
            raise ValueError(
                f"cannot save() an unsaved {type(self).__name__}: vinyl's save() "
                f"only updates; insert it with `await "
                f"{self._vinyl_origin.__name__}.vinyl.create(...)`"
            )
        alias = self._vinyl_alias(using)
        parent_save = super().save  # type: ignore[misc]

        def save_and_reload() -> None:
            expressions = [k for k, v in self.__dict__.items() if hasattr(v, "resolve_expression")]
            parent_save(using=alias, update_fields=update_fields, force_update=force_update)
            # Django 6 reads fields saved as expressions back with RETURNING
            # where it can; elsewhere it defers them, to load on next access.
            # vinyl never loads on access: load them now, in this operation.
            stale = [name for name in expressions if name not in self.__dict__]
            if stale:
                self.refresh_from_db(using=alias, fields=stale)

        await _bridge.run(alias, save_and_reload)

    def save_base(
        self,
        raw: bool = False,
        force_insert: Any = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Any = None,
    ) -> None:
        # Django's save_base sends its signals with Signal.send, which cannot
        # await async receivers here; this one awaits them, with the user's
        # model as sender, then writes the rows the way save_base does.
        using = using or self._state.db or DEFAULT_ALIAS
        concrete = self._meta.concrete_model
        signals = not concrete._meta.auto_created
        if signals:
            _bridge.await_(
                pre_save.asend(
                    sender=self._vinyl_origin,
                    instance=self,
                    raw=raw,
                    using=using,
                    update_fields=update_fields,
                )
            )
        if concrete._meta.parents:
            guard = transaction.atomic(using=using, savepoint=False)
        else:
            guard = transaction.mark_for_rollback_on_error(using=using)
        with guard:
            parent_inserted = False
            if not raw:
                force_insert = self._validate_force_insert(force_insert)
                parent_inserted = self._save_parents(concrete, using, update_fields, force_insert)
            updated = self._save_table(
                raw, concrete, force_insert or parent_inserted, force_update, using, update_fields
            )
        self._state.db = using
        self._state.adding = False
        if signals:
            _bridge.await_(
                post_save.asend(
                    sender=self._vinyl_origin,
                    instance=self,
                    created=not updated,
                    update_fields=update_fields,
                    raw=raw,
                    using=using,
                )
            )

    # delete / refresh -----------------------------------------------------

    def delete(self, using: str | None = None, keep_parents: bool = False) -> Any:
        """Delete this row, applying ``on_delete``: ``await obj.delete()``.

        Returns Django's ``(count, {label: count})``.
        """
        if _bridge.in_bridge():
            return super().delete(using=using, keep_parents=keep_parents)  # type: ignore[misc]
        alias = self._vinyl_alias(using)
        parent_delete = super().delete  # type: ignore[misc]
        return _bridge.run(alias, lambda: parent_delete(using=alias, keep_parents=keep_parents))

    def refresh_from_db(self, using: str | None = None, fields: Any = None, **kwargs: Any) -> Any:
        """Reload field values: ``await obj.refresh_from_db(fields=[...])``."""
        if _bridge.in_bridge():
            return super().refresh_from_db(using=using, fields=fields, **kwargs)  # type: ignore[misc]
        alias = self._vinyl_alias(using)
        parent_refresh = super().refresh_from_db  # type: ignore[misc]
        return _bridge.run(alias, lambda: parent_refresh(using=alias, fields=fields, **kwargs))

    # Django's thread-based async twins would run the sync methods in a
    # thread, outside vinyl's bridge: point to the awaitable methods.
    def asave(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("vinyl instances have no asave(): use `await obj.save()`")

    def adelete(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("vinyl instances have no adelete(): use `await obj.delete()`")

    def arefresh_from_db(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("vinyl instances have no arefresh_from_db(): use `await obj.refresh_from_db()`")

    # item access to loaded relations ----------------------------------

    def __getitem__(self, name: str) -> Any:
        """Read a relation that ``select_related`` / ``prefetch_related`` loaded."""
        if not isinstance(name, str):
            raise TypeError(f"relation names are str, got {name!r}")
        fields_cache = self._state.fields_cache
        if name in fields_cache:
            return fields_cache[name]
        prefetched = getattr(self, "_prefetched_objects_cache", None) or {}
        cache_name = _prefetch_cache_name(type(self), name)
        if cache_name in prefetched:
            found = prefetched[cache_name]
            result = getattr(found, "_result_cache", None)
            return list(result) if result is not None else found
        if name in self.__dict__ and not _is_field_attname(type(self), name):
            return self.__dict__[name]
        raise RelationNotLoaded(
            f"{name!r} was not loaded on this {type(self).__name__}: add "
            f"select_related({name!r}) or prefetch_related({name!r}) to the "
            f"query, or await the attribute (`await obj.{name}`) for a fresh query"
        )


def _prefetch_cache_name(cls: type, name: str) -> str:
    descriptor = inspect.getattr_static(cls, name, None)
    rel = getattr(descriptor, "rel", None)
    field = getattr(descriptor, "field", None)
    if rel is None or field is None:
        return name
    if getattr(descriptor, "reverse", False):
        # Reverse many-to-many: Django caches under the related query name.
        return field.related_query_name()
    if rel.many_to_many:
        return field.name
    return rel.get_cache_name() if hasattr(rel, "get_cache_name") else name


def _is_field_attname(cls: type, name: str) -> bool:
    try:
        field = cls._meta.get_field(name)
    except Exception:
        return False
    return getattr(field, "concrete", False)
