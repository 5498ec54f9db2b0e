"""The plan cache: compiled plans by query shape, one cache per engine.

A :class:`PlanCache` owns everything about plans of reads and writes: it
looks a shape up, compiles a plan from Django's compilations of the real
and probe values (see :mod:`vinyl.translate.plans`), stores it, evicts the
least recently used shapes when full, and records why a shape has no plan.
Reasons are logged once at DEBUG on the ``vinyl.plans`` logger and counted
(:func:`vinyl.plan_cache_info`).

Shapes whose SQL depends on the current time zone (``__date``, ``__hour``
with USE_TZ) have one plan per zone name. Changing ``DATABASES``, ``USE_TZ``
or ``TIME_ZONE`` (``override_settings``) empties every cache.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from django.core.signals import setting_changed
from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone

from vinyl.engine.engines import cached_facts, engine_entry
from vinyl.translate.plans import (
    LATER,
    VALUE_ERRORS,
    Builder,
    Outcome,
    Plan,
    Statement,
    Unplanned,
    limit_parameters,
    long_list_outcome,
    one_slice,
    probed_outcome,
    rows_plan,
    scalar_plan,
    statement_plan,
)
from vinyl.translate.shapes import INT_EDGES, long_list_span, probe_values

logger = logging.getLogger("vinyl.plans")

#: Shapes (and unplanned shapes) a cache keeps before evicting the least
#: recently used.
PLANS_MAX = 2_000
#: Compilations of one shape that find no plan for their values before the
#: shape is left off plans.
LATER_TRIES = 8


class _TimeZoned:
    """Marks a shape whose plans are kept per current time zone name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TIME_ZONED"


TIME_ZONED = _TimeZoned()


class _Pending(Unplanned):
    """A shape whose values so far gave no plan; tried again up to LATER_TRIES."""

    __slots__ = ("tries",)

    def __init__(self, reason: str, tries: int) -> None:
        super().__init__(reason, permanent=False)
        self.tries = tries


@dataclass(frozen=True)
class PlanCacheInfo:
    """What :func:`vinyl.plan_cache_info` reports (summed over every engine).

    ``hits``: queries served by a plan; ``misses``: queries that compiled
    through Django (no plan yet, or none possible); ``size``: shapes stored
    (plans and shapes kept off plans); ``plans``: compiled plans stored;
    ``unplanned``: compilations that gave no plan, by reason.
    """

    hits: int = 0
    misses: int = 0
    size: int = 0
    plans: int = 0
    unplanned: dict[str, int] = field(default_factory=dict)


