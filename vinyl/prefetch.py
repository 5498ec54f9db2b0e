"""``prefetch_related`` of foreign keys and many-to-many, without Django's prefetcher.

For ``Author.vinyl.filter(...).prefetch_related("book_set")`` Django runs the
books query and then builds one related queryset per author (two clones
each), in the bridge. Here the main rows and the related rows come through
the plan cache (``book.author_id IN (...)``), the rows are grouped by owner
in one pass, and each owner gets a lightweight queryset of its rows whose
filter is applied only if something chains on it. The same goes for
many-to-many relations (Django's query, with the through table's key as an
extra column) and forward foreign keys (each instance's related object
cached as Django's prefetcher caches it), and for nested lookups
(``book_set__tags``), level by level, and ``Prefetch`` objects of a vinyl
queryset (filter, order and the like; no ``to_attr``). Anything else (one-to-one, generic relations, a
``Prefetch`` of a Django queryset, custom default or base managers) keeps
Django's prefetcher.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Sequence

from django.db import connections, models
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ManyToManyDescriptor,
    ReverseManyToOneDescriptor,
)
from django.db.models import Prefetch, Q
from django.db.models.fields.mixins import FieldCacheMixin
from django.db.models.query import QuerySet
from django.db.models.signals import post_init, pre_init
from django.db.models.sql import Query

from vinyl import _compat
from vinyl._vinylize import VinylModelIterable, vinyl_model
from vinyl.generic import is_generic_relation
from vinyl.translate.gcpause import batched, held_gc
from vinyl.translate import instances
from vinyl.translate.instances import caches_assignable, plain_construction

if TYPE_CHECKING:
    from vinyl.queryset import VinylQuerySet

#: ``{name: (relation, {deeper names...})}``: what :func:`planned_lookups` gives.
Tree = dict


def _plain_manager(model: type[models.Model]) -> bool:
    return type(model._default_manager).get_queryset is models.Manager.get_queryset


def _django_kind(descriptor: Any, kind: type) -> bool:
    """Is ``descriptor`` Django's ``kind``, or vinyl's copy of one (vinyl.descriptors)?"""
    found = type(descriptor)
    return found is kind or (found.__module__ == "vinyl.descriptors" and found.__bases__[-1] is kind)


def _forward_fk(descriptor: Any) -> Any:
    """The ForeignKey of a forward descriptor vinyl can prefetch, or None."""
    if not _django_kind(descriptor, ForwardManyToOneDescriptor):
        return None  # one-to-one (reverse cache), or a descriptor of its own
    field = descriptor.field
    if field.one_to_one or len(field.foreign_related_fields) != 1:
        return None
    related = field.related_model
    target = field.target_field
    if related._meta.base_manager_name is not None or target.is_relation:
        return None  # a base manager of its own may filter: Django's prefetcher knows
    return field


def _reverse_fk(descriptor: Any) -> Any:
    """The ManyToOneRel of a reverse foreign key vinyl can prefetch, or None."""
    if not isinstance(descriptor, ReverseManyToOneDescriptor) or isinstance(descriptor, ManyToManyDescriptor):
        return None
    if is_generic_relation(descriptor):
        return None  # filtered on a content type too: Django's prefetcher
    rel = descriptor.rel
    if not _plain_manager(rel.related_model) or rel.field.remote_field.parent_link:
        return None  # its queryset may filter: Django's prefetcher knows
    if len(rel.field.foreign_related_fields) != 1:
        return None
    return rel


class ManyToMany:
    """A many-to-many relation seen from one side, as Django's related manager sees it."""

    __slots__ = ("related_model", "query_field_name", "cache_name", "local", "owner_key", "table")

    def __init__(self, rel: Any, reverse: bool) -> None:
        field = rel.field
        if reverse:
            self.related_model = rel.related_model
            self.query_field_name = field.name
            self.cache_name = field.related_query_name()
            source = field.m2m_reverse_field_name()
        else:
            self.related_model = rel.model
            self.query_field_name = field.related_query_name()
            self.cache_name = field.name
            source = field.m2m_field_name()
        fk = rel.through._meta.get_field(source)
        #: The through table's key column, and the owner's field it holds.
        self.local = fk.local_related_fields[0]
        self.owner_key = fk.foreign_related_fields[0]
        self.table = rel.through._meta.db_table


