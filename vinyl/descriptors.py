"""Relation descriptors of vinyl model classes: explicit queries only.

Outside the bridge, on a vinyl instance:

- ``await book.author`` queries the related row every time (None for a null
  key); ``await author.profile`` queries the reverse one-to-one row or raises
  ``RelatedObjectDoesNotExist``. Nothing is cached on the instance.
- ``await item.content_object`` (a ``GenericForeignKey``) likewise, None
  when the target is gone (content types: :mod:`vinyl.generic`).
- ``author.book_set`` and ``book.tags`` are vinyl related managers
  (:mod:`vinyl.related`).

Inside the bridge (Django's own sync code: ``prefetch_related_objects``, the
deletion collector, related managers) the descriptors behave exactly like
Django's, except that the querysets they build give vinyl instances.
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable, Generator

from django.db import connections
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ManyToManyDescriptor,
    ReverseManyToOneDescriptor,
    ReverseOneToOneDescriptor,
)
from django.db.models.fields.reverse_related import ForeignObjectRel
from django.db.models.query_utils import DeferredAttribute
from django.utils.functional import cached_property

from vinyl import _bridge, _compat, generic, routing
from vinyl._vinylize import adopt, as_vinyl_queryset, as_vinyl_querysets, origin_model, vinyl_model
from vinyl.engine.engines import DEFAULT_ALIAS
from vinyl.exceptions import DeferredFieldError, RelationNotAwaited
from vinyl.queryset import VinylQuerySet
from vinyl.related import VinylGenericRelatedManager, VinylRelatedManager, django_manager_class


class Fetch:
    """An awaitable relation read: ``await book.author``.

    The query starts only when awaited, so merely reading the attribute never
    performs I/O (and an unawaited read leaves no coroutine behind).
    """

    __slots__ = ("_fn", "_args", "_what")

    def __init__(self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._what = what
        self._fn = fn
        self._args = args

    def __await__(self) -> Generator[Any, None, Any]:
        return self._fn(*self._args).__await__()

    def __repr__(self) -> str:
        return f"<vinyl query for {self._what}: await it>"

    def __getattr__(self, name: str) -> Any:
        # Reached when code reads the related object's attributes without
        # awaiting it (``book.author.name``, Django's lazy loading).
        owner, _, relation = self._what.rpartition(".")
        raise RelationNotAwaited(
            f"{self._what} is a query, not the related object, so it has no "
            f"{name!r}: use `(await obj.{relation}).{name}` (one query), or load it "
            f"with select_related({relation!r}) / prefetch_related({relation!r}) "
            f"and read `obj[{relation!r}].{name}`"
        )


class _NoLazyField:
    """A field descriptor that never queries for a deferred value."""

    field: Any

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.field.attname]
        except KeyError:
            pass
        if _bridge.in_bridge():
            return super().__get__(instance, cls)  # type: ignore[misc]
        value = _compat.check_parent_chain(self, instance)
        if value is None:
            name = self.field.attname
            raise DeferredFieldError(
                f"{type(instance).__name__}.{name} was not loaded (only()/defer()): "
                f"`await obj.refresh_from_db(fields=[{name!r}])` loads it"
            )
        # A parent's key read from the child's link is loaded from now on,
        # as Django's deferred attribute keeps it.
        instance.__dict__[self.field.attname] = value
        return value


class _VinylQuerysets:
    """Querysets built by a Django relation descriptor give vinyl instances."""

    field: Any
    related: Any

    def get_queryset(self, **kwargs: Any) -> Any:
        return as_vinyl_queryset(super().get_queryset(**kwargs))  # type: ignore[misc]

    def get_prefetch_querysets(self, instances: Any, querysets: Any = None) -> Any:
        return super().get_prefetch_querysets(instances, as_vinyl_querysets(querysets))  # type: ignore[misc]


class _AwaitedForward(_VinylQuerysets):
    """``await book.author``: a query every time, None for a null key."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None or _bridge.in_bridge():
            return super().__get__(instance, cls)  # type: ignore[misc]
        return Fetch(f"{type(instance).__name__}.{self.field.name}", _fetch_forward, self.field, instance)

    def get_object(self, instance: Any) -> Any:
        # A parent link builds the parent from the child's own fields.
        return adopt(super().get_object(instance))  # type: ignore[misc]


async def _fetch_forward(field: Any, instance: Any) -> Any:
    if None in field.get_local_related_value(instance):
        return None
    model = vinyl_model(field.remote_field.model)
    using = routing.db_for_related(model, instance)
    return await model.vinyl_queryset(using).get(field.get_reverse_related_filter(instance))


class _AwaitedReverseOne(_VinylQuerysets):
    """``await author.profile``: the reverse one-to-one row, or DoesNotExist."""

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None or _bridge.in_bridge():
            return super().__get__(instance, cls)  # type: ignore[misc]
        return Fetch(
            f"{type(instance).__name__}.{self.related.accessor_name}",
            _fetch_reverse_one,
            self,
            instance,
        )


async def _fetch_reverse_one(descriptor: Any, instance: Any) -> Any:
    related = descriptor.related
    missing = descriptor.RelatedObjectDoesNotExist(
        f"{type(instance).__name__} has no {related.accessor_name}."
    )
    if instance.pk is None:
        raise missing
    model = vinyl_model(related.related_model)
    using = routing.db_for_related(model, instance)
    lookups = related.field.get_forward_related_filter(instance)
    try:
        return await model.vinyl_queryset(using).get(**lookups)
    except related.related_model.DoesNotExist:
        raise missing from None


