"""Compiled plans: the SQL of a query shape and how to turn rows into results.

A :class:`Plan` is built once per shape from a Django QuerySet by Django's
own compiler. It holds the driver-ready SQL, which slot value goes in each
parameter, and a builder that turns the driver's rows into what Django would
return (instances, dicts, tuples, a count). Building a plan and using it do
no I/O.
"""

from __future__ import annotations

import datetime
import functools
import operator
import os.path
import zoneinfo
from typing import Any, Callable, Sequence

from types import SimpleNamespace

from django.core.exceptions import EmptyResultSet, ValidationError
from django.conf import settings
from django.db import connections
from django.db.models import Model
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    QuerySet,
    ValuesIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.fields.mixins import FieldCacheMixin
from django.db.models.functions.datetime import TimezoneMixin
from django.db.models.sql import Query
from django.utils import timezone

from vinyl import _compat
from vinyl.translate.converters import rows_converter, value_expressions
from vinyl.translate.gcpause import batched_rows
from vinyl.translate.instances import (
    Joined,
    caches_assignable,
    from_db_function,
    joined_rows_maker,
    plain_construction,
    row_maker,
    rows_maker,
)
from vinyl.translate.shapes import probe_values, slot_positions

Rows = Sequence[Sequence[Any]]
Builder = Callable[[Rows], Any]

# Django's cap on the rows get() fetches to report MultipleObjectsReturned.
GET_LIMIT = 21


class Plan:
    """SQL for one query shape, and the builder of its result.

    ``positions`` gives, for each parameter, the index of its slot value, a
    1-tuple holding a constant, or ``(index, adapter)`` for a slot value the
    backend adapts (see :func:`value_adapters`).
    """

    # A plain class, not a dataclass: building a dataclass costs about 0.4 ms
    # at import (its generated methods are compiled), paid by every cold start.
    __slots__ = ("sql", "positions", "build", "as_given", "constants", "gather")

    def __init__(self, sql: str, positions: tuple, build: Builder) -> None:
        self.sql = sql
        self.positions = positions
        self.build = build
        #: How many slot values are the parameters as they are (positions
        #: 0, 1, ... n-1: the usual plan), else -1.
        self.as_given = len(positions) if positions == tuple(range(len(positions))) else -1
        #: Where the parameters are slot values and constants only (no
        #: adapter), two or more: the constants, and the getter that picks the
        #: parameters out of the slot values followed by them (in C, one call);
        #: else None.
        constants = [p[0] for p in positions if type(p) is not int and len(p) == 1]
        plain = len(positions) >= 2 and self.as_given < 0 and all(type(p) is int or len(p) == 1 for p in positions)
        gather: Callable[[tuple], tuple] | None = None
        if plain:
            # A constant's index counts from the end of ``values + constants``.
            later = iter(range(-len(constants), 0))
            gather = operator.itemgetter(*[p if type(p) is int else next(later) for p in positions])
        self.constants = tuple(constants)
        self.gather = gather

    def params(self, values: Sequence[Any]) -> tuple:
        if type(values) is tuple:
            if len(values) == self.as_given:
                return values
            gather = self.gather
            if gather is not None:
                return gather(values + self.constants)
        # (A list, not a generator: no resumption per parameter of a long IN list.)
        return tuple([values[p] if type(p) is int else p[0] if len(p) == 1 else p[1](values[p[0]]) for p in self.positions])


def _driver_sql(db: str, sql: str, params: Sequence[Any]) -> str:
    return connections[db].vinyl_cursor_class.prepare(sql, tuple(params))[0]


class Unplanned:
    """Why a shape has no plan.

    ``permanent``: no value makes one (the shape stays off plans); otherwise
    only these values do not, and the next query of the shape tries again.
    """

    __slots__ = ("reason", "permanent")

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        self.reason = reason
        self.permanent = permanent

    def __repr__(self) -> str:
        return f"Unplanned({self.reason!r}, permanent={self.permanent})"