def _many_to_many(descriptor: Any) -> ManyToMany | None:
    if not _django_kind(descriptor, ManyToManyDescriptor):
        return None
    rel = descriptor.rel
    if rel.model is rel.related_model:
        return None  # to itself (symmetrical or not): Django's prefetcher
    relation = ManyToMany(rel, descriptor.reverse)
    fk = rel.through._meta.get_field(
        rel.field.m2m_reverse_field_name() if descriptor.reverse else rel.field.m2m_field_name()
    )
    if len(fk.local_related_fields) != 1 or not relation.owner_key.primary_key:
        return None
    if not _plain_manager(relation.related_model):
        return None
    return relation


#: ``_relation``'s answers: a relation is a fact of the model classes
#: (their descriptors, fields and managers), so each is found once, not
#: by getattr_static and Django's field lookups on every prefetch.
_RELATIONS: dict[tuple[type, str], Any] = {}


def _relation(model: type, name: str) -> Any:
    try:
        return _RELATIONS[model, name]
    except KeyError:
        pass
    descriptor = inspect.getattr_static(model, name, None)
    relation = _RELATIONS[model, name] = _forward_fk(descriptor) or _reverse_fk(descriptor) or _many_to_many(descriptor)
    return relation


def _related_model(relation: Any) -> type:
    if isinstance(relation, models.ForeignKey):
        return relation.related_model
    return relation.related_model


#: The steps a ``Prefetch`` queryset may hold for vinyl to prefetch with it.
_PREFETCH_STEPS = frozenset({"all", "filter", "exclude", "order_by", "reverse", "select_related"})


def _prefetch_queryset(lookup: Prefetch) -> Any:
    """The vinyl queryset of a ``Prefetch`` vinyl can prefetch with, None without one, or False."""
    if lookup.to_attr is not None or lookup.prefetch_to != lookup.prefetch_through:
        return False
    # (The vinyl queryset read first: see vinyl.queryset._VinylPrefetch.)
    inner = getattr(lookup, "_vinyl_queryset", None)  # set by vinyl.queryset
    if inner is None:
        return None if lookup.queryset is None else False  # a Django QuerySet
    if inner._recipe is None or any(step[0] not in _PREFETCH_STEPS for step in inner._steps):
        return False  # a slice, values(), prefetches of its own...
    return inner


def planned_lookups(model: type[models.Model], lookups: Sequence[Any]) -> Tree | None:
    """The lookups as a tree of relations, if vinyl can prefetch every one of them.

    Each node is ``name: (relation, deeper, queryset)``, ``queryset`` the
    vinyl queryset of a ``Prefetch`` at that level, or None.
    """
    tree: Tree = {}
    for lookup in lookups:
        inner = None
        if isinstance(lookup, Prefetch):
            inner = _prefetch_queryset(lookup)
            if inner is False:
                return None
            path = lookup.prefetch_through
        elif isinstance(lookup, str):
            path = lookup
        else:
            return None
        current, node = model, tree
        names = path.split("__")
        for depth, name in enumerate(names, 1):
            leaf = depth == len(names)
            if name not in node:
                relation = _relation(current, name)
                if relation is None:
                    return None
                if leaf and inner is not None:
                    if isinstance(relation, models.ForeignKey) or vinyl_model(inner._model) is not vinyl_model(_related_model(relation)):
                        return None
                node[name] = (relation, {}, inner if leaf else None)
            elif leaf and inner is not None:
                return None  # seen before: Django says it was seen with another queryset
            relation, node, _ = node[name]
            current = _related_model(relation)
    return tree


