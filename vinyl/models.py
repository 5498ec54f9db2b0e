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

import inspect
from typing import Any, TypeVar

from django.apps.registry import Apps
from django.db import models, transaction
from django.db.models.fields.related_descriptors import (
    ManyToManyDescriptor,
    ReverseManyToOneDescriptor,
)
from django.db.models.signals import post_save, pre_save

from vinyl import _bridge, _compat, _vinylize, generic, routing
from vinyl._aliases import INSTANCE_ALIASES, add_async_aliases
from vinyl._vinylize import is_vinyl_model, vinyl_model
from vinyl.deletion import delete_instance
from vinyl.descriptors import install_descriptors
from vinyl.engine.engines import DEFAULT_ALIAS
from vinyl.exceptions import RelationNotLoaded
from vinyl.pickling import unpickle_instance, vinyl_metaclass
from vinyl.queryset import VinylQuerySet

M = TypeVar("M", bound=models.Model)

# Vinyl classes live here, away from the project's registry: no migrations,
# no system checks, no clash with the user's model names.
_registry = Apps(installed_apps=())


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
    metaclass: Any = vinyl_metaclass(type(model))  # Django's ModelBase, pickled as a vinyl class
    cls = metaclass(model.__name__, (VinylInstance, model), attrs)
    install_descriptors(cls, model)
    install_neighbours(cls, model)
    return cls


# -- instances --------------------------------------------------------------


class VinylInstance:
    """Async persistence and item access for instances of vinyl models."""

    _vinyl_origin: type[models.Model]
    _meta: Any
    _state: Any
    pk: Any

    def __reduce__(self) -> Any:
        # Django's own state and model key; loaded as a vinyl instance again.
        reduced: Any = super().__reduce__()
        return unpickle_instance, reduced[1], reduced[2]

    @classmethod
    def vinyl_queryset(cls, using: str | None = None) -> VinylQuerySet:
        return VinylQuerySet(cls, using=using or DEFAULT_ALIAS)

    def _vinyl_alias(self, using: str | None, write: bool = False) -> str:
        """``using``, else the alias the routers give for this instance (``vinyl.routing``)."""
        if using:
            return using
        route = routing.db_for_write if write else routing.db_for_read
        return route(type(self), instance=self)

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
        alias = self._vinyl_alias(using, write=True)
        parent_save = super().save  # type: ignore[misc]

        def save_and_reload() -> None:
            generic.resolve_pending(self)
            expressions = [k for k, v in self.__dict__.items() if hasattr(v, "resolve_expression")]
            parent_save(using=alias, update_fields=update_fields, force_update=force_update)
            # Django 6 reads fields saved as expressions back with RETURNING
            # where it can; elsewhere it defers them, to load on next access.
            # vinyl never loads on access: load them now, in this operation.
            stale = [name for name in expressions if name not in self.__dict__]
            if stale:
                self.refresh_from_db(using=alias, fields=stale)

        await _bridge.run(
            alias, save_and_reload, single_write=_bridge.one_statement_save(type(self))
        )

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
        # model as sender, and calls Django's own steps in between, in its
        # order (tests/test_save_base_mirror.py fails if Django's change).
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
                force_insert = _compat.validate_force_insert(self, force_insert)
                parent_inserted = _compat.save_parents(self, concrete, using, update_fields, force_insert)
            updated = _compat.save_table(
                self, raw, concrete, force_insert or parent_inserted, force_update, using, update_fields
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

        Returns Django's ``(count, {label: count})``; the cascade is one
        transaction and the delete signals are awaited (``Signal.asend``).
        """
        alias = self._vinyl_alias(using, write=True)
        if _bridge.in_bridge():
            return delete_instance(self, alias, keep_parents)
        return _bridge.run(alias, delete_instance, self, alias, keep_parents)

    def refresh_from_db(self, using: str | None = None, fields: Any = None, **kwargs: Any) -> Any:
        """Reload field values: ``await obj.refresh_from_db(fields=[...])``.

        ``from_queryset=`` takes a vinyl QuerySet (``Model.vinyl.select_related(...)``)
        or a Django one; the row is read on this instance's vinyl alias.
        """
        from_queryset = kwargs.get("from_queryset")
        if from_queryset is not None and hasattr(from_queryset, "as_django"):
            kwargs["from_queryset"] = from_queryset.as_django()
        if _bridge.in_bridge():
            return super().refresh_from_db(using=using, fields=fields, **kwargs)  # type: ignore[misc]
        alias = self._vinyl_alias(using)
        parent_refresh = super().refresh_from_db  # type: ignore[misc]
        return _bridge.run(alias, lambda: parent_refresh(using=alias, fields=fields, **kwargs))

    # validation that queries ----------------------------------------------

    def full_clean(self, exclude: Any = None, validate_unique: bool = True, validate_constraints: bool = True) -> Any:
        """Validate fields, ``clean()``, uniqueness and constraints: ``await obj.full_clean()``.

        Raises Django's ``ValidationError``, as ``Model.full_clean()`` does.
        """
        parent = super().full_clean  # type: ignore[misc]
        return self._validating(parent, exclude=exclude, validate_unique=validate_unique, validate_constraints=validate_constraints)

    def validate_unique(self, exclude: Any = None) -> Any:
        """Check unique fields and ``unique_together``: ``await obj.validate_unique()``."""
        return self._validating(super().validate_unique, exclude=exclude)  # type: ignore[misc]

    def validate_constraints(self, exclude: Any = None) -> Any:
        """Check ``Meta.constraints``: ``await obj.validate_constraints()``."""
        return self._validating(super().validate_constraints, exclude=exclude)  # type: ignore[misc]

    def _validating(self, check: Any, **kwargs: Any) -> Any:
        """Run one of Django's validations, which may query, on vinyl's alias."""
        if _bridge.in_bridge():
            return check(**kwargs)
        alias = self._vinyl_alias(None)

        def run() -> None:
            # Django routes constraint checks by the instance's database: an
            # instance not yet saved is checked on the alias it would be saved to.
            unsaved = self._state.db is None
            if unsaved:
                self._state.db = alias
            try:
                check(**kwargs)
            finally:
                if unsaved:
                    self._state.db = None

        return _bridge.run(alias, run, readonly=True)

    def _perform_unique_checks(self, unique_checks: Any) -> Any:
        # Django queries each model's _default_manager, which routes to the
        # default alias: the same checks run on this instance's vinyl alias.
        alias = self._vinyl_alias(None)
        routed = [(_OnAlias(model, alias), check) for model, check in unique_checks]
        return super()._perform_unique_checks(routed)  # type: ignore[misc]

    def _perform_date_checks(self, date_checks: Any) -> Any:
        alias = self._vinyl_alias(None)
        routed = [(_OnAlias(model, alias), *rest) for model, *rest in date_checks]
        return super()._perform_date_checks(routed)  # type: ignore[misc]

    def unique_error_message(self, model_class: Any, unique_check: Any) -> Any:
        model_class = getattr(model_class, "vinyl_model_class", model_class)
        return super().unique_error_message(model_class, unique_check)  # type: ignore[misc]

    # item access to loaded relations ----------------------------------

    def __getitem__(self, name: str) -> Any:
        """Read a relation that ``select_related`` / ``prefetch_related`` loaded.

        ``book["author"]`` gives the joined or prefetched instance (None for a
        loaded null relation), ``author["book_set"]`` the prefetched list, and
        ``obj["x"]`` the value of ``Prefetch(..., to_attr="x")``.
        """
        if not isinstance(name, str):
            raise TypeError(f"relation names are str, got {name!r}")
        descriptor = inspect.getattr_static(type(self), name, None)
        if isinstance(descriptor, ReverseManyToOneDescriptor):
            prefetched = _compat.prefetched_objects(self) or {}
            key = _prefetch_key(descriptor)
            if key in prefetched:
                return list(prefetched[key])
            how = (
                f"add prefetch_related({name!r}) to the query, or use "
                f"`await obj.{name}.all()` for a fresh query"
            )
        else:
            if name in self._state.fields_cache:
                return self._state.fields_cache[name]
            if not name.startswith("_") and name in self.__dict__ and not _is_field_attname(self, name):
                return self.__dict__[name]  # Prefetch(to_attr=name)
            how = (
                f"add select_related({name!r}) or prefetch_related({name!r}) to "
                f"the query, or use `await obj.{name}` for a fresh query"
            )
        raise RelationNotLoaded(f"{name!r} was not loaded on this {type(self).__name__}: {how}")


# Django's thread-based asave/adelete/arefresh_from_db would run the sync
# methods in a thread, outside vinyl's bridge: they are vinyl's coroutines.
add_async_aliases(VinylInstance, INSTANCE_ALIASES)


class _OnAlias:
    """A model class for Django's unique checks, its default manager on ``alias``."""

    def __init__(self, model: type[models.Model], alias: str) -> None:
        self.vinyl_model_class = model
        self._default_manager = vinyl_model(model)._default_manager.db_manager(alias)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.vinyl_model_class, name)