class PlanCache:
    """Plans of one engine by shape key, least recently used evicted first."""

    def __init__(self, maxsize: int = PLANS_MAX) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Any, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.unplanned: Counter[str] = Counter()
        self._logged: set[tuple] = set()
        self._int_ranges_known: dict[str, bool] = {}
        # The plans the last two lookups returned, their keys last in the
        # order: the same query run again (a loop), or two in turn (a get
        # and an update in a transaction), finds its plan without moving its
        # key. Finding the one before the last swaps the two; the order of
        # the entries follows (_settle) before another key moves or comes.
        self._recent: Plan | None = None
        self._previous: Plan | None = None
        self._swapped = False
        _caches.add(self)

    # -- lookup and store ------------------------------------------------------

    def lookup(self, key: Any) -> Any:
        """The plan of ``key``, an :class:`Unplanned`, or None if never compiled.

        Counts a hit for a plan, a miss otherwise.
        """
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            if entry is self._recent:
                self.hits += 1
                return entry
            if entry is self._previous:
                self._previous, self._recent = self._recent, entry
                self._swapped = not self._swapped
                self.hits += 1
                return entry
            if entry is TIME_ZONED:
                key = (key, timezone.get_current_timezone_name())
                entry = entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._settle()
        entries.move_to_end(key)
        if type(entry) is Plan:
            self.hits += 1
            if entry is not self._recent:  # (a zoned plan is looked up here)
                self._previous, self._recent = self._recent, entry
        else:
            self.misses += 1
            self._recent = self._previous = None
        return entry

    def _settle(self) -> None:
        """Put the last two keys in the order of their use (see ``_recent``)."""
        if self._swapped:
            keys = reversed(self._entries)
            next(keys)
            self._entries.move_to_end(next(keys))
            self._swapped = False

    def get(self, key: Any, default: Any = None) -> Any:
        """The entry of ``key`` as stored (no counting, no recency)."""
        return self._entries.get(key, default)

    def store(self, key: Any, entry: Any) -> None:
        """Store ``entry`` (a plan or anything a caller keeps by shape)."""
        self._settle()
        entries = self._entries
        entries[key] = entry
        entries.move_to_end(key)
        self._recent = self._previous = None
        while len(entries) > self.maxsize:
            entries.popitem(last=False)

    def record(self, key: Any, outcome: Any, zoned: bool = False) -> None:
        """Keep the outcome of compiling ``key``: a plan or why there is none."""
        if type(outcome) is Plan:
            if zoned:
                self.store(key, TIME_ZONED)
                key = (key, timezone.get_current_timezone_name())
            self.store(key, outcome)
            return
        self.note(key, outcome)

    def note(self, key: Any, outcome: Unplanned) -> None:
        """Count and log (once) why ``key`` has no plan; keep it if for good."""
        reason = outcome.reason
        self.unplanned[reason] += 1
        model, kind = (key[0], key[1]) if type(key) is tuple and len(key) > 1 else (None, None)
        if (model, kind, reason) not in self._logged and len(self._logged) < 10_000:
            self._logged.add((model, kind, reason))
            logger.debug("no plan for a %s query of %s: %s", kind, getattr(model, "__name__", model), reason)
        if outcome.permanent:
            self.store(key, outcome)
            return
        previous = self._entries.get(key)
        tries = previous.tries + 1 if type(previous) is _Pending else 1
        if tries >= LATER_TRIES:
            self.note(key, Unplanned(f"{LATER_TRIES} compilations gave no plan ({reason})"))
        else:
            self.store(key, _Pending(reason, tries))

    def __del__(self) -> None:
        # The counts outlive the engine: plan_cache_info() is process-wide.
        _retired.hits += self.hits
        _retired.misses += self.misses
        _retired.unplanned.update(self.unplanned)

    def clear(self) -> None:
        self._entries.clear()
        self._recent = self._previous = None
        self._swapped = False
        self._int_ranges_known.clear()

    def info(self) -> PlanCacheInfo:
        return PlanCacheInfo(
            hits=self.hits,
            misses=self.misses,
            size=len(self._entries),
            plans=sum(1 for entry in self._entries.values() if type(entry) is Plan),
            unplanned=dict(self.unplanned),
        )

    # Read access for tests and tools: the stored entries by key.
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Any) -> bool:
        return key in self._entries

    def __getitem__(self, key: Any) -> Any:
        return self._entries[key]

    def __iter__(self) -> Iterator[Any]:
        self._settle()
        return iter(self._entries)

    def items(self) -> Any:
        self._settle()
        return self._entries.items()

    def values(self) -> Any:
        self._settle()
        return self._entries.values()

    def plans(self) -> list[Plan]:
        """The compiled plans stored (never the markers of unplanned shapes)."""
        return [entry for entry in self._entries.values() if type(entry) is Plan]

    # -- compile -----------------------------------------------------------------

    def wants(self, entry: Any) -> bool:
        """Whether a shape whose lookup gave ``entry`` should be compiled to a plan."""
        return entry is None or (type(entry) is not Plan and not entry.permanent)

    def ints_plannable(self, key: Any, db: str, values: Sequence[Any]) -> bool:
        """Whether these values' integers can be slots on ``db`` (else noted)."""
        if not self._ints_plannable(db) and any(type(v) is int for v in values):
            self.note(key, Unplanned("the backend's integer ranges have other boundaries"))
            return False
        return True

    def probes(self, key: Any, db: str, values: Sequence[Any], build: Callable[[tuple], Any]) -> tuple[tuple, Any] | None:
        """Probe values for ``values`` and ``build(probes)``; None (noted) if none fit."""
        if not self.ints_plannable(key, db, values):
            return None
        probes = probe_values(values)
        if probes is None:
            self.note(key, Unplanned("no probe values for these values", permanent=False))
            return None
        try:
            return probes, build(probes)
        except VALUE_ERRORS as exc:
            self.note(key, Unplanned(f"the probe values are rejected ({type(exc).__name__})"))
            return None

    def compile_rows(
        self,
        key: Any,
        qs: QuerySet,
        values: Sequence[Any],
        probe: Callable[..., QuerySet],
        **options: Any,
    ) -> tuple[str, tuple, Builder] | None:
        """Compile ``qs`` for this evaluation and keep the plan of ``key``.

        ``probe(values, short=None)`` builds the query of the shape from
        other slot values (a long ``__in`` list cut to ``short`` values).
        Returns the driver SQL, parameters and builder of ``qs``, or None
        when Django must evaluate it (noted as a reason).
        """
        # One slice of the recipe has its bounds as slots (see shapes.slice_shape);
        # get() adds its own limit to it, which is no slot.
        recipe = key[2]
        get = bool(options.get("get"))
        limits = None if get else one_slice(recipe)
        span = long_list_span(recipe)
        if span is not None:
            if not self._ints_plannable(qs.db) and any(type(v) is int for v in values):
                self.note(key, Unplanned("the backend's integer ranges have other boundaries"))
                return None
            fallback = self._fallback_outcome(values, probe, get, limits)
            outcome = long_list_outcome(probe, values, span, fallback, get=get, limits=limits)
        else:
            probed = self.probes(key, qs.db, values, probe)
            if probed is None:
                return None
            probes, probe_qs = probed
            outcome = probed_outcome(probe_qs, values, probes, get=get, limits=limits)
        compiled = rows_plan(qs, outcome, limits=limits, **options)
        if compiled is None:
            self.note(key, Unplanned("Django evaluates this query itself (prefetch, empty result, iterable)"))
            return None
        outcome, zoned, sql, params, build = compiled
        self.record(key, outcome, zoned)
        return sql, params, build

    @staticmethod
    def _fallback_outcome(values: Sequence[Any], probe: Callable[..., QuerySet], get: bool, limits: Any) -> Outcome:
        """The probe of every value, for a long list whose cut compilations do not widen."""

        def outcome(statement: Statement, db: str, zone_dependent: bool) -> tuple[Any, bool]:
            probes = probe_values(values)
            if probes is None:
                return Unplanned("no probe values for these values", permanent=False), False
            try:
                probe_qs = probe(probes)
            except VALUE_ERRORS as exc:
                return Unplanned(f"the probe values are rejected ({type(exc).__name__})"), False
            return probed_outcome(probe_qs, values, probes, get=get, limits=limits)(statement, db, zone_dependent)

        return outcome

    def record_statements(
        self,
        key: Any,
        db: str,
        statements: Sequence[Statement],
        probe_statements: tuple[Sequence[Statement], Sequence[Statement] | None],
        values: Sequence[Any],
        probes: Sequence[Any],
        build: Builder,
        limits: tuple[Any, Any] | None = None,
    ) -> None:
        """Keep the plan of a statement Django ran (count, exists, update).

        ``probe_statements``: what the probe compiled in the current time
        zone, then in another (None for a query that cannot depend on it).
        ``limits``: the real and probe queries, whose slice bounds become
        parameters (see :func:`vinyl.translate.plans.limit_parameters`).
        """
        here, there = probe_statements
        shape = None if limits is None else one_slice(key[2])
        if limits is not None and shape is not None:
            query, probe_query = limits
            statements = [limit_parameters(sql, params, query, db, shape) for sql, params in statements]
            here = [limit_parameters(sql, params, probe_query, db, shape) for sql, params in here]
            if there is not None:
                there = [limit_parameters(sql, params, probe_query, db, shape) for sql, params in there]
        if not self._one_statement(key, statements, here):
            return
        zone_probe = None if there is None else there[0] if len(there) == 1 else LATER
        outcome, zoned = scalar_plan(db, statements[0], here[0], lambda: zone_probe, values, probes, build)
        self.record(key, outcome, zoned)

    def record_widened(self, key: Any, db: str, statements: Sequence[Statement], found: tuple[Any, bool] | None, build: Builder) -> None:
        """Keep the plan of a statement Django ran whose query holds one long ``__in`` list.

        ``found``: its ``(positions or Unplanned, zoned)`` from the query with
        the list cut short (:func:`vinyl.translate.plans.widened_outcome`);
        None when the probe values did not compile.
        """
        if not self._one_statement(key, statements, statements):
            return
        if found is None:
            self.note(key, Unplanned("no probe values for these values", permanent=False))
            return
        self.record(key, *statement_plan(db, statements[0], found, build))

    def _one_statement(self, key: Any, statements: Sequence[Statement], probed: Sequence[Statement]) -> bool:
        """Whether Django ran one statement (and the probe compiled one); else noted."""
        if not statements or not probed:
            # (An empty result Django answers without SQL; values may differ.)
            self.note(key, Unplanned("Django runs no statement for these values", permanent=False))
            return False
        if len(statements) != 1 or len(probed) != 1:
            self.note(key, Unplanned("Django runs more than one statement"))
            return False
        return True

    def _ints_plannable(self, db: str) -> bool:
        known = self._int_ranges_known.get(db)
        if known is None:
            known = self._int_ranges_known[db] = _int_ranges_known(connections[db].ops)
        return known