def has_forward_fk(tree: Tree) -> bool:
    """Whether the first level of ``tree`` holds a forward foreign key."""
    return any(isinstance(relation, models.ForeignKey) for relation, _, _ in tree.values())


def holds_collector(tree: Tree) -> bool:
    """Whether a prefetch of ``tree`` reads more than one level or relation:
    then its reader holds the collector paused across them (see
    ``held_gc``), where a single relation pauses it once over its build
    and attach (``VinylQuerySet._fetch_then``)."""
    return len(tree) > 1 or any(deeper for _, deeper, _ in tree.values())


async def prefetch(
    objs: list,
    tree: Tree,
    db: str,
    queryset: type[VinylQuerySet],
    nested: bool = False,
    fresh: bool = False,
    hold: held_gc | None = None,
    unprefetched: bool = False,
) -> None:
    """Load the relations of ``tree`` for ``objs`` (and deeper), cached as Django caches them.

    ``queryset`` is the class that reads them (``VinylQuerySet``, which
    calls this: it sits above this module); ``nested``: ``objs`` are a
    level of the prefetch below its first; ``fresh``: ``objs`` were just
    built with empty related-object caches (see :func:`empty_caches`);
    ``hold``: the pause of the collector held across the levels, told
    how many objects each level built; ``unprefetched``: no instance of
    ``objs`` holds a prefetched relation (all built by this read, plainly:
    see :func:`empty_caches`), so none is looked at for one.
    """
    if not objs:
        return
    # One relation and no level below it, the usual prefetch: its related
    # rows are built and attached in one pause of the collector (see
    # VinylQuerySet._fetch_then). With more, the reader holds the collector
    # paused across all of them (``hold``, see holds_collector) while they
    # stay small; past that, or read with no plan, a collection runs
    # between the reads whatever vinyl does; one pause per level there
    # made ``book_set__tags`` slower (fewer, larger collections of the
    # older generation), so each level keeps a pause for its build and one
    # for its attach.
    alone = not nested and len(tree) == 1
    for relation, deeper, inner in tree.values():
        together = alone and not deeper
        plain = False
        # Instances that hold the relation already (a reverse foreign key
        # caches each row's owner) are skipped, as Django's prefetcher skips them.
        if isinstance(relation, models.ForeignKey):
            name = _cache_name(relation)
            # (Fresh instances hold nothing: no cache made per instance to look.)
            missing = objs if fresh else [obj for obj in objs if name not in obj._state.fields_cache]
            if missing:
                await _prefetch_forward_fk(missing, relation, db, queryset, together, fresh)
            fresh = False  # their caches hold this relation now
        else:
            name = relation.cache_name if isinstance(relation, ManyToMany) else _cache_name(relation)
            # (The tree's names at one level differ: an instance of this
            # read holds none of them before its relation is prefetched.)
            missing = objs if unprefetched else _compat.without_prefetched(objs, name)
            if missing and isinstance(relation, ManyToMany):
                plain = await _prefetch_many_to_many(missing, relation, db, _source(queryset, inner), together)
            elif missing:
                plain = await _prefetch_reverse_fk(missing, relation, db, _source(queryset, inner), together)
            # The next level's instances are this one's related rows, all
            # built by its read when every instance here was missing them.
            plain = bool(missing) and plain and len(missing) == len(objs)
        if deeper or (hold is not None and hold.paused):
            related = _related_of(objs, relation, name)
            if hold is not None:
                hold.grow(len(related))
            if deeper:
                await prefetch(
                    related, deeper, db, queryset, nested=True, hold=hold,
                    unprefetched=plain and not isinstance(relation, models.ForeignKey),
                )  # fmt: skip


def _source(queryset: type[VinylQuerySet], inner: Any) -> Any:
    """What the related rows are read from: the ``Prefetch``'s queryset, or the model's."""
    if inner is None:
        return lambda model, db: queryset(model, using=db)
    # Unbuilt: chaining on it builds no Django query for a shape Django accepted.
    return lambda model, db: inner._unbuilt(db)


