"""``VinylQuerySet``: Django's QuerySet API, awaited.

A ``VinylQuerySet`` holds a Django ``QuerySet`` of the vinyl model class.
Chainable methods return a new ``VinylQuerySet`` and never touch the
database; ``await qs`` and the terminal coroutines run Django's own
implementation on vinyl's connection (see ``vinyl._bridge``).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import itertools
import logging
import traceback
from contextlib import aclosing
from typing import (
    Any, AsyncGenerator, AsyncIterator, Awaitable, Callable, ClassVar, Concatenate, Coroutine, Generator, Generic,
    Iterator, Optional, ParamSpec, TypeVar, Union, overload,
)  # fmt: skip

from django.db import DatabaseError, connections, models, router
from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db.models import Prefetch, QuerySet, prefetch_related_objects
from django.db.models.query import ModelIterable

from vinyl import _bridge, _compat, generic, prefetch, routing
from vinyl._aliases import QUERYSET_ALIASES, add_async_aliases
from vinyl._vinylize import VinylModelIterable, adopt_related, vinyl_model
from vinyl.engine.checkout import checkout, end_interrupted, release
from vinyl.engine.disconnects import is_disconnect
from vinyl.engine.engines import DEFAULT_ALIAS, engine_entry
from vinyl.engine.scope import Scope, active_scope, bound_scope, close_rows, is_failure, write_failed
from vinyl.engine.statements import fetch, write
from vinyl.engine.streams import stream
from vinyl.exceptions import DatabaseUnavailable
from vinyl.translate import inserts
from vinyl.translate.gcpause import GC_PAUSE_ROWS, held_gc, paused_gc
from vinyl.translate.plan_cache import PlanCache, known_plan_cache
from vinyl.translate.plans import (
    LATER,
    NEVER,
    VALUE_ERRORS,
    Builder,
    Plan,
    Statement,
    in_other_zone,
    statement_outcome,
    value_adapters,
    widened_outcome,
    zone_sensitive,
)
from vinyl.translate.recipes import EMPTY, EXTENDED, Recipe, cleared_with, recipe_of
from vinyl.translate.shapes import _literal_limits, deferrable, long_list_span, probe_values, step_shape, substitute, update_shape

M = TypeVar("M", bound=models.Model)

logger = logging.getLogger("vinyl.routing")

_SYNC_USE = (
    "cannot evaluate a vinyl QuerySet synchronously: use `await qs` for a list "
    "or `async for obj in qs` to stream it"
)

#: Default rows per fetch when streaming with ``async for``.
DEFAULT_CHUNK_SIZE = 2000

#: Rows of a streamed chunk built at a time. Fewer than a batch that pauses
#: the collector (vinyl.translate.gcpause): a stream's objects are let go as
#: the consumer moves on, mostly before any collection sees them, whereas a
#: whole chunk built at once stays alive until its last object is consumed,
#: and the first collection after the pause walks all of it (about 1,200
#: instructions per row, a sixth of a stream's cost).
STREAM_SLICE = GC_PAUSE_ROWS // 2

#: How many times get_or_create / update_or_create run in all when the
#: database breaks a deadlock by rolling their transaction back.
CONFLICT_ATTEMPTS = 5


R = TypeVar("R")
P = ParamSpec("P")
Q = TypeVar("Q", bound="VinylQuerySet[Any]")


def _falls_back(
    read: Callable[Concatenate[Q, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Q, P], Coroutine[Any, Any, R]]:
    """Run a routed read once more on the routers' fallback when its alias is down.

    See ``vinyl.routing``: only reads the routers placed, outside a
    transaction, and only when a router's ``db_for_read_fallback`` answers.
    """

    @functools.wraps(read)
    async def wrapper(self: Q, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await read(self, *args, **kwargs)
        except DatabaseUnavailable as exc:
            other = self._fallback(exc)
            if other is None:
                raise
            return await read(self.using(other), *args, **kwargs)  # type: ignore[arg-type]

    return wrapper


def _on_managers(method: Callable[..., R]) -> Callable[..., R]:
    """Mark a QuerySet coroutine that managers offer as the same function.

    It starts from ``self._queryset()`` (the manager's ``get_queryset()``, a
    QuerySet itself), so ``Book.vinyl.get(...)`` runs in one coroutine instead
    of a proxy's awaiting the QuerySet's (see ``vinyl.proxies``). Such a
    method falls back itself (``_fallback``), as ``_falls_back`` would.
    """
    method._vinyl_on_managers = True  # type: ignore[attr-defined]
    return method


# Calls Django has accepted: (model, recipe, shape of the call) -> (the
# recipe after the call, whether a call of that shape may skip Django's
# query building: see shapes.deferrable). One lookup per chained call finds
# both. Bounded: the oldest call goes first.
_validated: dict[tuple, tuple[Recipe, bool]] = {}
_VALIDATED_MAX = 10_000


cleared_with(_validated)  # (its recipes are EXTENDED's: forgotten with them)


def _remember(key: tuple, known: tuple[Recipe, bool]) -> None:
    if key not in _validated and len(_validated) >= _VALIDATED_MAX:
        del _validated[next(iter(_validated))]
    _validated[key] = known


#: Steps after which a queryset still builds instances with the iterable
#: class it started with (only values(), values_list(), dates() and
#: datetimes() change it; anything not listed builds the query to ask).
_MODEL_ROW_STEPS = frozenset({
    "all", "filter", "exclude", "complex_filter", "order_by", "reverse", "distinct", "select_related",
    "prefetch_related", "only", "defer", "using", "__getitem__", "annotate", "alias", "extra",
    "select_for_update", "none",
})  # fmt: skip
# A new object of a class, its __init__ not run (a QuerySet of a chained call).
_new = object.__new__
# The recipe of a recipe and a call's shape, if made: EXTENDED's own lookup
# (``EXTENDED[recipe, shape]`` goes through a Python-level slot, a dict
# subclass's, about 300 instructions more).
_extension = EXTENDED.get
# Values _unwrap() gives back as they are (checked by type first: cheaper).
_PLAIN_VALUES = frozenset({int, str, float, bool, type(None), datetime.datetime, datetime.date, decimal.Decimal})
# Arguments _unwrap() gives back as they are (``order_by("id")``, ``qs[:10]``).
_AS_IS = _PLAIN_VALUES | {slice}


def _unwrap(value: Any) -> Any:
    """Return the Django QuerySet behind a vinyl one (anything else as is).

    On its vinyl alias: Django evaluates some of them itself (``in_bulk``'s
    ids, ``Prefetch`` querysets), and its own router knows no vinyl alias.
    A ``Prefetch`` of a vinyl queryset becomes a :class:`_VinylPrefetch`.
    """
    if isinstance(value, VinylQuerySet):
        return value._django()
    if isinstance(value, Prefetch) and isinstance(value.queryset, VinylQuerySet):
        return _VinylPrefetch.of(value)
    return value


class _VinylPrefetch(Prefetch):
    """A ``Prefetch`` of a vinyl queryset, as Django is given it.

    vinyl's prefetcher reads the vinyl queryset (``_vinyl_queryset``) and
    never the Django one, which is built (on the alias the vinyl queryset
    had when given) only when something reads ``queryset``: Django's
    prefetcher, a copy, pickling. Building it at every
    ``prefetch_related(Prefetch(...))`` cost Django's ``filter()`` and
    ``order_by()`` per read.
    """

    _vinyl_queryset: VinylQuerySet[Any]
    _vinyl_alias: str

    @classmethod
    def of(cls, given: Prefetch) -> _VinylPrefetch:
        """The Prefetch Django is given for ``given`` (whose queryset is a vinyl one)."""
        clone = cls(given.prefetch_through, None, given.to_attr)
        clone.prefetch_to = given.prefetch_to
        del clone.__dict__["queryset"]  # unbuilt
        inner = given.queryset
        clone._vinyl_queryset = inner  # vinyl.prefetch reads through it
        clone._vinyl_alias = inner.db  # as _django() would set it now
        return clone

    @property
    def queryset(self) -> Any:
        """The Django QuerySet of the vinyl one, built on first read."""
        state = self.__dict__
        try:
            return state["queryset"]
        except KeyError:
            state["queryset"] = built = self._vinyl_queryset._django_on(self._vinyl_alias)
            return built

    @queryset.setter
    def queryset(self, value: Any) -> None:
        self.__dict__["queryset"] = value


def _compiles_as_django(qs: QuerySet, db: str) -> None:
    """Compile an empty query (``none()``, ``__in=[]``) without running it.

    Django compiles it before finding that it is empty, so its compile-time
    errors (a year out of range, a non-bool ``isnull``) are raised; vinyl
    answers such a query without SQL, and raises them too.
    """
    try:
        qs.query.get_compiler(db).as_sql()
    except (EmptyResultSet, FullResultSet):
        pass


def _scalar_read(kind: str) -> Callable[[Any], Coroutine[Any, Any, Any]]:
    """Build ``count()`` or ``exists()`` (``kind``): the same steps, each
    method one coroutine of its own (a shared coroutine both awaited would
    add a frame to every call)."""

    @_on_managers
    async def read(self: VinylQuerySet[Any]) -> Any:
        if type(self) is not VinylQuerySet:
            self = self._queryset()  # (a manager's: its get_queryset())
        try:
            recipe = self._recipe
            if recipe is None and self._qs.query.is_empty():
                # Django's own count() / exists(): it compiles its query (not
                # the SELECT: no select_related or value checks of its own),
                # finds it empty and runs nothing.
                return await self._read(kind)
            # The alias, engine entry (None without a recipe), plan cache,
            # key and plan, looked up here (one call less per statement).
            db = self._db
            if db is None:
                # (The db property's usual answer written out.)
                db = DEFAULT_ALIAS if self._built is None and not router.routers else self.db
            entry = engine_entry(db) if recipe is not None else None
            # (known_plan_cache(db, entry), its usual answer read here.)
            cache = entry.plans if entry is not None and entry.facts is not None else None
            if cache is None and entry is not None:
                cache = known_plan_cache(db, entry)
            key = (self._model, kind, recipe)
            plan = cache.lookup(key) if cache is not None else None
            if type(plan) is Plan:
                values = self._values
                params = values if len(values) == plan.as_given else plan.params(values)
                return plan.build(await fetch(db, plan.sql, params, entry))
            return await self._unplanned_scalar(db, cache, key, plan, kind)
        except DatabaseUnavailable as exc:
            other = self._fallback(exc)
            if other is None:
                raise
            return await getattr(self.using(other), kind)()

    read.__name__ = kind
    read.__qualname__ = f"VinylQuerySet.{kind}"
    return read


class VinylQuerySet(Generic[M]):
    """A lazy, awaitable QuerySet.

    ::

        books = await Book.vinyl.filter(author__name="Ann").order_by("-id")[:10]
        book = await Book.vinyl.get(pk=1)
        async for book in Book.vinyl.all():
            ...
    """

    # A QuerySet built only from calls whose shape is known (see
    # vinyl.translate.shapes) keeps its recipe: the shapes of its calls and
    # their slot values. Its Django QuerySet is built only when needed, so a
    # query whose plan is cached skips Django's query building and compiler.
    __slots__ = ("_built", "_model", "_db", "_steps", "_recipe", "_values")

    # (See create(): a manager reading as its fresh QuerySet sets it.)
    _vinyl_fresh: ClassVar[bool] = False

    def __init__(self, model: type[M] | None = None, *, using: str | None = None, queryset: QuerySet | None = None) -> None:
        if queryset is not None:
            self._set_built(queryset)
            return
        if model is None:
            raise TypeError("VinylQuerySet() needs a model or a queryset")
        self._start(model, using)

    def _start(self, model: type[M], db: str | None) -> None:
        """All rows of ``model`` (on ``db``, None: the routers'), nothing built yet."""
        self._built: QuerySet | None = None
        self._model = model
        self._db = db
        self._steps: tuple = ()
        self._recipe: Recipe | None = EMPTY
        self._values: tuple = ()

    def _set_built(self, queryset: QuerySet) -> None:
        self._built = queryset
        self._model = queryset.model
        self._db = _compat.given_alias(queryset)
        self._steps = ()
        self._recipe = None
        self._values = ()

    @classmethod
    def _fresh(cls, model: type[M], db: str | None) -> VinylQuerySet[M]:
        """``VinylQuerySet(model, using=db)`` without its checks and keyword
        (a manager's first call: ``Book.vinyl.filter(...)``, ``.get(...)``)."""
        new = cls.__new__(cls)
        # (_start written out: every manager's query starts here.)
        new._built = None
        new._model = model
        new._db = db
        new._steps = ()
        new._recipe = EMPTY
        new._values = ()
        return new

    @classmethod
    def _wrap(cls, queryset: QuerySet) -> VinylQuerySet:
        new = cls.__new__(cls)
        new._set_built(queryset)
        return new

    @property
    def _qs(self) -> QuerySet:
        """The Django QuerySet, built from the recipe on first use."""
        built = self._built
        if built is None:
            built = _new_django_queryset(self._model, self._db)
            for method, args, kwargs in self._steps:
                built = _compat.django_step(built, method, args, kwargs)
            self._built = built
        return built

    # What Django reads when a vinyl QuerySet is used as a value
    # (Subquery, Exists, __in lookups, Prefetch).

    @property
    def query(self) -> Any:
        return self._qs.query

    @query.setter
    def query(self, value: Any) -> None:
        self._qs.query = value
        self._recipe = None

    @property
    def model(self) -> type[M]:
        return self._model

    @property
    def db(self) -> str:
        """The alias a read runs on: ``using()``'s, else the routers' (vinyl.routing)."""
        if self._db is not None:
            return self._db
        built = self._built
        if built is None and not router.routers:
            # No hints (nothing built): without routers, reads and writes
            # alike run on the default alias, as routing.db_for_read() decides
            # (asked here without its call: every statement asks).
            return DEFAULT_ALIAS
        hints, for_write = routing.queryset_routing(built)
        if for_write or (built is None and any(s[0] == "select_for_update" for s in self._steps)):
            return routing.db_for_write(self._model, **hints)
        return routing.db_for_read(self._model, **hints)

    @property
    def _write_db(self) -> str:
        """The alias a write runs on: ``using()``'s, else the routers'."""
        if self._db is not None:
            return self._db
        if self._built is None and not router.routers:
            return DEFAULT_ALIAS  # no hints: without routers, the default alias (see db)
        return routing.db_for_write(self._model, **routing.queryset_routing(self._built)[0])

    def _queryset(self) -> VinylQuerySet[M]:
        """This QuerySet (a manager's is its ``get_queryset()``: see ``_on_managers``)."""
        return self

    def _fallback(self, exc: DatabaseUnavailable) -> str | None:
        """The alias a read that could not connect runs on instead, if any (logged)."""
        if self._db is not None or exc.alias != self.db or active_scope(exc.alias) is not None:
            return None
        other = routing.read_fallback(self._model, exc.alias, **routing.queryset_routing(self._built)[0])
        if other is not None:
            logger.warning(
                "%s: database alias %r is unavailable, reading from %r as the routers' "
                "db_for_read_fallback says (%s)", self._model.__name__, exc.alias, other, exc,
            )
        return other

    def _django(self, write: bool = False) -> QuerySet:
        """A copy of the Django QuerySet, on the alias this call runs on."""
        return self._django_on(self._write_db if write else self.db)

    def _django_on(self, alias: str) -> QuerySet:
        """A copy of the Django QuerySet, on ``alias`` unless it names one of its own."""
        qs = _compat.chain(self._qs)
        if _compat.given_alias(qs) is None:
            _compat.set_alias(qs, alias)
        return qs

    @property
    def ordered(self) -> bool:
        return self._qs.ordered

    @property
    def _iterable_class(self) -> type:
        # (Read by Django's Prefetch() of every vinyl queryset: answered
        # without building the Django query where no step changes it.)
        if self._built is None:
            for step in self._steps:
                if step[0] not in _MODEL_ROW_STEPS:
                    break
            else:
                return VinylModelIterable  # what _new_django_queryset gives
        return _compat.iterable_class(self._qs)

    def resolve_expression(self, *args: Any, **kwargs: Any) -> Any:
        return self._qs.resolve_expression(*args, **kwargs)

    def _has_filters(self) -> Any:
        return self._qs.query.has_filters()

    def as_django(self) -> QuerySet:
        """Return the Django QuerySet this one runs (same query, same alias)."""
        return self._django()

    # Chainable methods --------------------------------------------------

    def _chain(self, method: str, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chained(method, args, kwargs)

    def _chained(self, method: str, args: tuple, kwargs: dict[str, Any]) -> VinylQuerySet[M]:
        """The QuerySet of this one's calls and ``method(*args, **kwargs)``.

        ``kwargs`` is kept: a dict of the caller's own (its ``**kwargs``).
        """
        # (Loops, not comprehensions: each of those is a call of its own.)
        for arg in args:
            if type(arg) not in _AS_IS:
                args = tuple([_unwrap(a) for a in args])
                break
        for value in kwargs.values():
            if type(value) not in _PLAIN_VALUES:
                kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
                break
        recipe = self._recipe
        shaped = step_shape(method, args, kwargs) if recipe is not None else None
        cls = type(self)
        if cls is not VinylQuerySet and not issubclass(cls, VinylQuerySet):
            cls = VinylQuerySet  # (self: a manager, see BoundVinylManager.filter)
        new = _new(cls)
        if shaped is None:
            new._set_built(_compat.django_step(self._qs, method, args, kwargs))
            return new
        shape, values = shaped
        model = self._model
        new._model = model
        new._db = args[0] if method == "using" else self._db
        new._steps = self._steps + ((method, args, kwargs),)
        new._values = self._values + values
        key = (model, recipe, shape)
        known = _validated.get(key)
        if known is not None and known[1] and self._built is None:
            # Django accepted this shape before, and accepts these values
            # alike: build it only when needed.
            new._recipe = known[0]
            new._built = None
            return new
        # Build now, so a bad field name raises FieldError, and a bad value
        # ValueError or ValidationError, at the call (as Django).
        new._built = _compat.django_step(self._qs, method, args, kwargs)
        if known is None:
            known = (EXTENDED[recipe, shape], deferrable(model, method, kwargs))
            _remember(key, known)
        new._recipe = known[0]
        return new

    def _named(self, method: str, names: tuple) -> VinylQuerySet[M] | None:
        """``_chained(method, names, {})`` for a call of names only (``order_by("id")``)
        whose shape Django accepted before on this unbuilt recipe, else None.

        (Its shape is step_shape's for such a call, made here: no frames of
        _chained and step_shape for the calls most reads make.)
        """
        for name in names:
            if type(name) is not str:
                return None
        return self._known_step((method, names, ()), (method, names, {}))

    def _known_step(self, shape: tuple, step: tuple) -> VinylQuerySet[M] | None:
        """The QuerySet after ``step`` (a recorded call, of this ``shape``), made
        without Django where Django accepted that shape before on this unbuilt
        recipe and marked it deferrable (as _chained would skip building it);
        else None. Only for calls whose shape has no slot values."""
        recipe = self._recipe
        if recipe is None or self._built is not None:
            return None
        known = _validated.get((self._model, recipe, shape))
        if known is None or not known[1]:
            return None
        new = _new(type(self))
        new._built = None
        new._model = self._model
        new._db = self._db
        new._steps = self._steps + (step,)
        new._recipe = known[0]
        new._values = self._values
        return new

    def all(self) -> VinylQuerySet[M]:
        return self._chain("all")

    def filter(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chained("filter", args, kwargs)

    def exclude(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chained("exclude", args, kwargs)

    def complex_filter(self, filter_obj: Any) -> VinylQuerySet[M]:
        return self._chain("complex_filter", filter_obj)

    def order_by(self, *fields: Any) -> VinylQuerySet[M]:
        new = self._named("order_by", fields)
        return self._chained("order_by", fields, {}) if new is None else new

    def reverse(self) -> VinylQuerySet[M]:
        return self._chain("reverse")

    def distinct(self, *fields: str) -> VinylQuerySet[M]:
        return self._chain("distinct", *fields)

    def values(self, *fields: Any, **expressions: Any) -> VinylQuerySet[Any]:
        return self._chain("values", *fields, **expressions)

    def values_list(self, *fields: Any, flat: bool = False, named: bool = False) -> VinylQuerySet[Any]:
        return self._chain("values_list", *fields, flat=flat, named=named)

    def annotate(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chain("annotate", *args, **kwargs)

    def alias(self, *args: Any, **kwargs: Any) -> VinylQuerySet[M]:
        return self._chain("alias", *args, **kwargs)

    def select_related(self, *fields: Any) -> VinylQuerySet[M]:
        if not fields and _compat.BARE_SELECT_RELATED_DEPRECATED:
            _compat.warn_bare_select_related()
        new = self._named("select_related", fields)
        return self._chained("select_related", fields, {}) if new is None else new

    def prefetch_related(self, *lookups: Any) -> VinylQuerySet[M]:
        return self._chain("prefetch_related", *lookups)

    def only(self, *fields: str) -> VinylQuerySet[M]:
        return self._chain("only", *fields)

    def defer(self, *fields: Any) -> VinylQuerySet[M]:
        return self._chain("defer", *fields)

    def using(self, alias: str) -> VinylQuerySet[M]:
        return self._chain("using", alias)

    def none(self) -> VinylQuerySet[M]:
        return self._chain("none")

    def fetch_mode(self, fetch_mode: Any) -> VinylQuerySet[M]:
        """Django 6.1's ``fetch_mode()``, kept on the instances for Django's own code.

        vinyl never fetches on attribute access: whatever the mode, reading a
        deferred field or a relation that was not loaded raises (Django's
        ``FieldFetchBlocked``, as with ``FETCH_RAISE``). Load with
        ``select_related`` / ``prefetch_related``, or ``await`` the relation.
        """
        return self._chain("fetch_mode", fetch_mode)

    def select_for_update(self, nowait: bool = False, skip_locked: bool = False, of: tuple = (), no_key: bool = False) -> VinylQuerySet[M]:
        qs = self._chain("select_for_update", nowait=nowait, skip_locked=skip_locked, of=of, no_key=no_key)
        # Asked for by the user (not by Django's own update_or_create): a
        # backend without row locks (SQLite) refuses it instead of ignoring it.
        qs._qs.query._vinyl_select_for_update = True
        return qs

    def union(self, *others: Any, all: bool = False) -> VinylQuerySet[M]:
        return self._chain("union", *others, all=all)

    def intersection(self, *others: Any) -> VinylQuerySet[M]:
        return self._chain("intersection", *others)

    def difference(self, *others: Any) -> VinylQuerySet[M]:
        return self._chain("difference", *others)

    def dates(self, field_name: str, kind: str, order: str = "ASC") -> VinylQuerySet[Any]:
        return self._chain("dates", field_name, kind, order=order)

    def datetimes(self, field_name: str, kind: str, order: str = "ASC", tzinfo: Any = None) -> VinylQuerySet[Any]:
        return self._chain("datetimes", field_name, kind, order=order, tzinfo=tzinfo)

    def extra(
        self,
        select: Any = None,
        where: Any = None,
        params: Any = None,
        tables: Any = None,
        order_by: Any = None,
        select_params: Any = None,
    ) -> VinylQuerySet[M]:
        """Django's ``extra()``, kept for old code; prefer expressions or ``raw()``."""
        return self._chain(
            "extra", select=select, where=where, params=params, tables=tables,
            order_by=order_by, select_params=select_params,
        )  # fmt: skip

    def raw(self, raw_query: str, params: Any = (), translations: Any = None, using: str | None = None) -> Any:
        """Map raw SQL to instances of this model: see ``Model.vinyl.raw()``."""
        from vinyl.raw import VinylRawQuerySet

        return VinylRawQuerySet(self.model, raw_query, params, translations, using or self.db)

    # Evaluation -----------------------------------------------------------

    def __await__(self) -> Generator[Any, None, list[M]]:
        return self._fetch().__await__()

    async def _fetch(self) -> list[M]:
        # (_rows and _falls_back written out: a read served by its plan
        # runs in this one coroutine.)
        try:
            recipe = self._recipe
            if recipe is not None:
                for shape in recipe:
                    if shape[0] == "prefetch_related":
                        prefetched = await self._fetch_prefetching()
                        if prefetched is not None:
                            return prefetched
                        break
            db = self._db
            if db is None:
                # (The db property's usual answer written out.)
                db = DEFAULT_ALIAS if self._built is None and not router.routers else self.db
            # (The engine entry looked up once, here, and given to fetch():
            # each lookup asks asyncio for the running loop, a getpid() call.)
            entry = engine_entry(db) if recipe is not None else None
            # (known_plan_cache(db, entry), its usual answer read here.)
            cache = entry.plans if entry is not None and entry.facts is not None else None
            if cache is None and entry is not None:
                cache = known_plan_cache(db, entry)
            key = (self._model, "rows", recipe)
            plan = cache.lookup(key) if cache is not None else None
            if type(plan) is Plan:
                values = self._values
                params = values if len(values) == plan.as_given else plan.params(values)
                return plan.build(await fetch(db, plan.sql, params, entry))
            return await self._unplanned_rows(db, cache, key, plan, self._values, None)
        except DatabaseUnavailable as exc:
            other = self._fallback(exc)
            if other is None:
                raise
            return await self.using(other)._fetch()

    async def _fetch_then(self, attach: Callable[[list], None], together: bool = True) -> None:
        """``attach(await self)``; with ``together``, where a plan serves the
        read, its rows are built and attached with the collector paused once
        over both.

        (A prefetch's related rows and their owners make reference cycles
        that only the cyclic collector frees. A collection between the build
        and the attach would only walk the rows just built, all alive, and
        move them to an older generation than the objects the attach makes,
        which then outlive the result; with no collection before the read's
        last step, the next one, after the caller let the result go, finds
        the whole of it unreachable in the youngest generation.)
        """
        recipe = self._recipe
        if together and recipe is not None and not any(shape[0] == "prefetch_related" for shape in recipe):
            db = self.db
            cache = _plans(db, recipe)
            plan = cache.lookup((self._model, "rows", recipe)) if cache is not None else None
            if type(plan) is Plan:
                try:
                    found = await fetch(db, plan.sql, plan.params(self._values))
                except DatabaseUnavailable as exc:
                    other = self._fallback(exc)
                    if other is None:
                        raise
                    attach(await self.using(other)._fetch())
                    return
                with paused_gc(len(found)):
                    attach(plan.build(found))
                return
        attach(await self._fetch())

    async def _fetch_prefetching(self) -> list[M] | None:
        """Rows and their related rows (foreign keys, many-to-many, nested) through plans (vinyl.prefetch)."""
        steps = [step for step in self._steps if step[0] == "prefetch_related"]
        lookups = [lookup for _, args, _ in steps for lookup in args]
        if any(step[0] in ("values", "values_list") for step in self._steps):
            return None
        tree = prefetch.planned_lookups(self._model, lookups)
        if tree is None:
            return None
        forward = prefetch.has_forward_fk(tree)
        if forward and any(step[0] in ("select_related", "only", "defer") for step in self._steps):
            return None  # a joined or deferred foreign key: Django's prefetcher knows
        base = self.__class__.__new__(self.__class__)
        base._model = self._model
        base._db = self._db
        base._built = None
        base._steps = tuple(step for step in self._steps if step[0] != "prefetch_related")
        base._recipe = recipe_of(shape for shape in self._recipe if shape[0] != "prefetch_related")  # type: ignore[union-attr]
        base._values = self._values
        db = self.db
        # Rows built plainly come with empty caches: a forward foreign key's
        # prefetch gives each its cache as one dict (``fresh``), and no row
        # holds a prefetched relation to look for (``unprefetched``).
        unprefetched = prefetch.empty_caches(self._model, base)
        fresh = forward and unprefetched
        if prefetch.holds_collector(tree):
            # Several levels: the collector paused from the first level's
            # build to the last's attach, round trips between them included
            # (bounded: see held_gc), so that no collection walks the
            # instances built, all alive, before the read returns them.
            recipe = base._recipe
            cache = _plans(db, recipe)
            plan = cache.lookup((base._model, "rows", recipe)) if cache is not None else None
            if type(plan) is Plan:
                found = await fetch(db, plan.sql, plan.params(base._values))
                with held_gc(len(found)) as hold:
                    objs = plan.build(found)
                    await prefetch.prefetch(objs, tree, db, VinylQuerySet, fresh=fresh, hold=hold, unprefetched=unprefetched)
                return objs
        objs = await base._rows("rows", base._recipe, base._values, None)
        await prefetch.prefetch(objs, tree, db, VinylQuerySet, fresh=fresh, unprefetched=unprefetched)
        return objs

    def _unbuilt(self, db: str) -> VinylQuerySet[M]:
        """This recipe on its own alias if it has one, else on ``db`` (as Django's
        prefetcher runs a ``Prefetch`` queryset), unbuilt: its next call builds no
        Django query for a shape Django accepted before (see ``_chain``)."""
        new = self.__class__.__new__(self.__class__)
        new._built = None
        new._model, new._steps, new._recipe, new._values = self._model, self._steps, self._recipe, self._values
        new._db = self._db if self._db is not None else db
        return new

    def _probe(self, probes: tuple, lookups: dict | None, db: str, short: int | None = None) -> QuerySet:
        """The Django QuerySet of this recipe with ``probes`` in its slots, on ``db``.

        ``short``: its long ``__in`` list cut to this many values (``probes`` has as many).
        """
        filled = iter(probes)
        qs = _new_django_queryset(self._model, db)
        for method, args, kwargs in self._steps:
            args, kwargs = substitute(method, args, kwargs, filled, short)
            qs = _compat.django_step(qs, method, args, kwargs)
        if lookups is not None:
            qs = qs.filter(**substitute("filter", (), lookups, filled, short)[1])
        return qs

    async def _rows(self, kind: str, recipe: tuple | None, values: tuple, lookups: dict | None) -> Any:
        """Evaluate through the plan cache: ``rows`` (a list) or ``get`` (one)."""
        db = self.db
        cache = _plans(db, recipe)
        key = (self._model, kind, recipe)
        plan = cache.lookup(key) if cache is not None else None
        if type(plan) is Plan:
            return plan.build(await fetch(db, plan.sql, plan.params(values)))
        return await self._unplanned_rows(db, cache, key, plan, values, lookups)

    async def _unplanned_rows(self, db: str, cache: PlanCache | None, key: tuple, plan: Any, values: tuple, lookups: dict | None) -> Any:
        """:meth:`_rows` when ``key`` (looked up: ``plan``) has no plan yet."""
        kind = key[1]
        qs = self._qs if lookups is None else self._qs.filter(**lookups)
        qs = _compat.chain(qs)
        _compat.set_alias(qs, db)
        compiled = self._compile(qs, cache, key, plan, values, lookups) if cache is not None else None
        if compiled is not None:
            sql, params, build = compiled
            return build(await fetch(db, sql, params))
        if kind == "get":
            return await _bridge.run(db, qs.get, readonly=_reads_only(qs))
        if qs.query.is_empty():
            _compiles_as_django(qs, db)
            return []
        return await _bridge.run(db, _evaluate, qs, readonly=_reads_only(qs))

    def _compile(self, qs: QuerySet, cache: PlanCache, key: tuple, plan: Any, values: tuple, lookups: dict | None) -> tuple[str, tuple, Builder] | None:
        """Compile ``qs`` (the query of ``key``) into driver SQL and a builder.

        The cache keeps its plan (or why there is none); None when Django
        must evaluate ``qs`` itself.
        """
        if not cache.wants(plan) or not _reads_only(qs):
            return None
        return cache.compile_rows(
            key,
            qs,
            values,
            lambda probes, short=None: self._probe(probes, lookups, qs.db, short),
            get=key[1] == "get",
            adopt=adopt_related,
            vinyl_class=vinyl_model,
        )

    def _streamed(self) -> tuple[str, tuple, Builder] | None:
        """The driver SQL and builder of a stream, from the plan of ``await qs``.

        None when Django must stream it (prefetching, no recipe, a shape
        with no plan).
        """
        recipe = self._recipe
        if recipe is None or any(shape[0] == "prefetch_related" for shape in recipe):
            return None
        cache = _plans(self.db, recipe)
        if cache is None:
            return None
        key = (self._model, "rows", recipe)
        plan = cache.lookup(key)
        if type(plan) is Plan:
            return plan.sql, plan.params(self._values), plan.build
        return self._compile(self._django(), cache, key, plan, self._values, None)

    async def _unplanned_scalar(self, db: str, cache: PlanCache | None, key: tuple, plan: Any, method: str) -> Any:
        """count() / exists() when ``key`` (looked up: ``plan``) has no plan yet."""
        kind = key[1]
        qs = self._django()
        # (count() of a slice keeps its bounds as parameters: the probe of every value.)
        span = _long_span(cache, plan, self._recipe, kind == "count")
        if span is not None:
            if not cache.ints_plannable(key, db, self._values):  # type: ignore[union-attr]  # (cache: not None with a span)
                return await _bridge.run(db, getattr(qs, method), readonly=True)
            result, statements, found = await _bridge.run(
                db, _captured_long, db, getattr(qs, method), lambda values, k: getattr(self._probe(values, None, db, k), method),
                zone_sensitive(qs.query), self._values, span, readonly=True,
            )  # fmt: skip
            _record_long(cache, key, db, statements, found, self._values, _SCALAR_BUILDERS[kind])  # type: ignore[arg-type]
            return result
        probed = cache.probes(key, db, self._values, lambda probes: self._probe(probes, None, db)) if cache is not None and cache.wants(plan) else None
        if cache is None or probed is None:
            return await _bridge.run(db, getattr(qs, method), readonly=True)
        probes, probe_qs = probed
        result, statements, probe_statements = await _bridge.run(
            db, _captured, db, getattr(qs, method), getattr(probe_qs, method), zone_sensitive(qs.query), readonly=True
        )
        # (count() keeps the query's slice in a subquery: its bounds are parameters.)
        limits = (qs.query, probe_qs.query) if kind == "count" else None
        cache.record_statements(key, db, statements, probe_statements, self._values, probes, _SCALAR_BUILDERS[kind], limits)
        return result

    @overload
    def __getitem__(self, k: int) -> Coroutine[Any, Any, M]: ...
    @overload
    def __getitem__(self, k: slice) -> VinylQuerySet[M]: ...
    def __getitem__(self, k: int | slice) -> Any:
        if type(k) is slice:
            stop = k.stop
            if k.start is None and k.step is None and type(stop) is int and stop in _literal_limits:
                # (qs[:n] of a limit written into the SQL, the usual slice:
                # its shape, as shapes.slice_shape gives it, made here.)
                new = self._known_step(("slice", "bounds", None, stop), ("__getitem__", (k,), {}))
                if new is not None:
                    return new
            return self._chained("__getitem__", (k,), {})
        if isinstance(k, slice):
            return self._chained("__getitem__", (k,), {})
        if not isinstance(k, int):
            raise TypeError(f"QuerySet indices must be integers or slices, not {type(k).__name__}.")
        return self._item(k)

    @_falls_back
    async def _item(self, k: int) -> Any:
        qs = self._django()
        return await _bridge.run(qs.db, qs.__getitem__, k, readonly=_reads_only(qs))

    def __aiter__(self) -> AsyncIterator[M]:
        return self._iterate(None, sized=False)

    def iterator(self, chunk_size: int | None = None) -> AsyncIterator[M]:
        """Stream rows in chunks: ``async for obj in qs.iterator(chunk_size=500)``.

        A query with a plan (see ``_rows``) streams from a server-side cursor
        straight on the driver, each chunk built as ``await qs`` builds its
        rows; others (prefetch_related...) run Django's iterator in the bridge.
        As in Django, a QuerySet that prefetches needs a ``chunk_size`` here
        (``ValueError``); ``async for`` over it and ``aiterator()`` do not.
        """
        return self._iterate(chunk_size, sized=True)

    def aiterator(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> AsyncIterator[M]:
        """Django's ``aiterator()``: ``iterator()`` with a chunk size of 2,000 unless given, prefetching too."""
        return self._iterate(chunk_size, sized=False)

    async def _iterate(self, chunk_size: int | None, sized: bool) -> AsyncIterator[M]:
        """The stream of ``iterator(chunk_size)``; ``sized``: a prefetch without a chunk size is refused."""
        if chunk_size is not None and chunk_size <= 0:
            raise ValueError("Chunk size must be strictly positive.")
        size = chunk_size or DEFAULT_CHUNK_SIZE
        streamed = self._streamed()
        if streamed is not None:
            # Straight on the driver: a server-side cursor read a chunk at a
            # time, each chunk built by the plan (see vinyl.engine.streams.stream).
            sql, params, build = streamed
            async with aclosing(stream(self.db, sql, params, size)) as chunks:
                async for chunk in chunks:
                    for start in range(0, len(chunk), STREAM_SLICE):
                        for obj in build(chunk[start : start + STREAM_SLICE]):
                            yield obj
            return
        qs = self._django()
        if _compat.prefetch_lookups(qs) and chunk_size is None:
            if sized:
                raise ValueError("chunk_size must be provided when using QuerySet.iterator() after prefetch_related().")
            # (``async for``: the prefetches are batched by chunks of this size.)
            size = 100
        if qs.query.is_empty():
            _compiles_as_django(qs, qs.db)
            return
        alias = qs.db
        scope: Scope | None = active_scope(alias)
        if scope is not None:
            # Inside atomic: stream on the block's connection.
            async with aclosing(_stream(scope, qs, size)) as rows:
                async for obj in rows:
                    yield obj
            return
        own = await checkout(alias)
        try:
            async with aclosing(_stream(own, qs, size)) as rows:
                async for obj in rows:
                    yield obj
        except BaseException as exc:
            await end_interrupted(own, exc, lost=is_disconnect(own, exc))
            raise
        await release(own, commit=True)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(_SYNC_USE)

    def __len__(self) -> int:
        raise TypeError(_SYNC_USE)

    def __bool__(self) -> bool:
        raise TypeError(_SYNC_USE)

    def __repr__(self) -> str:
        return f"<VinylQuerySet of {self.model.__name__} on {self.db!r}>"

    def __and__(self, other: VinylQuerySet[M]) -> VinylQuerySet[M]:
        return self._wrap(self._qs & _unwrap(other))

    def __or__(self, other: VinylQuerySet[M]) -> VinylQuerySet[M]:
        return self._wrap(self._qs | _unwrap(other))

    def __xor__(self, other: VinylQuerySet[M]) -> VinylQuerySet[M]:
        return self._wrap(self._qs ^ _unwrap(other))

    # Terminal coroutines ------------------------------------------------

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        qs = self._django(write=True)
        args = tuple(_unwrap(a) for a in args)
        return await _bridge.run(qs.db, lambda: getattr(qs, method)(*args, **kwargs))

    async def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        qs = self._django()
        return await _bridge.run(
            qs.db, lambda: getattr(qs, method)(*args, **kwargs), readonly=_reads_only(qs)
        )

    @_on_managers
    async def get(self, *args: Any, **kwargs: Any) -> M:
        """Return the one object matching the lookups (DoesNotExist otherwise)."""
        if type(self) is not VinylQuerySet and (not self._vinyl_fresh or router.routers):
            self = self._queryset()  # (a manager's: its get_queryset())
        # (Else self is a QuerySet or Book.vinyl, which reads as its fresh
        # QuerySet would, see BoundVinylManager: the planned read makes
        # none; the others start from self._queryset(), the QuerySet itself
        # or the manager's fresh one. _rows and _falls_back written out:
        # see _fetch.)
        try:
            recipe = self._recipe
            shaped = step_shape("filter", args, kwargs) if recipe is not None else None
            if shaped is None:
                return await self._queryset()._read("get", *args, **kwargs)
            shape, values = shaped
            found = _extension((recipe, shape))
            recipe = EXTENDED[recipe, shape] if found is None else found
            values = self._values + values
            db = self._db
            if db is None:
                # (The db property's usual answer written out.)
                db = DEFAULT_ALIAS if self._built is None and not router.routers else self.db
            entry = engine_entry(db)
            # (known_plan_cache(db, entry), its usual answer read here.)
            cache = entry.plans if entry.facts is not None else None
            if cache is None:
                cache = known_plan_cache(db, entry)
            key = (self._model, "get", recipe)
            plan = cache.lookup(key) if cache is not None else None
            if type(plan) is Plan:
                params = values if len(values) == plan.as_given else plan.params(values)
                return plan.build(await fetch(db, plan.sql, params, entry))
            return await self._queryset()._unplanned_rows(db, cache, key, plan, values, kwargs)
        except DatabaseUnavailable as exc:
            qs = self._queryset()
            other = qs._fallback(exc)
            if other is None:
                raise
            return await qs.using(other).get(*args, **kwargs)

    @_falls_back
    async def first(self) -> M | None:
        return await self._read("first")

    @_falls_back
    async def last(self) -> M | None:
        return await self._read("last")

    @_falls_back
    async def latest(self, *fields: Any) -> M:
        return await self._read("latest", *fields)

    @_falls_back
    async def earliest(self, *fields: Any) -> M:
        return await self._read("earliest", *fields)

    count: ClassVar[Callable[[VinylQuerySet[Any]], Coroutine[Any, Any, int]]] = _scalar_read("count")
    exists: ClassVar[Callable[[VinylQuerySet[Any]], Coroutine[Any, Any, bool]]] = _scalar_read("exists")

    @_falls_back
    async def contains(self, obj: Any) -> bool:
        return await self._read("contains", obj)

    @_falls_back
    async def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await self._read("aggregate", *args, **kwargs)

    @_falls_back
    async def in_bulk(self, id_list: Any = None, *, field_name: str = "pk") -> dict[Any, M]:
        # (A vinyl QuerySet of ids is evaluated by Django in the bridge, on
        # the alias it reads from.)
        if isinstance(id_list, VinylQuerySet):
            id_list = id_list._django()
        return await self._read("in_bulk", id_list, field_name=field_name)

    @_on_managers
    async def create(self, **kwargs: Any) -> M:
        """Insert a row and return its instance: ``await Book.vinyl.create(title="x")``."""
        if type(self) is not VinylQuerySet and (not self._vinyl_fresh or router.routers):
            self = self._queryset()  # (a manager's: its get_queryset())
        # (Else self is a QuerySet or Book.vinyl, which reads as its fresh
        # QuerySet would: see BoundVinylManager.)
        model = self._model
        db = self._db
        if db is None:
            # (_write_db, its usual answer written out.)
            db = DEFAULT_ALIAS if self._built is None and not router.routers else self._write_db
        if model._meta.private_fields:  # content_object=...: its content type
            await generic.prepare_create(model, db, kwargs)
        # (None until the server facts that features need are known.)
        entry = engine_entry(db) if self._recipe is not None else None
        plans = known_plan_cache(db, entry) if entry is not None else None
        facts = inserts.creatable(model, db, kwargs) if plans is not None else None
        if facts is not None and plans is not None:
            obj = model(**kwargs)
            # The INSERT of a known plan runs here, in this coroutine (see
            # update()); a first one is compiled in _insert_planned().
            pk_set = facts.prepare(obj)
            if pk_set is not None:
                # (From here on Django's save() marks an enclosing block for
                # rollback on any error: the values' conversion, the INSERT.)
                try:
                    plan = plans.get(facts.key_given if pk_set else facts.key)
                    if plan is not None and plan is not NEVER:
                        params = plan.params(obj)
                        if params is not None:
                            sql, driver_params = plan.prepare(plan.sql, params)
                            if type(driver_params) is not tuple:
                                driver_params = tuple(driver_params)
                            rows = await write(db, sql, driver_params, rows="insert_id" if plan.insert_id else True, entry=entry)
                            if rows is not NotImplemented:
                                plan.assign(obj, rows, db)
                                return obj
                    elif plan is None and await VinylQuerySet._insert_planned(obj, db, plans, pk_set):
                        return obj
                except BaseException as exc:
                    if is_failure(exc):  # (failed, cancelled or not)
                        write_failed(db)
                    raise
            await _bridge.run(db, lambda: obj.save(force_insert=True, using=db), single_write=True)
            return obj
        if type(self) is not VinylQuerySet:
            self = self._queryset()
        qs = self._django(write=True)
        return await _bridge.run(
            qs.db, lambda: qs.create(**kwargs), single_write=_bridge.one_statement_save(qs.model)
        )

    @staticmethod
    async def _insert_planned(obj: Any, db: str, plans: PlanCache, pk_set: bool) -> bool:
        """INSERT ``obj`` through a plan compiled now for its model, which has
        none yet (create() runs a known plan itself); False if it must be
        saved by Django."""
        params = inserts.insert_params(obj, db, pk_set)
        if params is None:
            return False
        plan = inserts.compile_insert(obj, db, pk_set, params)
        plans.store((type(obj), "insert", pk_set), plan or NEVER)
        if plan is None:
            return False
        sql, driver_params = plan.prepare(plan.sql, tuple(params))
        if type(driver_params) is not tuple:
            driver_params = tuple(driver_params)
        rows = await write(db, sql, driver_params, rows="insert_id" if plan.insert_id else True)
        if rows is NotImplemented:
            return False
        plan.assign(obj, rows, db)
        return True

    async def _run_retrying(self, method: str, **kwargs: Any) -> Any:
        # Racing upserts can deadlock (InnoDB locks the duplicate key that
        # a losing insert hit). Outside atomic the transaction is vinyl's,
        # so it runs again and finds the winner's row; inside a block the
        # error propagates, as the whole block was rolled back.
        alias = self._write_db
        attempts = 1 if active_scope(alias) is not None else CONFLICT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return await self._run(method, **kwargs)
            except DatabaseError as exc:
                retryable = getattr(connections[alias].ops, "vinyl_retryable_error", None)
                if attempt == attempts or retryable is None or not retryable(exc):
                    raise

    async def get_or_create(self, defaults: Any = None, **kwargs: Any) -> tuple[M, bool]:
        """Get the object matching ``kwargs`` or create it: ``(obj, created)``.

        Safe against concurrent tasks creating the same row when the lookup
        is on unique fields: the losers get the winner's row.
        """
        return await self._run_retrying("get_or_create", defaults=defaults, **kwargs)

    async def update_or_create(self, defaults: Any = None, create_defaults: Any = None, **kwargs: Any) -> tuple[M, bool]:
        """Update the object matching ``kwargs`` or create it: ``(obj, created)``."""
        return await self._run_retrying(
            "update_or_create", defaults=defaults, create_defaults=create_defaults, **kwargs
        )

    async def bulk_create(self, objs: Any, **kwargs: Any) -> list[M]:
        """Insert ``objs`` and return them, saved: ``await Book.vinyl.bulk_create([...])``.

        With default options and objects that fit in one of Django's batches,
        one compiled INSERT straight on the driver; otherwise Django's own.
        """
        objs = list(objs)
        if (
            objs
            and self._recipe is not None
            and not any(value for name, value in kwargs.items() if name != "batch_size")
            and set(kwargs) <= _BULK_OPTIONS
            and await self._bulk_insert_planned(objs, kwargs.get("batch_size"))
        ):
            return objs
        return await self._run("bulk_create", objs, **kwargs)

    async def _bulk_insert_planned(self, objs: list, batch_size: int | None) -> bool:
        """INSERT ``objs`` through the plan cache; False if Django must insert them."""
        model, db = self._model, self._write_db
        plans = _plans(db, ())
        if plans is None or not inserts.bulk_plannable(model, db):
            return False
        with paused_gc(len(objs)):
            pk_set = inserts.prepare_bulk(model, objs)
        if pk_set is None:
            return False
        try:
            return await self._bulk_insert_prepared(objs, batch_size, pk_set, plans)
        except BaseException as exc:
            # Django 5.2's atomic(savepoint=False) around the rest marks an
            # enclosing block for rollback on any error (6.x runs one INSERT
            # unmarked), cancelled or not.
            if _compat.BULK_CREATE_OF_ONE_INSERT_MARKS_BLOCK and is_failure(exc):
                write_failed(db)
            raise

    async def _bulk_insert_prepared(self, objs: list, batch_size: int | None, pk_set: bool, plans: PlanCache) -> bool:
        model, db = self._model, self._write_db
        fields = inserts.bulk_fields(model, pk_set)
        if not inserts.one_batch(db, fields, objs, batch_size):
            return False
        key = (model, "bulk_insert", pk_set)
        shapes = plans.get(key)
        if shapes is None:
            shapes = inserts.BulkPlans()
            plans.store(key, shapes)
        plan = shapes.get(len(objs))
        if plan is NEVER:
            return False
        if plan is None:
            rows = inserts.bulk_rows(model, db, fields, objs)
            if rows is None:
                return False
            plan, any_count = inserts.compile_bulk_insert(model, db, pk_set, fields, objs, rows)
            shapes.put(len(objs), plan, any_count)
            if plan is NEVER:
                return False
            params = plan.params(rows)
        else:
            with paused_gc(len(objs)):
                params = plan.params_of(objs)
            if params is None:
                return False
        sql, driver_params = plan.prepare(plan.sql, params)
        returned = await write(db, sql, tuple(driver_params), rows=True, marks_block=_compat.BULK_CREATE_OF_ONE_INSERT_MARKS_BLOCK)
        if returned is NotImplemented:
            return False
        with paused_gc(len(objs)):
            plan.assign(objs, returned, db)
        return True

    async def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        return await self._run("bulk_update", list(objs), fields, batch_size=batch_size)

    async def update(self, **kwargs: Any) -> int:
        """Update matching rows; return how many rows matched."""
        single = not self._model._meta.concrete_model._meta.parents
        shaped = update_shape(kwargs) if single and self._recipe is not None else None
        if shaped is not None:
            # A planned update runs here, in this coroutine (no coroutine of
            # its own to create and resume); the rest in _update_planned().
            shape, update_values = shaped
            recipe = EXTENDED[self._recipe, shape]
            values = self._values + update_values
            db = self._db
            if db is None:
                # (_write_db, its usual answer written out.)
                db = DEFAULT_ALIAS if self._built is None and not router.routers else self._write_db
            entry = engine_entry(db)  # (looked up once, for the cache and the statement)
            cache = known_plan_cache(db, entry)  # (_plans() of a recipe)
            key = (self._model, "update", recipe)
            plan = cache.lookup(key) if cache is not None else None
            if type(plan) is Plan:
                count = await write(db, plan.sql, plan.params(values), entry=entry)
                if count is not NotImplemented:
                    return count
            return await self._update_planned(kwargs, recipe, values, db, cache, key, plan)
        qs = self._django(write=True)
        return await _bridge.run(qs.db, lambda: qs.update(**kwargs), single_write=single)

    async def _update_planned(
        self, kwargs: dict, recipe: tuple, values: tuple, db: str, cache: PlanCache | None, key: tuple, plan: Any
    ) -> int:
        """update() of one statement, through the plan cache, where its
        plan did not run: compiled by Django (and planned, if it can be)."""
        qs = self._django(write=True)
        own = len(self._values)
        span = _long_span(cache, plan, recipe, False)
        if span is not None and span[0] + span[1] <= own:  # (a long list of the filters)
            if not cache.ints_plannable(key, db, values):  # type: ignore[union-attr]  # (cache: not None with a span)
                return await _bridge.run(db, lambda: qs.update(**kwargs), single_write=True)

            def cut_update(cut_values: tuple, k: int) -> Callable[[], Any]:
                cut_own = own - span[1] + k
                cut_qs = self._probe(cut_values[:cut_own], None, db, k)
                cut_kwargs = substitute("update", (), kwargs, iter(cut_values[cut_own:]))[1]
                return lambda: cut_qs.update(**cut_kwargs)

            count, statements, found = await _bridge.run(
                db, _captured_long, db, lambda: qs.update(**kwargs), cut_update, zone_sensitive(qs.query), values, span,
                single_write=True,
            )  # fmt: skip
            _record_long(cache, key, db, statements, found, values, _no_rows)  # type: ignore[arg-type]
            return count
        probed = None
        if cache is not None and cache.wants(plan):

            def probe_update(probes: tuple) -> Callable[[], Any]:
                probe_qs = self._probe(probes[:own], None, db)
                probe_kwargs = substitute("update", (), kwargs, iter(probes[own:]))[1]
                return lambda: probe_qs.update(**probe_kwargs)

            probed = cache.probes(key, db, values, probe_update)
        if cache is None or probed is None:
            return await _bridge.run(db, lambda: qs.update(**kwargs), single_write=True)
        probes, probe_run = probed
        count, statements, probe_statements = await _bridge.run(
            db, _captured, db, lambda: qs.update(**kwargs), probe_run, zone_sensitive(qs.query), single_write=True
        )
        cache.record_statements(key, db, statements, probe_statements, values, probes, _no_rows)
        return count

    async def delete(self) -> tuple[int, dict[str, int]]:
        """Delete matching rows with their cascades: Django's ``(count, {label: count})``."""
        from vinyl.deletion import delete_queryset

        qs = self._django(write=True)
        return await _bridge.run(qs.db, delete_queryset, qs, self)

    @_falls_back
    async def explain(self, /, *, format: str | None = None, **options: Any) -> str:
        return await self._read("explain", format=format, **options)


# Django's async names (aget, acount...) are the same coroutines (aiterator is a method: see above).
add_async_aliases(VinylQuerySet, QUERYSET_ALIASES)


def _new_django_queryset(model: type, db: str | None) -> QuerySet:
    qs = QuerySet(model=model, using=db)
    # Objects joined by select_related get vinyl classes too.
    _compat.set_iterable_class(qs, VinylModelIterable)
    return qs


# bulk_create()'s options: any but batch_size given (truthy) goes to Django.
_BULK_OPTIONS = frozenset({"batch_size", "ignore_conflicts", "update_conflicts", "update_fields", "unique_fields"})
_SCALAR_BUILDERS = {
    "count": lambda rows: int(rows[0][0]) if rows else 0,
    "exists": lambda rows: bool(rows),
}


def _no_rows(rows: Any) -> None:
    raise AssertionError("a write plan runs with scope.write, not fetch")


def _plans(db: str, recipe: tuple | None) -> PlanCache | None:
    """The plan cache of ``db``, if the query has a recipe and facts are known."""
    if recipe is None:
        return None
    return known_plan_cache(db)


class _Compiled(Exception):
    """Stops a probe run once its statement is compiled: it never executes."""


def _recorded(db: str, run: Any) -> tuple[Any, list[tuple[str, tuple]], Any]:
    """``run()``, with the statements it sent on ``db`` in this scope, and that scope."""
    statements: list[tuple[str, tuple]] = []
    # Execute wrappers belong to a wrapper object that tasks may share:
    # record only this scope's statements.
    mine = bound_scope(db)

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if bound_scope(db) is mine:
            statements.append((sql, tuple(params) if params is not None else ()))
        return execute(sql, params, many, context)

    with connections[db].execute_wrapper(record):
        result = run()
    return result, statements, mine


def _captured(db: str, run: Any, probe: Any, zoned: bool) -> tuple[Any, list, tuple[list, list | None]]:
    """Run ``run()`` recording its statements, and compile ``probe()``'s.

    The probe is compiled, never executed: in the current time zone, and
    if ``zoned`` (the query may depend on it) in another too (see
    ``vinyl.translate.plans.in_other_zone``).
    """
    result, statements, mine = _recorded(db, run)
    connection = connections[db]
    # Stopping the probe is no error of the operation's: Django's
    # mark_for_rollback_on_error (update()) must not doom the transaction.
    needs_rollback = mine.needs_rollback if mine is not None else False
    try:
        here = _compiled_statements(connection, mine, db, probe)
        # (Only a statement that may depend on the time zone needs the other.)
        there = in_other_zone(lambda: _compiled_statements(connection, mine, db, probe)) if zoned else None
    finally:
        if mine is not None:
            mine.needs_rollback = needs_rollback
    return result, statements, (here, there)


def _long_span(cache: PlanCache | None, plan: Any, recipe: tuple | None, count: bool) -> tuple[int, int] | None:
    """``(first slot, length)`` of the long ``__in`` list of a statement to plan from cut lists, else None."""
    if cache is None or recipe is None or not cache.wants(plan):
        return None
    if count and any(shape[0] == "slice" for shape in recipe):
        return None
    return long_list_span(recipe)


#: What _captured_long found: ``(positions or Unplanned, zoned)`` from the cut
#: lists, or the probes of every value and their statements, or None.
_Found = Union[tuple[Any, bool], tuple[tuple, tuple[list, Optional[list]]], None]


def _captured_long(
    db: str, run: Any, cut: Callable[[tuple, int], Any], zoned: bool, values: tuple, span: tuple[int, int],
) -> tuple[Any, list, _Found]:  # fmt: skip
    """Run ``run()`` recording its statements, and find the plan of its long ``__in`` list.

    As :func:`_captured`, with the probe compiled with the list cut to 2
    and 3 values (``cut(values, k)`` is the call of the query so cut):
    the cost of a few values, not of a second list (see
    :func:`vinyl.translate.plans.widened_outcome`). When the widened plan
    does not give Django's statement, every value is probed, as for a
    short list.
    """
    result, statements, mine = _recorded(db, run)
    connection = connections[db]
    if len(statements) != 1:
        return result, statements, None
    needs_rollback = mine.needs_rollback if mine is not None else False
    try:
        return result, statements, _long_outcome(connection, mine, db, statements[0], cut, zoned, values, span)
    finally:
        if mine is not None:
            mine.needs_rollback = needs_rollback


def _long_outcome(
    connection: Any, mine: Any, db: str, statement: Statement, cut: Callable[[tuple, int], Any], zoned: bool,
    values: tuple, span: tuple[int, int],
) -> _Found:  # fmt: skip
    def compiled(call: Callable[[], Any]) -> Any:
        found = _compiled_statements(connection, mine, db, call)
        return found[0] if len(found) == 1 else None

    def cut_outcome(short: tuple, probes: tuple, k: int) -> tuple[Statement, tuple[Any, bool]] | None:
        try:
            real, here = compiled(cut(short, k)), compiled(cut(probes, k))
        except VALUE_ERRORS:
            return None
        if real is None or here is None:
            return None

        def there() -> Any:
            if not zoned:
                return None
            return in_other_zone(lambda: compiled(cut(probes, k))) or LATER

        return real, statement_outcome(real, here, there, short, probes, value_adapters(db))

    widened = widened_outcome(statement, values, span, cut_outcome)
    if widened is not None:
        return widened
    probes = probe_values(values)
    if probes is None:
        return None
    try:
        probe = cut(probes, span[1])  # every value: the list at its length
    except VALUE_ERRORS:
        return None
    here = _compiled_statements(connection, mine, db, probe)
    there = in_other_zone(lambda: _compiled_statements(connection, mine, db, cut(probes, span[1]))) if zoned else None
    return probes, (here, there)


def _record_long(cache: PlanCache, key: Any, db: str, statements: list, found: _Found, values: tuple, build: Builder) -> None:
    if found is not None and type(found[1]) is tuple:  # the probes of every value
        probes, probe_statements = found
        cache.record_statements(key, db, statements, probe_statements, values, probes, build)
    else:
        cache.record_widened(key, db, statements, found, build)  # type: ignore[arg-type]


def _compiled_statements(connection: Any, mine: Any, db: str, probe: Any) -> list:
    """The statement ``probe()`` would run first, compiled and never executed."""
    found: list[tuple[str, tuple]] = []

    def stop(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if bound_scope(db) is not mine:
            return execute(sql, params, many, context)
        found.append((sql, tuple(params) if params is not None else ()))
        raise _Compiled

    with connection.execute_wrapper(stop):
        try:
            probe()
        except _Compiled:
            pass
        except VALUE_ERRORS:  # the probe values do not compile: no plan (noted by the cache)
            found.clear()
    return found


def _reads_only(qs: QuerySet) -> bool:
    # select_for_update() needs the transaction Django checks it is in.
    return not qs.query.select_for_update


def _evaluate(qs: QuerySet) -> list:
    return list(qs)


async def _stream(scope: Scope, qs: QuerySet, size: int) -> AsyncGenerator[Any, None]:
    rows = await scope.run_sync(_start_stream, qs, size)
    try:
        while True:
            batch = await scope.run_sync(_next_batch, rows, size)
            if not batch:
                return
            for obj in batch:
                yield obj
    finally:
        # Close the driver cursor inside the bridge, where it can await
        # (unless the rows ran out or an error already closed it).
        if getattr(rows, "gi_frame", True) is not None:
            await close_rows(scope, rows)


def _start_stream(qs: QuerySet, size: int) -> Iterator[Any]:
    if _compat.prefetch_lookups(qs) and not connections[qs.db].features.can_interleave_with_server_side_cursor:
        return _prefetched_chunks(qs, size)
    return iter(qs.iterator(chunk_size=size))


def _prefetched_chunks(qs: QuerySet, size: int) -> Iterator[Any]:
    """Rows of ``qs`` with their prefetches, ``size`` at a time, from a buffered result.

    Django's iterator() runs the prefetch queries of each chunk while the
    main result is open; on a connection that cannot interleave them with an
    unbuffered result (MySQL's server-side cursor), that result would be cut
    short after the first chunk. The queryset's iterable class (Django's
    private attribute, read through vinyl._compat) builds the rows without a
    server-side cursor.
    """
    rows = iter(_compat.iterable_class(qs)(qs, chunked_fetch=False, chunk_size=size))
    while True:
        chunk = list(itertools.islice(rows, size))
        if not chunk:
            return
        prefetch_related_objects(chunk, *_compat.prefetch_lookups(qs))
        yield from chunk


def _next_batch(rows: Iterator[Any], size: int) -> list:
    batch = []
    try:
        for obj in rows:
            batch.append(obj)
            if len(batch) >= size:
                break
    except BaseException as exc:
        # The rows ended with an error (a value a converter refuses...): the
        # frames of Django's generators, kept by the traceback, still hold
        # its cursor_iter generator, whose finalizer closes the driver
        # cursor. Let go of their locals here, in the bridge, where that
        # close can await; freed later, outside it, the close fails
        # (MissingGreenlet, an "exception ignored" nobody sees).
        traceback.clear_frames(exc.__traceback__)
        raise
    return batch


__all__ = ["DEFAULT_CHUNK_SIZE", "ModelIterable", "VinylQuerySet"]
