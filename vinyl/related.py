"""Related managers of vinyl instances: ``author.book_set``, ``book.tags``.

Django's own related manager classes do the work. vinyl builds them on a
manager whose querysets give vinyl instances, sends ``m2m_changed`` with
``Signal.asend``, and deletes through rows with vinyl's collector; the
:class:`VinylRelatedManager` facade runs every write in the bridge as one
operation (so ``set()`` is all-or-nothing) and hands out ``VinylQuerySet``\\ s::

    books = await author.book_set.filter(pages__gt=100)
    await book.tags.add(tag1, tag2)
    await club.members.add(person, through_defaults={"role": "chair"})
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator, TypeVar

from django.db import models, transaction
from django.db.models.fields.related_descriptors import (
    ManyToManyDescriptor,
    create_forward_many_to_many_manager,
    create_reverse_many_to_one_manager,
)
from django.db.models.signals import m2m_changed
from django.db.models.utils import resolve_callables

from vinyl import _bridge, _compat, generic, routing
from vinyl._aliases import RELATED_ALIASES, add_async_aliases
from vinyl._vinylize import as_vinyl_queryset, as_vinyl_querysets, is_vinyl_model, origin_model, vinyl_model
from vinyl.deletion import delete_queryset
from vinyl.engine.engines import DEFAULT_ALIAS
from vinyl.proxies import QuerySetMethods
from vinyl.queryset import VinylQuerySet

if TYPE_CHECKING:
    from django.db.models import QuerySet

M = TypeVar("M", bound=models.Model)

# -- Django manager classes that give vinyl instances ---------------------------

_sources: dict[type, type] = {}


class _VinylSource:
    """Base of a related manager: its querysets are on the vinyl model class."""

    def get_queryset(self) -> QuerySet:
        return as_vinyl_queryset(super().get_queryset())  # type: ignore[misc]


def _source_for(model: type[models.Model]) -> type:
    """Subclass the default manager class of ``model`` (as Django does)."""
    base = model._default_manager.__class__
    source = _sources.get(base)
    if source is None:
        source = _sources[base] = type(f"Vinyl{base.__name__}", (_VinylSource, base), {})
    return source


class _ReverseManyToOne:
    """Mixed over Django's reverse foreign key manager."""

    def get_prefetch_querysets(self, instances: Any, querysets: Any = None) -> Any:
        return super().get_prefetch_querysets(instances, as_vinyl_querysets(querysets))  # type: ignore[misc]


class _ManyToMany:
    """Mixed over Django's many-to-many manager.

    Django sends ``m2m_changed`` with ``Signal.send``, which cannot await
    async receivers from the bridge; the methods that send it are written
    here around Django's own helpers, and send with ``Signal.asend``.
    """

    _django_class: type
    instance: Any
    model: Any
    through: Any
    reverse: bool
    related_val: tuple
    source_field_name: str
    target_field_name: str
    target_field: Any

    def get_prefetch_querysets(self, instances: Any, querysets: Any = None) -> Any:
        return super().get_prefetch_querysets(instances, as_vinyl_querysets(querysets))  # type: ignore[misc]

    def _base_queryset(self) -> QuerySet:
        """The related model's queryset before the relation's own filters."""
        return super(self._django_class, self).get_queryset()  # type: ignore[arg-type]  # a mixin of it

    def _send(self, action: str, pk_set: Any, using: str, raw: bool) -> None:
        extra = {"raw": raw} if _SIGNAL_HAS_RAW else {}
        _bridge.await_(
            m2m_changed.asend(
                sender=self.through,
                action=action,
                instance=self.instance,
                reverse=self.reverse,
                model=self.model,
                pk_set=pk_set,
                using=using,
                **extra,
            )
        )

    def _through_row(self, source: str, target: str, target_id: Any, defaults: dict) -> Any:
        return self.through(**defaults, **{f"{source}_id": self.related_val[0], f"{target}_id": target_id})

    def _add_items(
        self,
        source_field_name: str,
        target_field_name: str,
        *objs: Any,
        through_defaults: Any = None,
        using: str | None = None,
        raw: bool = False,
    ) -> None:
        if not objs:
            return
        defaults = dict(resolve_callables(through_defaults or {}))
        target_ids = _compat.m2m_target_ids(self, target_field_name, objs)
        db = using or routing.db_for_write(self.through, instance=self.instance)
        ignore_conflicts, signals, fast = _compat.m2m_add_plan(self, db, source_field_name)
        rows = self.through._default_manager.using(db)
        if fast:
            # No receivers and conflicts ignorable: one INSERT, duplicates skipped.
            rows.bulk_create(
                [self._through_row(source_field_name, target_field_name, pk, {}) for pk in target_ids],
                ignore_conflicts=True,
            )
            return
        missing = _compat.m2m_missing_target_ids(self, source_field_name, target_field_name, db, target_ids)
        with transaction.atomic(using=db, savepoint=False):
            if signals:
                self._send("pre_add", missing, db, raw)
            rows.bulk_create(
                [self._through_row(source_field_name, target_field_name, pk, defaults) for pk in missing],
                ignore_conflicts=ignore_conflicts,
            )
            if signals:
                self._send("post_add", missing, db, raw)

    def _remove_items(
        self,
        source_field_name: str,
        target_field_name: str,
        *objs: Any,
        using: str | None = None,
        raw: bool = False,
    ) -> None:
        if not objs:
            return
        old_ids = {
            self.target_field.get_foreign_related_value(obj)[0] if isinstance(obj, self.model) else obj
            for obj in objs
        }
        db = using or routing.db_for_write(self.through, instance=self.instance)
        with transaction.atomic(using=db, savepoint=False):
            self._send("pre_remove", old_ids, db, raw)
            targets = self._base_queryset()
            if targets.query.has_filters():
                # A filtering default manager limits what can be removed.
                key = self.target_field.target_field.attname
                removed: Any = targets.using(db).filter(**{f"{key}__in": old_ids})
            else:
                removed = old_ids
            self._delete_through(_compat.m2m_remove_filters(self, removed), db)
            self._send("post_remove", old_ids, db, raw)

    def _clear_base(self, using: str | None = None, raw: bool = False) -> None:
        # Django 6.1's set() clears through this method (5.2's calls clear()).
        self._clear_through(using, raw)

    def _clear_through(self, using: str | None, raw: bool) -> None:
        db = using or routing.db_for_write(self.through, instance=self.instance)
        with transaction.atomic(using=db, savepoint=False):
            self._send("pre_clear", None, db, raw)
            filters = _compat.m2m_remove_filters(self, self._base_queryset().using(db))
            self._delete_through(filters, db)
            self._send("post_clear", None, db, raw)

    def clear(self) -> None:
        _compat.m2m_forget_prefetched(self)
        self._clear_through(routing.db_for_write(self.through, instance=self.instance), False)

    def _delete_through(self, filters: Any, db: str) -> None:
        delete_queryset(self.through._default_manager.using(db).filter(filters))