def _cache_name(relation: Any) -> str:
    return relation.cache_name


def _related_of(objs: list, relation: Any, name: str) -> list:
    """The related objects the next level prefetches on, as Django collects them."""
    related: list = []
    if isinstance(relation, models.ForeignKey):
        for obj in objs:
            value = obj._state.fields_cache.get(name)
            if value is not None:
                related.append(value)
        return related
    return _compat.prefetched_rows(objs, name)


async def _prefetch_reverse_fk(objs: list, rel: Any, db: str, source: Any, together: bool) -> bool:
    """Cache each owner's related rows on it; whether those were built plainly
    (see :func:`empty_caches`: no prefetched relation on any)."""
    field = rel.field  # the ForeignKey on the related model
    target = field.target_field.attname
    keys = [getattr(obj, target) for obj in objs]
    by_key: dict[Any, list] = {key: [] for key in keys if key is not None}
    related_model = vinyl_model(rel.related_model)
    base = source(related_model, db)
    # (Asked before the read: nothing may allocate between the attach,
    # where the collector resumes, and the caller, see _fetch_then.)
    plain = empty_caches(related_model, base)
    if by_key:
        await source(related_model, db).filter(**{f"{field.attname}__in": list(by_key)})._fetch_then(
            lambda rows: _attach(rows, objs, keys, rel, by_key, related_model, db, base, plain), together
        )
    else:
        _attach([], objs, keys, rel, by_key, related_model, db, base, plain)
    return plain


@batched
def _attach(
    rows: list, objs: list, keys: list, rel: Any, by_key: dict[Any, list], related_model: type, db: str, base: Any, plain: bool
) -> None:
    """Cache each owner's rows on it, and the owner on each row (``plain``: the
    rows came with empty caches, see :func:`empty_caches`)."""
    field = rel.field
    owners = dict(zip(keys, objs))
    attname = field.attname
    if _plain_cache_setter(field):
        rowbuild = instances.ROWBUILD
        attach = rowbuild.attach_owners if rowbuild is not None and type(rows) is list else _attach_owners
        attach(rows, attname, field.cache_name, owners, by_key, plain)
    else:
        for row in rows:
            key = getattr(row, attname)
            by_key[key].append(row)
            if not field.is_cached(row):
                field.set_cached_value(row, owners[key])
    rows_of = [by_key[key] if key is not None else [] for key in keys]
    _compat.cache_prefetched(
        PrefetchedQuerySet, related_model, _db(db, base), _call(field.name, base, known=field), rel.cache_name, objs, rows_of, objs, keys,
        compiled=_compiled_querysets(),
    )  # fmt: skip


def _attach_owners(rows: list, attname: str, owner_cache: str, owners: dict, by_key: dict[Any, list], plain: bool) -> None:
    """Append each row to its key's list in ``by_key`` and cache its owner
    (``owners[key]``) on it as ``owner_cache``, as Django's set_cached_value
    caches it (the field's own: see :func:`_plain_cache_setter`). ``plain``:
    the rows came with empty caches, given as one dict each. The C
    extension's ``attach_owners`` runs the same loop where it is loaded."""
    # Django's set_cached_value, written out: one call fewer per row; the
    # key read from the instance's __dict__ (a loaded field's value lives
    # there), not through the attribute's descriptor: one call fewer again.
    # One pass over the rows (the key read as _key_values reads it,
    # inline: no list of keys, no second loop).
    if plain:
        # No cache yet: given as one dict, not made by the state's
        # descriptor on first read (a call per row).
        for row in rows:
            try:
                key = row.__dict__[attname]
            except KeyError:  # deferred: the descriptor knows
                key = getattr(row, attname)
            by_key[key].append(row)
            row._state.fields_cache = {owner_cache: owners[key]}
        return
    # A row that holds its owner already (the Prefetch queryset's
    # select_related joined it) keeps it, as in Django's prefetcher.
    for row in rows:
        try:
            key = row.__dict__[attname]
        except KeyError:
            key = getattr(row, attname)
        by_key[key].append(row)
        cache = row._state.fields_cache
        if owner_cache not in cache:
            cache[owner_cache] = owners[key]