#: The shape cannot be planned (inserts; reads and updates say why).
NEVER = Unplanned("not plannable")
#: Not with these values; try again with others.
LATER = Unplanned("these values", permanent=False)

SQL_DIFFERS = Unplanned("the values change the SQL", permanent=False)
TRANSFORMED = Unplanned("Django transforms a value (escapes, wraps or parses it)")
AMBIGUOUS = Unplanned("a constant equals a value, or the values change the parameters", permanent=False)

TOO_MANY = Unplanned("more parameters than one statement binds")
SHARED = Unplanned("equal values of a GROUP BY statement share a parameter", permanent=False)

# What Django raises for values a field or lookup rejects.
VALUE_ERRORS = (ValidationError, ValueError, TypeError, ArithmeticError)


def value_adapters(db: str) -> dict[type, Callable[[Any], Any]]:
    """The backend's adapters of slot values that it sends in another form.

    MySQL and SQLite send datetimes and dates as text
    (``adapt_datetimefield_value``, ``adapt_datefield_value``): a slot may
    go through them (see :func:`~vinyl.translate.shapes.slot_positions`).
    """
    ops = connections[db].ops
    # A backend may adapt datetimes more cheaply, giving what Django gives.
    quicker = getattr(ops, "vinyl_datetime_adapter", None)
    adapt_datetime = quicker() if quicker is not None else ops.adapt_datetimefield_value
    return {datetime.datetime: adapt_datetime, datetime.date: ops.adapt_datefield_value}


def _positions(sql: str, params: Sequence[Any], probe_sql: str, probe_params: Sequence[Any], values: Sequence[Any], probes: Sequence[Any], adapters: dict | None = None) -> Any:
    if sql != probe_sql:
        return SQL_DIFFERS
    positions = slot_positions(params, values, probe_params, probes, adapters)
    if positions is None:
        return TRANSFORMED
    if positions is False:
        return AMBIGUOUS
    return positions


Statement = tuple[str, Sequence[Any]]


def other_zone() -> Any:
    """A time zone other than the current one, with another name and offset."""
    name = timezone.get_current_timezone_name()
    return zoneinfo.ZoneInfo("UTC" if name == _PROBE_ZONE else _PROBE_ZONE)


_PROBE_ZONE = "Asia/Kathmandu"  # UTC+05:45: no other zone's offset


def zone_sensitive(query: Any) -> bool:
    """Whether the SQL of ``query`` may depend on the current time zone.

    It may when USE_TZ is on and the query holds a function Django
    converts to the current zone (``__date``, ``__hour``, Trunc, Extract),
    or orders by a path that may end in one. (Django may leave the zone out
    of the SQL when the current one is the connection's: the SQL alone
    cannot tell.)
    """
    if not settings.USE_TZ:
        return False
    pending = [query]
    seen = 0
    while pending:
        node = pending.pop()
        seen += 1
        if isinstance(node, TimezoneMixin) or seen > 10_000:
            return True
        if isinstance(node, Query):
            # The query itself, or a subquery (exclude() across a
            # multi-valued relation, Exists, Subquery, __in of a query).
            if any(type(o) is str and "__" in o for o in node.order_by):
                return True
            pending.append(node.where)
            pending.extend(node.annotations.values())
            continue
        sources = getattr(node, "get_source_expressions", None)
        if sources is not None:
            pending.extend(source for source in sources() if source is not None)
        inner = getattr(node, "query", None)  # Subquery, Exists
        if isinstance(inner, Query):
            pending.append(inner)
    return False


def in_other_zone(compile_probe: Callable[[], Any]) -> Any:
    """``compile_probe()`` under :func:`other_zone` (as is without USE_TZ).

    A shape whose SQL or constants change with the current time zone
    compiles differently there: its plans are kept per time zone.
    """
    if not settings.USE_TZ:
        return compile_probe()
    with timezone.override(other_zone()):
        return compile_probe()