# Django 6.1 added ``raw`` to m2m_changed (and ``using``/``raw`` to the helpers).
_SIGNAL_HAS_RAW = _compat.M2M_SIGNAL_HAS_RAW


def django_manager_class(descriptor: Any) -> type:
    """Build the Django related manager class for a vinyl descriptor."""
    rel = descriptor.rel
    if isinstance(descriptor, ManyToManyDescriptor):
        related = rel.related_model if descriptor.reverse else rel.model
        django_class = create_forward_many_to_many_manager(
            _source_for(related), rel, reverse=descriptor.reverse
        )
        return type(
            "VinylManyRelatedManager", (_ManyToMany, django_class), {"_django_class": django_class}
        )
    if generic.is_generic_relation(descriptor):
        from django.contrib.contenttypes.fields import create_generic_related_manager

        django_class = create_generic_related_manager(_source_for(rel.model), rel)
        return type("VinylGenericRelatedManager", (_ReverseManyToOne, django_class), {})
    django_class = create_reverse_many_to_one_manager(_source_for(rel.related_model), rel)
    return type("VinylRelatedManager", (_ReverseManyToOne, django_class), {})


# -- the async facade ----------------------------------------------------------

class VinylRelatedManager(QuerySetMethods[M]):
    """The objects related to one vinyl instance, queried with ``await``.

    ::

        books = await author.book_set.filter(pages__gt=100)
        await author.book_set.create(title="x")
        await book.tags.set([t1, t2])

    QuerySet methods (all of ``VinylQuerySet``'s, see ``vinyl.proxies``)
    give ``VinylQuerySet``\\ s bound to the relation; the write methods
    (``create``, ``add``, ``remove``, ``clear``, ``set``...) are coroutines
    taking Django's arguments (``bulk=``, ``through_defaults=``).
    """

    __slots__ = ("_manager",)

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    @property
    def instance(self) -> Any:
        return self._manager.instance

    @property
    def model(self) -> type[M]:
        """The vinyl model class of the related objects."""
        return vinyl_model(self._manager.model)

    @property
    def through(self) -> Any:
        try:
            return self._manager.through
        except AttributeError:
            raise AttributeError(f"{self!r} is not a many-to-many manager: it has no through model") from None

    @property
    def core_filters(self) -> dict[str, Any]:
        return self._manager.core_filters

    def get_queryset(self) -> VinylQuerySet[M]:
        """Return a fresh query for the related objects (never a prefetched cache)."""
        source = self._manager.get_queryset()
        qs = _compat.chain(source)
        # Django's manager makes its relation filter sticky, so the next
        # filter() reuses the relation's joins (tag.book_set.filter(tags__...)
        # tests the same join row); the copy above used that up: keep it.
        qs.query.filter_is_sticky = source.query.filter_is_sticky
        # Reads follow the instance's alias; writes ask the routers.
        routing.mark_related(qs)
        return VinylQuerySet._wrap(qs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the manager lacks.
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<VinylRelatedManager of {self._manager.model.__name__} for {self.instance!r}>"

    # Writes: each runs in the bridge as one operation. --------------------------

    def _alias(self) -> str:
        state = self.instance._state
        if state.db is None:
            # As Django's relation assignment does, place a loose instance on
            # the database it is used with, so Django's router agrees.
            state.db = _compat.manager_alias(self._manager) or routing.db_for_write(self.model, instance=self.instance)
        return _compat.manager_alias(self._manager) or routing.db_for_write(self.model, instance=self.instance)

    async def _write(self, method: str, objs: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        objs = list(objs)
        alias = self._alias()
        bound = getattr(self._manager, method)

        def call() -> Any:
            with _adopted(objs, alias):
                return bound(*args, **kwargs)

        return await _bridge.run(alias, call)

    async def create(self, **kwargs: Any) -> M:
        """Create a related object (and, for many-to-many, its through row)."""
        return await self._write("create", (), **kwargs)

    async def get_or_create(self, **kwargs: Any) -> tuple[M, bool]:
        return await self._write("get_or_create", (), **kwargs)

    async def update_or_create(self, **kwargs: Any) -> tuple[M, bool]:
        return await self._write("update_or_create", (), **kwargs)

    async def add(self, *objs: Any, **kwargs: Any) -> None:
        """Relate ``objs`` (instances of the model or its vinyl class, or keys)."""
        await self._write("add", objs, *objs, **kwargs)

    async def remove(self, *objs: Any, **kwargs: Any) -> None:
        self._require("remove")
        await self._write("remove", objs, *objs, **kwargs)

    async def clear(self, **kwargs: Any) -> None:
        self._require("clear")
        await self._write("clear", (), **kwargs)

    async def set(self, objs: Iterable[Any], **kwargs: Any) -> None:
        """Make the related set exactly ``objs``, in one transaction."""
        if isinstance(objs, VinylQuerySet):
            objs = await objs
        objs = list(objs)
        await self._write("set", objs, objs, **kwargs)

    def _require(self, method: str) -> None:
        if not hasattr(self._manager, method):
            field = self._manager.field
            raise AttributeError(
                f"{method}() needs a nullable foreign key: {field.model.__name__}.{field.name} "
                f"has null=False, so delete the related objects or reassign them instead"
            )


# Django's async names of the writes (aadd, aset, acreate...) are the same coroutines.
add_async_aliases(VinylRelatedManager, RELATED_ALIASES)


_same_database = routing.same_database


@contextmanager
def _adopted(objs: list[Any], alias: str) -> Iterator[None]:
    """Prepare the user's instances for one write, and restore them after.

    - An instance that Django's own alias of the same database loaded may be
      related on the vinyl alias (Django's router compares alias names).
    - A plain instance of the model behaves as its vinyl class meanwhile, so
      that saving it (``add(bulk=False)``) awaits the save signals.
    """
    changed = []
    for obj in objs:
        if not isinstance(obj, models.Model):
            continue
        state = (obj, obj._state.db, obj.__class__)
        if obj._state.db != alias and _same_database(obj._state.db, alias):
            obj._state.db = alias
        if not is_vinyl_model(type(obj)) and not obj._meta.abstract:
            obj.__class__ = vinyl_model(type(obj))
        changed.append(state)
    try:
        yield
    finally:
        for obj, db, cls in changed:
            if obj._state.db == alias and db != alias and _same_database(db, alias):
                obj._state.db = db
            obj.__class__ = cls


# -- generic relations (django.contrib.contenttypes) -----------------------------


class VinylGenericRelatedManager(QuerySetMethods[Any]):
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

    def get_queryset(self) -> VinylQuerySet[Any]:
        """A fresh query for the related objects (never a prefetched cache)."""
        field = self._field
        alias = self._alias()
        ct_field = field.content_type_field_name
        ct = generic.cached_content_type(alias, self.instance, field.for_concrete_model)
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
        # Only reached for names the manager lacks.
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<VinylGenericRelatedManager of {self._field.related_model.__name__} for {self.instance!r}>"

    async def _write(self, method: str, objs: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        objs = list(objs)
        alias = self._alias()
        await generic.load_content_types(alias, [self.instance], self._field.for_concrete_model)

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
        if isinstance(objs, VinylQuerySet):
            objs = await objs
        objs = list(objs)
        await self._write("set", objs, objs, bulk=bulk, clear=clear)


add_async_aliases(VinylGenericRelatedManager, RELATED_ALIASES)


__all__ = ["VinylGenericRelatedManager", "VinylRelatedManager", "django_manager_class"]