async def _prefetch_forward_fk(
    objs: list, field: Any, db: str, queryset: type[VinylQuerySet], together: bool, fresh: bool = False
) -> None:
    """Cache each instance's related object (or None), as Django's prefetcher does
    (``fresh``: in the empty cache of each, given as one dict)."""
    values = _key_values(objs, field.attname)
    # (Each distinct key once, in order, None left out: no generator resumed per value.)
    distinct = dict.fromkeys(values)
    distinct.pop(None, None)
    keys = list(distinct)
    related_model = vinyl_model(field.related_model)
    target = field.target_field
    if keys:
        await queryset(related_model, using=db).filter(**{f"{target.name}__in": keys})._fetch_then(
            lambda rows: _attach_forward(rows, objs, values, field, target.attname, fresh), together
        )
    else:
        _attach_forward([], objs, values, field, target.attname, fresh)


@batched
def _attach_forward(rows: list, objs: list, values: list, field: Any, target: str, fresh: bool = False) -> None:
    # The first row of each key, as setdefault would keep it (one comprehension, no call per row).
    by_key: dict[Any, Any] = {getattr(row, target): row for row in reversed(rows)}
    cache_name = field.cache_name
    get = by_key.get
    if fresh:
        # No cache yet: given as one dict, not made by the state's
        # descriptor on first read (a call per instance).
        for obj, value in zip(objs, values):
            obj._state.fields_cache = {cache_name: get(value)}
        return
    for obj, value in zip(objs, values):
        obj._state.fields_cache[cache_name] = get(value)


def _key_values(objs: list, attname: str) -> list:
    """``getattr(obj, attname)`` of each instance, ``attname`` a foreign key's.

    Read from the instance's __dict__, where a loaded value lives (a foreign
    key's attname has a data descriptor, so every instance holding one has
    its __dict__): the descriptor's call skipped, once per instance.
    """
    try:
        return [obj.__dict__[attname] for obj in objs]
    except KeyError:  # a deferred one: the descriptor knows
        return [getattr(obj, attname) for obj in objs]


async def _prefetch_many_to_many(objs: list, relation: ManyToMany, db: str, source: Any, together: bool) -> bool:
    """Django's many-to-many prefetch query, through a plan; each owner's rows cached on it.
    Whether those were built plainly (as :func:`_prefetch_reverse_fk` says)."""
    owner_key = relation.owner_key.attname
    values = [getattr(obj, owner_key) for obj in objs]
    keys = list(dict.fromkeys(values))
    related_model = vinyl_model(relation.related_model)
    extra = f"_prefetch_related_val_{relation.local.attname}"
    if keys:
        qn = connections[db].ops.quote_name
        related = source(related_model, db)
        owners = {f"{relation.query_field_name}__in": keys}
        if _joins_through(related, relation.query_field_name):
            # A Prefetch queryset filtered through the relation already joins
            # its table: Django's prefetcher filters on the owners reusing
            # that join (one row per related object and owner), where
            # filter() would join again. Built by Django, not planned.
            built = related._django()
            _compat.filter_reusing_joins(built, Q(**owners))
            related = type(related)._wrap(built)
        else:
            related = related.filter(**owners)
        base = source(related_model, db)
        plain = empty_caches(related_model, base)  # (before the read: see _prefetch_reverse_fk)
        await related.extra(select={extra: f"{qn(relation.table)}.{qn(relation.local.column)}"})._fetch_then(
            lambda rows: _attach_many(rows, objs, values, relation, related_model, db, extra, base), together
        )
        return plain
    _attach_many([], objs, values, relation, related_model, db, extra, source(related_model, db))
    return True