def statement_outcome(
    statement: Statement,
    probe: Statement | Unplanned,
    zone_probe: Callable[[], Statement | Unplanned | None],
    values: Sequence[Any],
    probes: Sequence[Any],
    adapters: dict | None = None,
) -> tuple[Any, bool]:
    """``(positions or Unplanned, whether the SQL depends on the time zone)``.

    ``statement`` was compiled from ``values``, ``probe`` from ``probes``
    (both in the current time zone); ``zone_probe()`` compiles ``probes``
    in another zone, or gives None for a query that cannot depend on it.
    """
    if isinstance(probe, Unplanned):
        return probe, False
    sql, params = statement
    positions = _positions(sql, params, probe[0], probe[1], values, probes, adapters)
    if type(positions) is not tuple:
        return positions, False
    there = zone_probe()
    if there is None:  # the query cannot depend on the time zone
        return positions, False
    zoned = isinstance(there, Unplanned) or (there[0], tuple(there[1])) != (probe[0], tuple(probe[1]))
    return positions, zoned


def probe_statement(probe_qs: QuerySet, db: str, limits: Any = None) -> Statement | Unplanned:
    """Compile the probe queryset; an Unplanned when its values do not compile.

    ``limits``: the slice shape whose slots become parameters (see
    :func:`limit_parameters`), or None.
    """
    try:
        sql, params = probe_qs.query.get_compiler(using=db).as_sql()
    except EmptyResultSet:
        return LATER
    except VALUE_ERRORS as exc:
        return Unplanned(f"the probe values are rejected ({type(exc).__name__})")
    return limit_parameters(sql, params, probe_qs.query, db, limits) if limits else (sql, params)


# Stand-ins for an offset and a limit, to find where a backend writes them.
_SOME_OFFSET, _SOME_LIMIT = 731_113_917, 419_270_443


def one_slice(recipe: Sequence[Any]) -> Any:
    """The slice shape of a recipe that holds one slice (see
    :func:`~vinyl.translate.shapes.slice_shape`), else None."""
    found = None
    for shape in recipe:
        if shape[0] == "slice":
            if found is not None:
                return None
            found = shape
    return found


def limit_parameters(sql: str, params: Sequence[Any], query: Any, db: str, shape: Any = None) -> Statement:
    """``sql`` with the slice bounds that are slots as ``%s`` parameters.

    Django writes slice bounds into the SQL text (``LIMIT 20 OFFSET 40``); as
    parameters, every page of a query has the same SQL and one plan. The
    offset is a parameter; the limit too unless ``shape`` (the query's slice
    shape) has it as a literal: one SQL per limit, whose LIMIT PostgreSQL's
    generic plan of the prepared statement knows (with ``LIMIT $n`` it
    costs the plan for 10% of the rows and plans again at every execution).
    The clause is the backend's own ``limit_offset_sql()``, found once in
    the SQL; otherwise the SQL is returned as it is.
    """
    if not query.is_sliced:
        return sql, params
    ops = connections[db].ops
    low, high = query.low_mark, query.high_mark
    clause = ops.limit_offset_sql(low, high)
    if not clause or sql.count(clause) != 1:
        return sql, params
    literal = shape is not None and len(shape) == 4 and type(shape[3]) is int
    if literal and high is not None and high - low != shape[3]:
        return sql, params  # (not the slice of the shape: no plan holds)
    some_low = _SOME_OFFSET if low else 0
    limit = None if high is None else high - low if literal else _SOME_LIMIT
    template = ops.limit_offset_sql(some_low, None if limit is None else some_low + limit)
    bounds = []
    for stand_in, value in ((_SOME_OFFSET, low or None), (_SOME_LIMIT, None if high is None or literal else high - low)):
        found = template.count(str(stand_in))
        if found != (0 if value is None else 1):
            return sql, params
        if found:
            bounds.append((template.index(str(stand_in)), value))
    if not bounds:
        return sql, params
    template = template.replace(str(_SOME_OFFSET), "%s").replace(str(_SOME_LIMIT), "%s")
    at = sql.index(clause)
    before = sql[:at].replace("%%", "").count("%s")
    values = [value for _, value in sorted(bounds, key=lambda bound: bound[0])]
    return sql[:at] + template + sql[at + len(clause) :], (*params[:before], *values, *params[before:])