def _neighbour(name: str) -> Any:
    """``await obj.get_next_by_FOO()`` / ``get_previous_by_FOO()``: Django's, on vinyl's alias."""

    def method(self: Any, **kwargs: Any) -> Any:
        original = inspect.getattr_static(self._vinyl_origin, name).__get__(self, type(self))
        if _bridge.in_bridge():
            return original(**kwargs)
        return _bridge.run(self._vinyl_alias(None), lambda: original(**kwargs), readonly=True)

    method.__name__ = name
    method.__doc__ = f"Return the next or previous instance by date: ``await obj.{name}()``."
    return method


def install_neighbours(cls: type, model: type[models.Model]) -> None:
    """Give ``cls`` awaitable versions of the ``get_next_by_*`` methods of ``model``."""
    for field in model._meta.concrete_fields:
        if isinstance(field, models.DateField) and not field.null:
            for prefix in ("get_next_by_", "get_previous_by_"):
                name = prefix + field.name
                if hasattr(model, name):
                    setattr(cls, name, _neighbour(name))


def _prefetch_key(descriptor: ReverseManyToOneDescriptor) -> str:
    """Return the key Django's prefetching stores a many-valued relation under."""
    if generic.is_generic_relation(descriptor):
        return descriptor.field.attname  # Django's generic manager's prefetch_cache_name
    if isinstance(descriptor, ManyToManyDescriptor):
        field = descriptor.rel.field
        # Reverse many-to-many: the related query name, not the accessor.
        return field.related_query_name() if descriptor.reverse else field.name
    return descriptor.rel.cache_name


def _is_field_attname(instance: Any, name: str) -> bool:
    return any(f.attname == name for f in instance._meta.concrete_fields)


# Every vinyl class is built here, whoever asks for it first.
_vinylize.set_builder(_build)