def _joins_through(related: Any, name: str) -> bool:
    """Does a step of ``related`` (a Prefetch's queryset) look up through relation ``name``?"""
    steps = getattr(related, "_steps", ())
    if getattr(related, "_recipe", ()) is None:
        return True  # built by Django from steps vinyl does not read: assume it may
    return any(
        key.split("__", 1)[0] == name or key == name
        for method, _args, kwargs in steps if method in ("filter", "exclude")
        for key in kwargs
    )


@batched
def _attach_many(rows: list, objs: list, values: list, relation: ManyToMany, related_model: type, db: str, extra: str, base: Any) -> None:
    # Keys compared as Django's prefetcher compares them: prepared for the database.
    connection = connections[db]
    local, owner_key = relation.local, relation.owner_key
    (ints_local, prep_local), (ints_owner, prep_owner) = _prepare(local, connection), _prepare(owner_key, connection)
    by_key: dict[Any, list] = {}
    rowbuild = instances.ROWBUILD
    group = rowbuild.group_rows if rowbuild is not None and type(rows) is list else _group_rows
    group(rows, extra, ints_local, prep_local, by_key)
    # An owner without rows gets a list of its own, as from Django's prefetcher.
    get = by_key.get
    rows_of = [get(value if ints_owner and type(value) is int and value else prep_owner(value)) or [] for value in values]
    core = f"{relation.query_field_name}__{owner_key.name}"
    _compat.cache_prefetched(
        PrefetchedQuerySet, related_model, _db(db, base), _call(core, base, sticky=True), relation.cache_name, objs, rows_of, values,
        compiled=_compiled_querysets(),
    )  # fmt: skip


def _group_rows(rows: list, attname: str, ints: bool, prepare: Any, by_key: dict[Any, list]) -> None:
    """Append each row to the list in ``by_key`` of its key: its ``attname``
    prepared for the database (``prepare``, which ``ints`` says a non-zero
    int skips: see :func:`_prepare`). The C extension's ``group_rows`` runs
    the same loop where it is loaded."""
    get = by_key.get
    for row in rows:
        key = getattr(row, attname)
        if not (ints and type(key) is int and key):
            key = prepare(key)
        # (No list made per row for setdefault: one per owner key.)
        group = get(key)
        if group is None:
            by_key[key] = [row]
        else:
            group.append(row)


def _compiled_querysets() -> Any:
    """The C loop of :func:`vinyl._compat.cache_prefetched`, where the C
    extension is loaded (chosen as the row builder is), else None."""
    rowbuild = instances.ROWBUILD
    return None if rowbuild is None else rowbuild.cache_querysets


def _prepare(field: Any, connection: Any) -> tuple[bool, Any]:
    """``(ints, prepare)``: ``prepare(value)`` is ``field.get_db_prep_value(value,
    connection)``, which ``ints`` says a non-zero int may skip (the callers
    test it inline: one call fewer per row).

    (An integer field prepares a non-zero int as ``int(value)``: the same int;
    0 goes through Django, which refuses it for an AutoField on MySQL.)
    """
    target = field.target_field if field.is_relation else field
    prep = field.get_db_prep_value
    ints = isinstance(target, models.IntegerField) and type(target).get_db_prep_value in _INT_PREP
    return ints, lambda value: prep(value, connection)


#: Django's own get_db_prep_value of integer fields (an int stays that int).
_INT_PREP = {models.IntegerField.get_db_prep_value, models.AutoField.get_db_prep_value, models.BigAutoField.get_db_prep_value}


#: Models whose instances vinyl builds without running code of the model
#: (vinyl.translate.instances.plain_construction, signals aside).
_PLAIN_MODELS: set[type] = set()