Outcome = Callable[[Statement, str, bool], tuple[Any, bool]]


def probed_outcome(probe_qs: QuerySet, values: Sequence[Any], probes: Sequence[Any], *, get: bool = False, limits: Any = None) -> Outcome:
    """How a statement compiled from ``values`` maps to slots, found with the probe queryset.

    The function returned takes the statement, its alias and whether its
    query may depend on the time zone, and gives ``(positions or
    Unplanned, zoned)`` as :func:`statement_outcome`.
    """
    if get:
        probe_qs = _get_queryset(probe_qs)

    def outcome(statement: Statement, db: str, zone_dependent: bool) -> tuple[Any, bool]:
        probe = probe_statement(probe_qs, db, limits)
        zone_probe = lambda: in_other_zone(lambda: probe_statement(_compat.chain(probe_qs), db, limits)) if zone_dependent else None  # noqa: E731
        return statement_outcome(statement, probe, zone_probe, values, probes, value_adapters(db))

    return outcome


def long_list_outcome(
    build: Callable[[tuple, int], QuerySet],
    values: Sequence[Any],
    span: tuple[int, int],
    fallback: Outcome,
    *,
    get: bool = False,
    limits: Any = None,
) -> Outcome:
    """The outcome of a statement whose query holds one long ``__in`` list.

    ``span``: the list's first slot and length. ``build(values, k)`` is the
    query of the shape with ``values`` in its slots and the long list cut to
    ``k`` values. The query is compiled with the list cut to 2 and to 3
    values, each with its probes (cheap: a few values); the plan of the
    whole list is their positions with the list's run of slots widened to
    its length. It holds only when the real SQL is the 2-value SQL with the
    element the 3-value SQL adds repeated, and the real parameters are
    exactly what the widened plan gives for ``values``; otherwise
    ``fallback`` (the probe of every value) decides. Django compiles each
    element of a list alike, whatever its length (the In lookup).
    """

    def outcome(statement: Statement, db: str, zone_dependent: bool) -> tuple[Any, bool]:
        found = _long_list_positions(statement, db, zone_dependent, build, values, span, get, limits)
        return fallback(statement, db, zone_dependent) if found is None else found

    return outcome


def _long_list_positions(
    statement: Statement,
    db: str,
    zone_dependent: bool,
    build: Callable[[tuple, int], QuerySet],
    values: Sequence[Any],
    span: tuple[int, int],
    get: bool,
    limits: Any,
) -> tuple[Any, bool] | None:
    def cut(short: tuple, probes: tuple, k: int) -> tuple[Statement, tuple[Any, bool]] | None:
        try:
            real_qs, probe_qs = build(short, k), build(probes, k)
        except VALUE_ERRORS:
            return None
        if get:
            real_qs = _get_queryset(real_qs)
        real = probe_statement(real_qs, db, limits)
        if isinstance(real, Unplanned):
            return None
        return real, probed_outcome(probe_qs, short, probes, get=get, limits=limits)(real, db, zone_dependent)

    return widened_outcome(statement, values, span, cut)


#: ``cut(values, probes, k)``: the statement of the query with its long list
#: cut to ``k`` values, and how it maps to slots (found with ``probes``);
#: None when these values do not compile.
Cut = Callable[[tuple, tuple, int], "tuple[Statement, tuple[Any, bool]] | None"]