def _int_ranges_known(ops: Any) -> bool:
    """Whether the backend's integer field ranges end at the edges of integer kinds."""
    edges = {0, *INT_EDGES}
    for internal_type in ops.integer_field_ranges:
        low, high = ops.integer_field_range(internal_type)
        if low is not None and low != 0 and -low not in edges:
            return False
        if high is not None and high + 1 not in edges:
            return False
    return True


_caches: weakref.WeakSet[PlanCache] = weakref.WeakSet()


def plan_cache_for(db: str) -> PlanCache:
    """The plan cache of the engine of ``db`` (made on first use; it goes with the engine)."""
    return _cache_of(engine_entry(db))


def known_plan_cache(db: str, entry: Any = None) -> PlanCache | None:
    """:func:`plan_cache_for` once the server facts of ``db`` are known
    (plans need them), else None; the engine entry is looked up once (or
    given: ``engine_entry(db)``, which the caller passes on to ``fetch``)."""
    if entry is None:
        entry = engine_entry(db)
    if entry.facts is None and cached_facts(db) is None:
        return None
    cache = entry.plans  # (_cache_of written out: every planned read asks)
    if cache is None:
        cache = entry.plans = PlanCache()
    return cache


def _cache_of(entry: Any) -> PlanCache:
    cache = entry.plans
    if cache is None:
        cache = entry.plans = PlanCache()
    return cache


def all_caches() -> list[PlanCache]:
    return list(_caches)


class _Retired:
    """The counts of caches gone with their engines."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.unplanned: Counter[str] = Counter()


_retired = _Retired()


def plan_cache_info() -> PlanCacheInfo:
    """Plan cache figures of this process: hits, misses, size, plans, unplanned by reason.

    ``hits``, ``misses`` and ``unplanned`` count since the process started
    (engines disposed of included); ``size`` and ``plans`` are what the
    engines' caches hold now.
    """
    hits, misses = _retired.hits, _retired.misses
    size = plans = 0
    unplanned: Counter[str] = Counter(_retired.unplanned)
    for cache in all_caches():
        info = cache.info()
        hits += info.hits
        misses += info.misses
        size += info.size
        plans += info.plans
        unplanned.update(info.unplanned)
    return PlanCacheInfo(hits, misses, size, plans, dict(unplanned))


_SETTINGS = frozenset({"DATABASES", "USE_TZ", "TIME_ZONE"})


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in _SETTINGS:
        for cache in all_caches():
            cache.clear()


setting_changed.connect(_settings_changed, dispatch_uid="vinyl.translate.plan_cache")