def empty_caches(model: Any, related: Any) -> bool:
    """Do the rows ``related`` (a vinyl queryset) reads come with an empty
    related-object cache? Yes without select_related, for a model whose
    instances are built as Django's ``from_db`` builds them, no init signal
    receivers: nothing runs that could fill it."""
    steps = getattr(related, "_steps", None)
    if steps is None or related._recipe is None or any(step[0] == "select_related" for step in steps):
        return False
    if pre_init.has_listeners(model) or post_init.has_listeners(model) or not caches_assignable():
        return False
    if model not in _PLAIN_MODELS:
        if not plain_construction(model, [field.attname for field in model._meta.concrete_fields]):
            return False
        _PLAIN_MODELS.add(model)
    return True


def _plain_cache_setter(field: Any) -> bool:
    """Is ``field.set_cached_value`` Django's own (one store in the instance's cache)?"""
    return type(field).set_cached_value is FieldCacheMixin.set_cached_value


class PrefetchedQuerySet(QuerySet):
    """The queryset of one owner's prefetched rows.

    Django's related manager would clone its queryset twice per owner; here
    each owner's queryset holds only its model, alias, rows and filter
    value (the rest of the state is the class's, see
    :func:`vinyl._compat.install_prefetched_state`), and gets its own
    ``Query`` (with the filter on the owner, Django's deferred filter) only
    if code chains on it. Iterating it gives the prefetched rows.
    """

    #: What every queryset of one prefetch shares: ``(filter name, the
    #: reverse foreign key whose owner it knows or None, the vinyl queryset
    #: of a Prefetch or None, sticky)``; None for a clone.
    _vinyl_call: tuple | None = None
    #: The owner filter's value, and (a reverse foreign key) the owner's key.
    _vinyl_value: Any = None
    _vinyl_key: Any = None

    @property
    def query(self) -> Any:
        query = _compat.lazy_query(self)
        if query is None:
            call = self._vinyl_call
            if call is None:  # (not one vinyl built: Django gave it its query)
                return QuerySet.query.fget(self)
            source = call[2]
            query = Query(self.model) if source is None else source._django().query.chain()
            # A many-to-many manager's filter is sticky: the next filter
            # reuses its join, as Django's related manager's does.
            query.filter_is_sticky = call[3]
            _compat.set_lazy_query(self, query)
        # (Applies the owner filter, _deferred_filter, once.)
        return QuerySet.query.fget(self)

    @query.setter
    def query(self, value: Any) -> None:
        QuerySet.query.fset(self, value)

    # Django's copy and pickle read the instance's attributes: the state
    # made when read is stored first.
    def __deepcopy__(self, memo: dict) -> Any:
        _compat.store_prefetched_state(self)
        return QuerySet.__deepcopy__(self, memo)

    def __getstate__(self) -> dict:
        _compat.store_prefetched_state(self)
        return QuerySet.__getstate__(self)


def _known(qs: PrefetchedQuerySet) -> dict:
    """The owners a prefetched queryset sets on its rows if chained: its
    owner for a reverse foreign key, as Django's related manager has it."""
    call = qs._vinyl_call
    if call is None or call[1] is None:
        return {}
    return {call[1]: {qs._vinyl_key: qs._vinyl_value}}


def _deferred(qs: PrefetchedQuerySet) -> Any:
    """The owner filter a prefetched queryset applies when its query is built,
    as Django's related manager defers it: ``(negate, args, kwargs)``."""
    call = qs._vinyl_call
    return None if call is None else (False, (), {call[0]: qs._vinyl_value})


_compat.install_prefetched_state(PrefetchedQuerySet, VinylModelIterable, _known, _deferred)


def _db(db: str, base: Any) -> str:
    """The alias of the prefetched querysets: the Prefetch queryset's own, or ``db``."""
    return db if base is None or base._db is None else base._db


def _call(name: str, base: Any, *, known: Any = None, sticky: bool = False) -> tuple:
    """The ``_vinyl_call`` of one prefetch's querysets (see PrefetchedQuerySet)."""
    # A Prefetch's queryset (filters, order, select_related): Django's
    # related manager starts from its query (_apply_rel_filters).
    source = base if base is not None and base._steps else None
    return (name, known, source, sticky)