def widened_outcome(statement: Statement, values: Sequence[Any], span: tuple[int, int], cut: Cut) -> tuple[Any, bool] | None:
    """``(positions or Unplanned, zoned)`` of a statement whose query holds one long ``__in`` list.

    Found from ``cut`` with the list cut to 2 and to 3 values (see
    :func:`long_list_outcome`); None when the widened plan does not give
    exactly ``statement`` (then every value is probed).
    """
    start, length = span
    values = tuple(values)
    cuts: list[tuple[str, tuple, bool]] = []
    for k in (2, 3):
        short = values[:start] + values[start : start + k] + values[start + length :]
        probes = probe_values(short)
        if probes is None:
            return None
        found = cut(short, probes, k)
        if found is None:
            return None
        real, (positions, zoned) = found
        if type(positions) is not tuple:
            return positions, False  # as the whole list would: the SQL depends on these values, a transform...
        cuts.append((real[0], positions, zoned))
    (sql2, positions2, zoned2), (sql3, positions3, zoned3) = cuts
    sql, params = statement
    if _widened_sql(sql2, sql3, length) != sql:
        return None
    widened = _widened_positions(positions2, 2, start, length)
    if widened is None or widened != _widened_positions(positions3, 3, start, length):
        return None
    if tuple(params) != Plan(sql, widened, _no_build).params(values):
        return None
    return widened, zoned2 or zoned3


def _widened_sql(sql2: str, sql3: str, length: int) -> str | None:
    """``sql2`` with the text ``sql3`` adds to it repeated for a list of ``length`` values."""
    grown = len(sql3) - len(sql2)
    if grown <= 0:
        return None
    at = len(os.path.commonprefix([sql2, sql3]))
    if sql3[at + grown :] != sql2[at:]:
        return None
    return sql2[:at] + sql3[at : at + grown] * (length - 2) + sql2[at:]


def _widened_positions(positions: tuple, k: int, start: int, length: int) -> tuple | None:
    """Positions of a list cut to ``k`` values, for the list of ``length`` values.

    The list's slots must be one run of parameters, each used once, all
    plain or all through one adapter; slots after the list move by the
    values cut.
    """
    slots = [_slot_of(p) for p in positions]
    try:
        at = slots.index(start)
    except ValueError:
        return None
    run = positions[at : at + k]
    if slots[at : at + k] != list(range(start, start + k)):
        return None
    first = run[0]
    if any(type(p) is not type(first) or (type(p) is tuple and p[1] != first[1]) for p in run):
        return None
    end = start + k
    if any(slot is not None and start <= slot < end for slot in slots[:at] + slots[at + k :]):
        return None
    shift = length - k

    def moved(p: Any) -> Any:
        slot = _slot_of(p)
        if slot is None or slot < end:
            return p
        return p + shift if type(p) is int else (slot + shift, p[1])

    widened = range(start, start + length) if type(first) is int else [(i, first[1]) for i in range(start, start + length)]
    return (*map(moved, positions[:at]), *widened, *map(moved, positions[at + k :]))


def _slot_of(position: Any) -> int | None:
    """The slot a plan position reads (a plain or adapted slot), None for a constant."""
    if type(position) is int:
        return position
    return position[0] if len(position) == 2 else None


def _no_build(rows: Rows) -> Any:
    return rows