class _RelatedManagers:
    """``author.book_set`` / ``book.tags``: Django's manager in the bridge, a
    vinyl related manager outside it; both give vinyl instances."""

    @cached_property
    def vinyl_manager_class(self) -> type:
        return django_manager_class(self)

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        if generic.is_generic_relation(self) and not _bridge.in_bridge():
            # Django's generic manager reads the content type when built:
            # the facade builds it in the bridge, for each write.
            return VinylGenericRelatedManager(self, instance)
        manager = self.vinyl_manager_class(instance)
        if _bridge.in_bridge():
            return manager
        return VinylRelatedManager(manager)


# -- generic foreign keys (django.contrib.contenttypes) --------------------------


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
        return Fetch(f"{type(instance).__name__}.{self.name}", _fetch_generic, self.field, instance)

    def __set__(self, instance: Any, value: Any) -> None:
        field = self.field
        pending = instance.__dict__.get(generic.PENDING)
        if pending:
            pending.pop(field.name, None)
        ct = None
        if value is not None:
            alias = generic.bound_alias() if _bridge.in_bridge() else None
            alias = alias or _alias_of(instance, value)
            if _bridge.in_bridge():
                ct = generic.content_types().db_manager(alias).get_for_model(value, for_concrete_model=field.for_concrete_model)
            else:
                ct = generic.cached_content_type(alias, value, field.for_concrete_model)
                if ct is None:
                    # No query outside await: save() completes the assignment.
                    instance.__dict__.setdefault(generic.PENDING, {})[field.name] = value
        if ct is not None or value is None:
            setattr(instance, field.ct_field, ct)
        setattr(instance, field.fk_field, value.pk if value is not None else None)
        field.set_cached_value(instance, value)

    def get_prefetch_querysets(self, instances: Any, querysets: Any = None) -> Any:
        # Django's own reads each content type's rows on the default alias
        # (ContentType.get_all_objects_for_this_type): here they are read on
        # the bound vinyl alias, one query per content type, as vinyl rows.
        field = self.field
        alias = generic.bound_alias() or DEFAULT_ALIAS
        types = generic.content_types().db_manager(alias)
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
    return connections.settings.get(alias) or {}


async def _fetch_generic(field: Any, instance: Any) -> Any:
    ct_id = getattr(instance, instance._meta.get_field(field.ct_field).attname)
    pk = getattr(instance, field.fk_field)
    if ct_id is None or pk is None:
        return None
    alias = instance._state.db or DEFAULT_ALIAS
    manager = generic.content_types().db_manager(alias)
    ct = await _bridge.run(alias, lambda: manager.get_for_id(ct_id), readonly=True)
    model = ct.model_class()
    if model is None:
        return None  # a content type of a model that is gone
    try:
        return await VinylQuerySet(vinyl_model(model), using=alias).get(pk=pk)
    except model.DoesNotExist:
        return None


# -- installing them on a vinyl class ------------------------------------------

_kinds: dict[tuple[type, type], type] = {}


def _clone(original: Any, mixin: type) -> Any:
    """Copy a Django descriptor into a subclass of its type with ``mixin``."""
    key = (type(original), mixin)
    kind = _kinds.get(key)
    if kind is None:
        kind = _kinds[key] = type("Vinyl" + type(original).__name__, (mixin, type(original)), {})
    if isinstance(original, (ForwardManyToOneDescriptor, ReverseOneToOneDescriptor)):
        # Share the exception class, so `except Book.author.RelatedObjectDoesNotExist`
        # also catches what the vinyl descriptor raises.
        original.RelatedObjectDoesNotExist  # noqa: B018
    # Not copy.copy(): Django's relation descriptors pickle (and so copy) as
    # a lookup of the original on its model, which would hand it back.
    clone: Any = object.__new__(kind)
    clone.__dict__.update(original.__dict__)
    return clone


def _mixin_for(descriptor: Any) -> type | None:
    if isinstance(descriptor, DeferredAttribute):
        return _NoLazyField
    if isinstance(descriptor, ForwardManyToOneDescriptor):
        return _AwaitedForward
    if isinstance(descriptor, ReverseOneToOneDescriptor):
        return _AwaitedReverseOne
    if isinstance(descriptor, (ReverseManyToOneDescriptor, ManyToManyDescriptor)):
        return _RelatedManagers
    return None


def install_descriptors(cls: type, model: Any) -> None:
    """Put vinyl versions of the field and relation descriptors of ``model`` on ``cls``."""
    names: set[str] = set()
    for field in model._meta.concrete_fields:
        names.add(field.attname)
    for field in model._meta.get_fields(include_hidden=True):
        if not field.is_relation:
            continue
        if isinstance(field, ForeignObjectRel):
            accessor = field.get_accessor_name()
            if accessor:
                names.add(accessor)
        else:
            names.add(field.name)
    for name in names:
        original = inspect.getattr_static(model, name, None)
        if generic.is_generic_foreign_key(original):
            setattr(cls, name, VinylGenericForeignKey(original))
            continue
        mixin = _mixin_for(original)
        if mixin is not None:
            setattr(cls, name, _clone(original, mixin))