def rows_plan(
    qs: QuerySet,
    outcome: Outcome,
    *,
    get: bool = False,
    limits: Any = None,
    adopt: Callable[[Any], None] | None = None,
    vinyl_class: Callable[[type], type] | None = None,
) -> tuple[Any, bool, str, tuple, Builder] | None:
    """Compile ``qs`` for evaluation, and its plan as ``outcome`` finds it.

    ``outcome``: :func:`probed_outcome` or :func:`long_list_outcome`.
    Returns ``(plan or Unplanned, zoned, driver_sql, driver_params, builder)``,
    or None when Django must evaluate the queryset itself (prefetching, empty
    results, iterables vinyl does not build). ``zoned``: the plan holds for
    the current time zone only. ``adopt(obj)`` is called on each instance
    whose query joined related objects (select_related). ``limits``: the
    slice shape whose slots are parameters (the recipe's one slice, not in
    ``get()``; see :func:`limit_parameters`), else None.
    """
    if _compat.prefetch_lookups(qs) or _compat.known_related_objects(qs) or qs.query.is_empty():
        return None
    if get:
        qs = _get_queryset(qs)
    db = qs.db
    compiler = qs.query.get_compiler(using=db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return None
    builder = _builder(qs, compiler, db, adopt, vinyl_class)
    if builder is None:
        return None
    builder = _single(qs.model, builder) if get else batched_rows(builder)
    if limits:
        sql, params = limit_parameters(sql, params, qs.query, db, limits)
    sql_out, params_out = connections[db].vinyl_cursor_class.prepare(sql, tuple(params))
    positions, zoned = outcome((sql, params), db, zone_sensitive(qs.query))
    if type(positions) is tuple and not _bindable(db, params):
        positions = TOO_MANY
    if type(positions) is tuple and _shares(db, sql, params):
        positions = SHARED
    plan = Plan(sql_out, positions, builder) if type(positions) is tuple else positions
    return plan, zoned, sql_out, tuple(params_out), builder


def scalar_plan(db: str, statement: Statement, probe: Statement | Unplanned, zone_probe: Callable[[], Statement | Unplanned | None], values: Sequence[Any], probes: Sequence[Any], build: Builder) -> tuple[Any, bool]:
    """Make a plan from a statement Django ran (count(), exists(), update()).

    Returns ``(plan or Unplanned, zoned)`` as :func:`rows_plan`.
    """
    return statement_plan(db, statement, statement_outcome(statement, probe, zone_probe, values, probes, value_adapters(db)), build)


def statement_plan(db: str, statement: Statement, found: tuple[Any, bool], build: Builder) -> tuple[Any, bool]:
    """``(plan or Unplanned, zoned)`` of a statement Django ran, from its ``(positions or Unplanned, zoned)``."""
    positions, zoned = found
    if type(positions) is tuple and not _bindable(db, statement[1]):
        positions = TOO_MANY
    if type(positions) is tuple and _shares(db, statement[0], statement[1]):
        positions = SHARED
    if type(positions) is not tuple:
        return positions, False
    return Plan(_driver_sql(db, statement[0], statement[1]), positions, build), zoned


def _shares(db: str, sql: str, params: Sequence[Any]) -> bool:
    # Whether the backend sends one parameter for several equal ones
    # (PostgreSQL, in a GROUP BY statement: see placeholders.equal_constants):
    # then the SQL depends on which values are equal. (No shape vinyl plans
    # today compiles to a GROUP BY; this keeps one that would from a plan.)
    return connections[db].vinyl_cursor_class.shared_parameters(sql, params) is not None


def _bindable(db: str, params: Sequence[Any]) -> bool:
    # Beyond it the backend rewrites the statement for these values (PostgreSQL
    # binds long IN lists as arrays): its SQL is no plan for other values.
    limit = connections[db].features.max_query_params
    return limit is None or len(params) <= limit


def _get_queryset(qs: QuerySet) -> QuerySet:
    # What QuerySet.get() runs: no ordering where it can be dropped, and
    # enough rows to tell one from several.
    if qs.query.can_filter() and not qs.query.distinct_fields:
        qs = qs.order_by()
    qs = _compat.chain(qs)
    qs.query.set_limits(high=GET_LIMIT)
    return qs


def _single(model: type[Model], build: Builder) -> Builder:
    def one(rows: Rows) -> Any:
        found = build(rows)
        if len(found) == 1:
            return found[0]
        if not found:
            raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
        more = "more than %s" % (GET_LIMIT - 1) if len(found) >= GET_LIMIT else len(found)
        raise model.MultipleObjectsReturned(
            f"get() returned more than one {model._meta.object_name} -- it returned {more}!"
        )

    return one


def _builder(
    qs: QuerySet,
    compiler: Any,
    db: str,
    adopt: Callable[[Any], None] | None,
    vinyl_class: Callable[[type], type] | None = None,
) -> Builder | None:
    fields = [s[0] for s in compiler.select[0 : compiler.col_count]]
    if compiler.has_composite_fields(fields):
        return None
    width = compiler.col_count if compiler.has_extra_select else None
    converters = compiler.get_converters(fields)
    convert = rows_converter(converters, width, compiler.connection)

    iterable = _compat.iterable_class(qs)
    query = qs.query
    if issubclass(iterable, ModelIterable):
        joined = adopt if query.select_related else None
        return _model_builder(qs, compiler, db, convert, joined, vinyl_class, converters)
    if iterable is FlatValuesListIterable:
        return lambda rows: [row[0] for row in convert(rows)]
    if iterable is ValuesListIterable and not query.extra_select and not query.annotation_select:
        return lambda rows: [tuple(row) for row in convert(rows)]
    if iterable is ValuesIterable:
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        return lambda rows: [dict(zip(names, row)) for row in convert(rows)]
    return None


def _direct_populators(populators: Sequence[Any], fetch_mode: Any, vinyl_class: Callable[[type], type] | None) -> bool:
    """Let Django's select_related populators build plain models directly.

    With ``vinyl_class``, they build instances of the class it gives for
    each model. Returns whether every populator (at every depth) does.
    """
    every = True
    for populator in populators:
        model = populator.model_cls
        cls = vinyl_class(model) if vinyl_class is not None else model
        if plain_construction(cls, populator.init_list):
            direct = from_db_function(cls, populator.init_list, fetch_mode)
            if "from_db" in populator.__dict__:  # Django 6.1
                populator.from_db = direct
            else:
                populator.model_cls = SimpleNamespace(from_db=direct, _meta=model._meta)
        else:
            every = False
        every = _direct_populators(populator.related_populators, fetch_mode, vinyl_class) and every
    return every


def _joins(klass_info: dict, select: Sequence[Any], vinyl_class: Callable[[type], type] | None) -> tuple[Joined, ...] | None:
    """The objects select_related joins to ``klass_info``'s, for
    joined_rows_maker; None where Django's populators must build them (a
    parent's columns reordered, a model built through ``__init__``, a
    setter other than a related field's cache, as FilteredRelation's)."""
    joins = []
    for info in klass_info.get("related_klass_infos", ()):
        if info["from_parent"]:
            return None
        model = info["model"]
        cls = vinyl_class(model) if vinyl_class is not None else model
        fields = info["select_fields"]
        attnames = tuple(select[i][0].target.attname for i in range(fields[0], fields[-1] + 1))
        pk = model._meta.pk_fields[0].attname
        cache_name, back = _cache_name(info["local_setter"]), _cache_name(info["remote_setter"])
        if not plain_construction(cls, attnames) or pk not in attnames or not cache_name or back is None:
            return None
        nested = _joins(info, select, vinyl_class)
        if nested is None:
            return None
        joins.append(Joined(cls, attnames, fields[0], attnames.index(pk), cache_name, back or None, nested))
    return tuple(joins)


def _cache_name(setter: Any) -> str | None:
    """The cache name a select_related setter stores under, "" for the
    compiler's setter that stores nothing, None for any other."""
    if getattr(setter, "__func__", None) is FieldCacheMixin.set_cached_value:
        return setter.__self__.cache_name
    code = getattr(setter, "__code__", None)
    if code is not None and setter.__name__ == "<lambda>" and setter.__module__ == "django.db.models.sql.compiler" and not code.co_names:
        return ""  # a forward key's object keeps no cache of the instance
    return None


def _inlined(converters: dict | None, read: Any, compiler: Any, unpacked: bool) -> Any:
    """The converter expressions a generated loop reading the positions
    ``read`` applies as it stores values (``()`` for no converter); None when
    a converted column is one it does not read (Django converts every
    column: the loop then takes the converted rows). ``unpacked``: the loop
    unpacks each row (see :func:`_row_width`)."""
    if converters is None:
        return None
    if not converters:
        return ()
    positions = set(read)
    if not all(pos in positions for pos in converters):
        return None
    return value_expressions(converters, compiler.connection, "row", unpacked)


def _row_width(compiler: Any) -> int | None:
    """How many columns each row the driver returns for ``compiler``'s SQL
    has, where that is known: the selected columns, unless the compiler adds
    ORDER BY columns of its own after them (``has_extra_select``)."""
    return None if compiler.has_extra_select else compiler.col_count


def _joined_positions(own: range, joins: Sequence[Joined]) -> set[int]:
    positions = set(own)
    for join in joins:
        positions |= _joined_positions(range(join.start, join.start + len(join.attnames)), join.joins)
    return positions


def _model_builder(
    qs: QuerySet,
    compiler: Any,
    db: str,
    convert: Callable[[Rows], Any],
    adopt: Callable[[Any], None] | None,
    vinyl_class: Callable[[type], type] | None = None,
    converters: dict | None = None,
) -> Builder:
    select = compiler.select
    klass_info = compiler.klass_info
    model = klass_info["model"]
    start = klass_info["select_fields"][0]
    end = klass_info["select_fields"][-1] + 1
    attnames = [column[0].target.attname for column in select[start:end]]
    annotations = tuple(compiler.annotation_col_map.items())
    # Django 6.1: instances carry the queryset's fetch mode.
    fetch_mode = _compat.fetch_mode(qs)
    populators = get_related_populators(klass_info, select, db, *([] if fetch_mode is None else [fetch_mode]))
    plain = plain_construction(model, attnames)
    # Rows from the driver (width known or not), and rows convert() gives
    # (always the selected columns).
    width, converted_width = _row_width(compiler), compiler.col_count
    if _direct_populators(populators, fetch_mode, vinyl_class) and vinyl_class is not None:
        adopt = None  # every joined object is built with its vinyl class
    if plain and not populators and adopt is None:
        if not annotations:
            converted = _inlined(converters, range(start, end), compiler, width is not None)
            if converted is not None:
                # Each value converted as it is stored: no converted copy of each row first.
                make_inline = rows_maker(model, attnames, start, fetch_mode, converted=converted or None, width=width)
                # (A partial, called in C: the same call as ``lambda rows:
                # make_inline(db, rows)`` without a Python frame per query.)
                return functools.partial(make_inline, db)
        # (The annotations, extra() columns as a many-to-many prefetch's
        # owner key among them, are stored by the same generated loop.)
        make_all = rows_maker(model, attnames, start, fetch_mode, annotations, width=converted_width)
        return lambda rows: make_all(db, convert(rows))
    joins = _joins(klass_info, select, vinyl_class) if plain and not annotations and adopt is None and caches_assignable() else None
    if joins is not None:
        # select_related: each row's objects built in one generated loop.
        converted = _inlined(converters, _joined_positions(range(start, end), joins), compiler, width is not None)
        if converted is not None:
            make_joined_inline = joined_rows_maker(model, attnames, start, fetch_mode, joins, converted or None, width)
            return lambda rows: make_joined_inline(db, rows)
        make_joined = joined_rows_maker(model, attnames, start, fetch_mode, joins, width=converted_width)
        return lambda rows: make_joined(db, convert(rows))
    if plain:
        make = row_maker(model, attnames, start, fetch_mode)
    else:
        from_db = model.from_db if fetch_mode is None else functools.partial(model.from_db, fetch_mode=fetch_mode)

        def make(db: str, row: Any) -> Any:
            return from_db(db, attnames, row[start:end])

    def build(rows: Rows) -> list:
        objs = []
        for row in convert(rows):
            obj = make(db, row)
            for populator in populators:
                populator.populate(row, obj)
            for name, position in annotations:
                setattr(obj, name, row[position])
            if adopt is not None:
                adopt(obj)
            objs.append(obj)
        return objs

    return build
