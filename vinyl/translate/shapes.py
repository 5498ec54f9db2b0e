"""The shape of a QuerySet: its structure with the values left out.

A vinyl QuerySet records the chain of calls that built it. The shape of a
call keeps what decides the SQL (method, field names, lookups, slice bounds,
value types) and replaces each lookup value by a slot; two QuerySets of the
same shape compile to the same SQL, with the slot values as parameters. That
is what lets compiled SQL be reused across queries: cache keys are shapes,
never values.
"""

from __future__ import annotations

import bisect
import datetime
import decimal
import math
import operator
import uuid
from itertools import repeat
from typing import Any, Callable, Sequence

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import F, Prefetch, Value
from django.db.models.expressions import BaseExpression, CombinedExpression, Expression

# Django compiles an integer beyond its field's range differently (a lookup
# that matches all or nothing, see django.db.models.lookups): where an integer
# falls among every backend's range boundaries, and its sign, are part of a
# shape. The edges are the magnitudes 2**15 (smallint), 2**16 (MySQL's
# unsigned smallint), 2**31, 2**32, 2**63, 2**64 and 2**128 (UUIDField's
# integers). A backend with other boundaries keeps integer slots off plans
# (see vinyl.translate.plan_cache).
INT_EDGES = (2**15, 2**16, 2**31, 2**32, 2**63, 2**64, 2**128)
_SMALL = ("+", 0)
#: _int_kind of 2**15 <= value < 2**16, and of 2**16 <= value < 2**31.
_SIXTEEN, _THIRTY_ONE = ("+", 1), ("+", 2)
_EDGE_YEARS = (1, 9999)


def _int_kind(value: int) -> tuple[str, int]:
    if 0 <= value < 32768:
        return _SMALL
    magnitude = -value - 1 if value < 0 else value
    sign = "-" if value < 0 else "+"
    return sign, bisect.bisect_right(INT_EDGES, magnitude)


def _str_kind(value: str) -> Any:
    # Django parses some strings (numbers, UUIDs) into other values, and a
    # backend may store a parsed value in another spelling (a UUID's hex on
    # MySQL): strings that parse alike, in the same spelling, share a kind.
    if value.isdigit() and value.isascii():
        return "digits"
    if ":" in value:
        # Perhaps an IPv6 address, which an IP address field normalizes
        # ('2001:0DB8::1' -> '2001:db8::1'): its probe shows it (see
        # _probe_str), and a plan made from an IPv4 address is not used.
        return "colon"
    if len(value) in (32, 36):
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            return str
        return ("uuid", value == parsed.hex, value == str(parsed))
    return str


def _number_kind(value: Any) -> Any:
    # NaN and the infinities compile and validate unlike finite numbers.
    # So does -0.0 on PostgreSQL (bound as 0: see vinyl.translate.placeholders).
    kind = type(value)
    if math.isfinite(value) if kind is float else value.is_finite():
        if kind is float and value == 0.0 and math.copysign(1.0, value) < 0.0:
            return (kind, "-0.0")
        return kind
    return (kind, str(value))

# Values whose Python type alone decides how they are compiled and bound.
_SCALARS = (
    str,
    float,
    decimal.Decimal,
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
)

_ONLY_STR = {str}
_ONLY_INT = {int}

# Calls whose keyword values are lookup values (slots).
_LOOKUP_METHODS = frozenset({"filter", "exclude"})
# Calls made only of names and flags: their arguments are structure.
_STRUCTURE_METHODS = frozenset(
    {
        "all",
        "order_by",
        "reverse",
        "distinct",
        "values",
        "values_list",
        "select_related",
        "prefetch_related",
        "only",
        "defer",
        "using",
    }
)

Step = tuple[str, tuple, dict]


def _slot_kind(value: Any) -> Any:
    """Return the kind of a slot value, or None if it cannot be a slot."""
    kind = type(value)
    if kind is int:
        return _SMALL if 0 <= value < 32768 else _int_kind(value)
    if kind is str:
        return _str_kind(value)
    if value is None:
        return kind
    if kind is datetime.datetime:
        # The first and last years hold the values a backend may bind in
        # their own way (PostgreSQL's backend sends date.max as text): a
        # kind of their own.
        return (kind, value.tzinfo is not None, value.year in _EDGE_YEARS)
    if kind is datetime.date:
        return (kind, value.year in _EDGE_YEARS)
    if kind is float or kind is decimal.Decimal:
        return _number_kind(value)
    if kind in _SCALARS:
        return kind
    return None


def in_values(key: str, value: list | tuple) -> list | tuple:
    """The values of a list that Django's lookup compiles.

    ``__in`` drops None and repeated values (as Django's ``In`` lookup does),
    so a list with them has the values of the list without them (whether it
    held None is structure: see :func:`holds_none`).
    """
    if not key.endswith("__in"):
        return value
    unique = dict.fromkeys(value)
    # (No None, the usual list: copied in C, no test per value in Python:
    # 100 keys 63,500 -> 48,200 instructions.)
    if None not in unique:
        return list(unique)
    return [v for v in unique if v is not None]


def holds_none(key: str, value: list | tuple) -> bool:
    """Whether an ``__in`` list holds None.

    The SQL depends on it: from Django 6.0 on, ``exclude(f__in=[None, ...])``
    of a nullable ``f`` also excludes the rows where ``f`` is NULL (Django
    adds ``OR f IS NULL`` where it adds ``AND f IS NOT NULL`` for a list
    without None). Compared by identity, as Django does (a value equal to None is not None).
    """
    # (``None in value`` first, in C: False means no value is None, as a
    # value that is None is found before any comparison; only True needs
    # the scan by identity. The lists shaped here hold values of vinyl's
    # slot kinds, exact builtin types whose ``==`` with None is False:
    # 100 keys 22,600 -> 17,000 instructions.)
    return key.endswith("__in") and None in value and any(map(operator.is_, value, repeat(None)))


def grouped_by_kind(values: list | tuple, kinds: tuple) -> tuple[list | tuple, tuple]:
    """An ``__in`` list's values (not all integers) and their kinds, grouped by kind.

    The kinds come in one order (by their text) whatever the order of the
    list, each kind's values in their order in the list. (A list of
    integers is put in ascending order instead: see :func:`step_shape`.)
    """
    order = sorted(range(len(kinds)), key=lambda i: repr(kinds[i]))
    if order == list(range(len(order))):
        return values, kinds
    return [values[i] for i in order], tuple([kinds[i] for i in order])


#: From this many values on, a list whose values are all of one kind has
#: that kind and the count in its shape (:class:`Run`), not the kind repeated.
RUN_MIN = 16

#: The third item of a :class:`Run`: no slot kind is this object, so a run
#: never equals the kinds of a list of three values.
_RUN_MARK = object()


class Run(tuple):
    """The kinds of a list of ``count`` values all of ``kind``, as three items.

    A plan cache key holds a recipe, hashed at each lookup (Python caches
    no tuple's hash; a prefetch hashes its recipe three or four times):
    the key of ``filter(pk__in=<100 keys>)`` cost 14,000 instructions a hash
    with 100 kinds, 2,000 with ``(kind, count, mark)``, which is compared
    and hashed in C like any tuple. ``len()`` gives the count of values, as
    the kinds of the list would (:func:`long_list_span` reads it).
    """

    __slots__ = ()

    def __new__(cls, kind: Any, count: int) -> Run:
        return tuple.__new__(cls, (kind, count, _RUN_MARK))

    def __len__(self) -> int:
        return tuple.__getitem__(self, 1)

    def __repr__(self) -> str:
        return f"Run({tuple.__getitem__(self, 0)!r}, {len(self)})"

    # (Copied and pickled as the call that makes it: a queryset's recipe
    # goes with it through deepcopy and pickle; the mark is each process's.)
    def __reduce__(self) -> tuple:
        return (Run, (tuple.__getitem__(self, 0), len(self)))


def _run(kinds: tuple) -> tuple:
    """``kinds`` as a :class:`Run` if it is a long list of one kind."""
    if len(kinds) >= RUN_MIN and kinds.count(kinds[0]) == len(kinds):
        return Run(kinds[0], len(kinds))
    return kinds


def _int_kinds(values: list | tuple) -> tuple:
    """The kinds of a list of integers: _int_kind written out up to 2**31 (keys of a table past 32,767 rows)."""
    # (All of one band, the usual keys: one kind repeated, the band found
    # by min() and max() in C: 100 keys 43,000 -> 36,700 instructions.)
    if values:
        low, high = min(values), max(values)
        if 0 <= low and high < 32768:
            return (_SMALL,) * len(values)
        if 32768 <= low and high < 65536:
            return (_SIXTEEN,) * len(values)
        if 65536 <= low and high < 2147483648:
            return (_THIRTY_ONE,) * len(values)
    return tuple([
        _SMALL if 0 <= v < 32768 else _SIXTEEN if 32768 <= v < 65536 else _THIRTY_ONE if 65536 <= v < 2147483648 else _int_kind(v)
        for v in values
    ])  # fmt: skip


def _bands_apart(values: list | tuple) -> bool:
    """Do these integers (two or more), all in [0, 2**31), fall in more than one band of :func:`_int_kinds`?"""
    low, high = min(values), max(values)
    return 0 <= low and high < 2147483648 and (low < 32768 <= high or low < 65536 <= high)


def _ascending_int_kinds(values: list) -> tuple:
    """:func:`_int_kinds` of ascending integers in [0, 2**31): each band's run found by bisection."""
    small = bisect.bisect_left(values, 32768)
    sixteen = bisect.bisect_left(values, 65536, small)
    return (_SMALL,) * small + (_SIXTEEN,) * (sixteen - small) + (_THIRTY_ONE,) * (len(values) - sixteen)


def _reordered(kwargs: dict, key: str, values: list | tuple) -> None:
    """Give Django the ``__in`` list ``kwargs[key]`` as ``values`` (its values
    without None or repeats, in the order of the slots) and None if it held one."""
    given = kwargs[key]
    kwargs[key] = type(given)([*values, None] if holds_none(key, given) else values)


def step_shape(method: str, args: tuple, kwargs: dict) -> tuple[Any, tuple] | None:
    """Return ``(shape, slot_values)`` of one call, or None if not cacheable.

    An ``__in`` list of values of several kinds has one shape whatever
    their order: its integers in ascending order (their kinds ascend with
    them), other values grouped by kind (:func:`grouped_by_kind`). The list
    in ``kwargs`` (the call's own dict) is replaced by its values in that
    order, which the slot values follow: the query Django builds from
    ``kwargs`` binds them as the plan does. The order of an ``IN`` list
    changes no row (Django compiles each of its values alike, wherever it
    is), while the shape must say which kind each parameter is: on
    PostgreSQL each integer's placeholder is cast by its size
    (``$1::int4, $2::int8``) in the plan's SQL.
    """
    if method in _LOOKUP_METHODS:
        if args:
            return None  # Q objects and expressions: compiled every time
        if len(kwargs) == 1:
            (key,) = kwargs  # (not items(): see update_shape)
            value = kwargs[key]
            if type(value) is int:
                # (One integer, the usual get(pk=...) or filter(author_id=...):
                # the shape the loop below gives it, without its lists.)
                kind = _SMALL if 0 <= value < 32768 else _SIXTEEN if 32768 <= value < 65536 else _THIRTY_ONE if 65536 <= value < 2147483648 else _int_kind(value)
                return (method, ((key, kind),)), (value,)
        elif len(kwargs) == 2:
            # (Two integers, a range of keys: the loop below written out, in
            # the keywords' sorted order.)
            key, other = kwargs
            value, second = kwargs[key], kwargs[other]
            if type(value) is int and type(second) is int:
                if other < key:
                    key, value, other, second = other, second, key, value
                return (method, (
                    (key, _SMALL if 0 <= value < 32768 else _SIXTEEN if 32768 <= value < 65536 else _THIRTY_ONE if 65536 <= value < 2147483648 else _int_kind(value)),
                    (other, _SMALL if 0 <= second < 32768 else _SIXTEEN if 32768 <= second < 65536 else _THIRTY_ONE if 65536 <= second < 2147483648 else _int_kind(second)),
                )), (value, second)  # fmt: skip
        keys: list[tuple] = []
        values: list[Any] = []
        # (One keyword, the usual filter: in order as it is.)
        for key in kwargs if len(kwargs) == 1 else sorted(kwargs):
            value = kwargs[key]
            if type(value) is int:
                # (_slot_kind of an int written out up to 2**31, the usual keys.)
                keys.append((key, _SMALL if 0 <= value < 32768 else _SIXTEEN if 32768 <= value < 65536 else _THIRTY_ONE if 65536 <= value < 2147483648 else _int_kind(value)))
                values.append(value)
                continue
            if type(value) is bool:
                # isnull=True and isnull=False are different SQL: structure.
                keys.append((key, value))
                continue
            if type(value) is list or type(value) is tuple:
                try:
                    value = in_values(key, value)
                except TypeError:  # unhashable items: Django's own then
                    return None
                # (Text or integers only, the usual long lists: fewer calls per value.)
                types = set(map(type, value))
                if types == _ONLY_INT and len(value) > 1 and key.endswith("__in") and _bands_apart(value):
                    # (Of several bands, as a prefetch's keys past 32,767:
                    # in ascending order, then each band's kinds at once.)
                    ordered = sorted(value)
                    if ordered != value:
                        value = ordered
                        _reordered(kwargs, key, ordered)
                    kinds = _ascending_int_kinds(value)
                elif types == _ONLY_INT:
                    kinds = _int_kinds(value)
                    # (One kind, the usual list: its kinds are mostly one object.)
                    if len(kinds) > 1:
                        if kinds.count(kinds[0]) == len(kinds):
                            if len(kinds) >= RUN_MIN:
                                kinds = Run(kinds[0], len(kinds))
                        elif key.endswith("__in"):
                            ordered = sorted(value)  # (see above)
                            if ordered != value:
                                value = ordered
                                _reordered(kwargs, key, ordered)
                                kinds = _int_kinds(value)
                else:
                    kinds = tuple(map(_str_kind if types == _ONLY_STR else _slot_kind, value))
                    if None in kinds:
                        return None
                    if len(kinds) > 1 and key.endswith("__in") and kinds.count(kinds[0]) != len(kinds):
                        grouped, kinds = grouped_by_kind(value, kinds)
                        if grouped is not value:
                            value = grouped
                            _reordered(kwargs, key, grouped)
                    kinds = _run(kinds)
                if not kinds:
                    return None
                if holds_none(key, kwargs[key]):
                    keys.append((key, type(value), kinds, None))
                else:
                    keys.append((key, type(value), kinds))
                values.extend(value)
                continue
            kind = _slot_kind(value)
            if kind is None:
                return None
            keys.append((key, kind))
            values.append(value)
        return (method, tuple(keys)), tuple(values)
    if method == "__getitem__":
        (k,) = args
        if type(k) is slice and k.step is None:
            return slice_shape(k.start, k.stop)
        return None
    if method in _STRUCTURE_METHODS:
        # (Loops, not all() of a generator: order_by("id") is on most reads.)
        for arg in args:
            if type(arg) is not str and not isinstance(arg, str):
                if method == "prefetch_related" and any(isinstance(a, Prefetch) for a in args):
                    return _prefetch_shape(args, kwargs)
                return None
        if not kwargs:
            return (method, args, ()), ()
        for value in kwargs.values():
            if value is not None and type(value) is not bool:
                return None
        return (method, args, tuple(sorted(kwargs.items()))), ()
    if method == "update":
        return update_shape(kwargs)
    if method == "extra":
        return _extra_shape(args, kwargs)
    return None


def _prefetch_shape(args: tuple, kwargs: dict) -> tuple[Any, tuple] | None:
    """``prefetch_related()`` with ``Prefetch`` objects: structure.

    A ``Prefetch`` is its paths and the shape of its queryset (a vinyl
    QuerySet's recipe, which vinyl's ``_unwrap`` keeps on it); its values
    stay in that queryset, which is read when the prefetch runs. A Django
    QuerySet (no recipe) keeps the call off plans.
    """
    if kwargs:
        return None
    shape: list[Any] = []
    for arg in args:
        if isinstance(arg, str):
            shape.append(arg)
            continue
        if not isinstance(arg, Prefetch):
            return None
        inner = None
        # (The vinyl queryset read first: the Django one of a Prefetch vinyl
        # made is built only when read, see vinyl.queryset._VinylPrefetch.)
        vinyl_qs = getattr(arg, "_vinyl_queryset", None)
        if vinyl_qs is not None:
            if vinyl_qs._recipe is None:
                return None
            inner = (vinyl_qs._model, vinyl_qs._recipe)
        elif arg.queryset is not None:
            return None
        shape.append(("Prefetch", arg.prefetch_through, arg.prefetch_to, arg.to_attr, inner))
    return ("prefetch_related", tuple(shape), ()), ()


def _extra_shape(args: tuple, kwargs: dict) -> tuple[Any, tuple] | None:
    """``extra(select={name: sql})`` with no parameters (the column Django's
    many-to-many prefetch adds) is structure; other ``extra()`` calls are
    compiled every time."""
    select = kwargs.get("select")
    if args or any(value is not None for key, value in kwargs.items() if key != "select"):
        return None
    if type(select) is not dict or not select:
        return None
    items = tuple(select.items())
    if not all(type(k) is str and type(v) is str and "%" not in v for k, v in items):
        return None
    return ("extra", items), ()


#: How many distinct slice limits a process writes into the SQL as literals
#: (see :func:`slice_shape`); later ones are parameters.
LITERAL_LIMITS = 32
_literal_limits: set[int] = set()


def literal_limit(limit: int) -> bool:
    """Whether slices of ``limit`` rows have it as a literal in their SQL.

    The first :data:`LITERAL_LIMITS` distinct limits a process slices by do,
    for good; others are parameters. A limit is part of the shape only then:
    the shapes (plans, and the statements a server prepares) of one query
    stay bounded whatever limits it is sliced by. The answer for a limit
    never changes once given (the set only grows, until full).
    """
    if limit in _literal_limits:
        return True
    if len(_literal_limits) < LITERAL_LIMITS:
        _literal_limits.add(limit)
        return True
    return False


def slice_shape(start: Any, stop: Any) -> tuple[Any, tuple]:
    """The shape of ``qs[start:stop]`` and its slot values.

    A slice of non-negative integers that is not empty has its offset as a
    slot, so that every page of a query shares one plan; its limit
    (``stop - start``) is part of the shape (it stays a literal in the SQL:
    PostgreSQL plans a prepared statement whose LIMIT it knows once for all
    its executions, see :func:`literal_limit`), or past the first limits a
    slot too. Whether there is an offset and a limit, and their kinds, are
    the shape. Other slices (negative, empty, not integers) are shapes by
    value: Django raises for them, or answers without SQL.

    The shape's fourth item: None (no limit), the limit itself (an int, a
    literal), or the kind of the limit's slot (a tuple).
    """
    if (start is not None and type(start) is not int) or (stop is not None and type(stop) is not int):
        return ("slice", start, stop), ()
    low = start or 0
    if low < 0 or (stop is not None and stop <= low):
        return ("slice", start, stop), ()
    if not low:  # (qs[:n], the usual slice)
        if stop is None:
            return ("slice", "bounds", None, None), ()
        if stop in _literal_limits or literal_limit(stop):
            return ("slice", "bounds", None, stop), ()
        return ("slice", "bounds", None, _SMALL if stop < 32768 else _int_kind(stop)), (stop,)
    offset_kind = _int_kind(low)
    if stop is None:
        return ("slice", "bounds", offset_kind, None), (low,)
    limit = stop - low
    if limit in _literal_limits or literal_limit(limit):
        return ("slice", "bounds", offset_kind, limit), (low,)
    return ("slice", "bounds", offset_kind, _int_kind(limit)), (low, limit)


def _fill_slice(k: slice, values: Any) -> slice:
    # (slice_shape gives a slice the shape it gave it before: literal_limit's
    # answers never change.)
    shape = slice_shape(k.start, k.stop)[0]
    if len(shape) == 3:
        return k
    low = next(values) if shape[2] is not None else (k.start or 0)
    limit = shape[3]
    if limit is None:
        return slice(low, None)
    return slice(low, low + (limit if type(limit) is int else next(values)))


def update_shape(kwargs: dict) -> tuple[Any, tuple] | None:
    """``step_shape("update", (), kwargs)``: update(field=value) of plain
    values as slots; expressions (F("n") + 1), booleans, None and 0 are
    structure."""
    if len(kwargs) == 1:
        # (One field, the usual update: a text or a nonzero integer, or
        # F("n") + constant, shaped here as the loop below shapes it, without
        # its lists and _expression_key's call.)
        (key,) = kwargs  # (not items(): no view, iterator and pair to make)
        value = kwargs[key]
        kind: Any = type(value)
        if kind is str:
            return ("update", ((key, _str_kind(value)),)), (value,)
        if kind is int and value != 0:
            return ("update", ((key, _SMALL if 0 < value < 32768 else _int_kind(value)),)), (value,)
        if kind is CombinedExpression and "output_field" not in value.__dict__:
            lhs, rhs = value.lhs, value.rhs
            if type(lhs) is F and type(rhs) is Value and type(rhs.value) in _CONSTANT_TYPES and "output_field" not in rhs.__dict__:
                constant = rhs.value
                return ("update", ((key, "=", ("C", value.connector, ("F", lhs.name), ("V", type(constant), constant))),)), ()
    keys: list[Any] = []
    values: list[Any] = []
    for key in kwargs if len(kwargs) == 1 else sorted(kwargs):
        value = kwargs[key]
        kind = type(value)
        # (_slot_kind's usual answers and _update_structure written out: a
        # call less per value.)
        if kind is str:
            kind = _str_kind(value)
        elif kind is int and value != 0:
            kind = _SMALL if 0 < value < 32768 else _int_kind(value)
        elif kind is CombinedExpression or kind is bool or value is None or kind is int or hasattr(value, "resolve_expression"):
            # (F("n") + 1, the usual expression, tested first: no hasattr().)
            structure = _expression_key(value)
            if structure is None:
                return None
            keys.append((key, "=", structure))
            continue
        else:
            kind = _slot_kind(value)
            if kind is None:
                return None
        keys.append((key, kind))
        values.append(value)
    return ("update", tuple(keys)), tuple(values)


#: Constants of a Value() keyed by value (others are keyed by identity).
_CONSTANT_TYPES = (int, float, str, decimal.Decimal)


def _expression_key(value: Any) -> Any:
    """A hashable key that tells expressions apart, or None.

    F() and arithmetic on F() and constants get a key of plain tuples;
    other expressions are their own key (Django hashes them by identity,
    which is slower).
    """
    kind = type(value)
    if kind is F:
        return ("F", value.name)
    # (An explicit output_field is part of the expression: identity then.)
    if kind is Value and type(value.value) in _CONSTANT_TYPES and "output_field" not in value.__dict__:
        return ("V", type(value.value), value.value)
    if kind is CombinedExpression and "output_field" not in value.__dict__:
        # (The usual operands, F("n") + 1, keyed here: a call less for each.)
        lhs, rhs = value.lhs, value.rhs
        lhs = ("F", lhs.name) if type(lhs) is F else _expression_key(lhs)
        if type(rhs) is Value and type(rhs.value) in _CONSTANT_TYPES and "output_field" not in rhs.__dict__:
            rhs = ("V", type(rhs.value), rhs.value)
        else:
            rhs = _expression_key(rhs)
        if lhs is None or rhs is None:
            return None
        return ("C", value.connector, lhs, rhs)
    if kind in (bool, type(None)):
        return value
    if kind is int:
        return ("V", int, value)  # (not False's key: 0 == False)
    try:
        hash(value)
    except TypeError:
        return None
    if isinstance(value, Expression) and not _identity_keys(value.identity):
        return None
    return value


def _identity_keys(identity: Any) -> bool:
    """Whether Django's ``identity`` of an expression tells it apart from
    every expression Django compiles otherwise.

    Django compares expressions by their constructor arguments, with a
    field not bound to a model reduced to its class (Cast to CharField(3)
    equals Cast to CharField(5)) and constants compared by ``==`` (True ==
    1 == 1.0 == Decimal(1)): an identity holding such a field or a constant
    other than a str or an int is no plan key (the update goes to Django).
    """
    for item in identity:
        kind = type(item)
        if kind is str or kind is int or item is None:
            continue
        if kind is tuple:
            if not _identity_keys(item):
                return False
        elif isinstance(item, Expression):
            if not _identity_keys(item.identity):
                return False
        elif isinstance(item, BaseExpression):
            continue  # (no identity, as Subquery: equal only to itself)
        elif isinstance(item, type):
            if issubclass(item, models.Field):
                return False
        else:
            return False
    return True


def _update_structure(value: Any) -> bool:
    # (Written out in update_shape(): the same test.)
    # The integer 0 too: MySQL's backend refuses 0 for a key to an AutoField
    # where Django prepares the value (ValueError), and a plan made from
    # another value would send it; as structure, Django sees every such update.
    return type(value) is bool or value is None or (type(value) is int and value == 0) or hasattr(value, "resolve_expression")


#: An ``__in`` list of this many values (after :func:`in_values`) is long:
#: its plan is found from compilations of the query with the list cut to 2
#: and 3 values, not from a second compilation of every value (see
#: :func:`vinyl.translate.plans.long_list_outcome`).
LONG_LIST = 64


def _long(key: str, value: list | tuple) -> bool:
    """Whether the list has LONG_LIST values Django compiles (without deduplicating all of it)."""
    if len(value) < LONG_LIST:
        return False
    if not key.endswith("__in"):
        return True
    seen = set()
    for item in value:
        if item is not None:
            seen.add(item)
            if len(seen) >= LONG_LIST:
                return True
    return False


def long_list_span(recipe: Sequence[Any]) -> tuple[int, int] | None:
    """``(first slot, length)`` of the one long ``__in`` list of a recipe, else None.

    None when no list is long, or more than one is.
    """
    slot = 0
    found = None
    for shape in recipe:
        method = shape[0]
        if method in _LOOKUP_METHODS or method == "update":
            for entry in shape[1]:
                if len(entry) >= 3 and entry[1] in (list, tuple):  # (a 4th: the list held None)
                    count = len(entry[2])
                    if count >= LONG_LIST:
                        if found is not None:
                            return None
                        found = (slot, count)
                    slot += count
                elif len(entry) == 2 and type(entry[1]) is not bool:
                    slot += 1
        elif method == "slice" and len(shape) == 4:
            slot += (shape[2] is not None) + (type(shape[3]) is tuple)
    return found


def substitute(method: str, args: tuple, kwargs: dict, values: Any, short: int | None = None) -> tuple[tuple, dict]:
    """Return the call's arguments with its slots filled from ``values``.

    ``values`` is an iterator consumed in the order :func:`step_shape`
    collected the slots. ``short``: a long ``__in`` list gets only this many
    values (see :data:`LONG_LIST`).
    """
    if method == "update":
        return args, {k: v if _update_structure(v) else next(values) for k, v in sorted(kwargs.items())}
    if method == "__getitem__":
        return (_fill_slice(args[0], values),), kwargs
    if method not in _LOOKUP_METHODS:
        return args, kwargs
    filled: dict[str, Any] = {}
    for key in sorted(kwargs):
        value = kwargs[key]
        if type(value) is bool or value is None:
            filled[key] = value
        elif type(value) is list or type(value) is tuple:
            count = short if short is not None and _long(key, value) else len(in_values(key, value))
            items = [next(values) for _ in range(count)]
            if holds_none(key, value):
                items.append(None)  # compiled with its None, as the call (see holds_none)
            filled[key] = type(value)(items)
        else:
            filled[key] = next(values)
    return args, filled


# Characters that Django escapes in some lookups (LIKE on MySQL and SQLite):
# every probe string has them, so that a value Django escapes is never mapped
# to a slot replayed raw.
_LIKE_SPECIALS = "%_\\"
# An IPv6 zone: '%' opens it, LIKE's other special characters follow.
_IPV6_PROBE_ZONE = "%_\\\x01"
# Tries per value to find a probe no other value or probe has.
_PROBE_TRIES = 16


def _probe_str(value: str, n: int) -> str:
    # Strings Django parses (a UUID, a number) keep their format, so that
    # the probe parses too; others carry LIKE's special characters.
    kind = _str_kind(value)
    if kind == "digits":
        return str(int(value) + n)
    if kind == "colon":
        # An IPv6 address with a zone, which an IP address field rewrites
        # (as '::n'), so a plan of an IP field never takes it as a slot.
        return f"::{n:x}{_IPV6_PROBE_ZONE}"
    if type(kind) is tuple:
        parsed = uuid.UUID(value)
        other = uuid.UUID(int=(parsed.int + n) % 2**128)
        if kind[1]:
            return other.hex
        return str(other) if kind[2] else str(other).upper()
    return f"{value}{_LIKE_SPECIALS}\x01{n}"


#: Durations from here up are probed downwards (timedelta's range ends at 999,999,999 days).
_FAR_DURATION = datetime.timedelta(days=900_000_000)


def _probe(value: Any, n: int) -> Any:
    kind = type(value)
    if kind is int:
        bucket = _int_kind(value)
        return value + n if _int_kind(value + n) == bucket else value - n
    if kind is str:
        return _probe_str(value, n)
    if kind is float:
        return value + 7919.5 * n
    if kind is decimal.Decimal:
        return value + 7919 * n
    if kind is datetime.datetime:
        # Another day and another time of day: Django may keep only one of
        # them (``__date``, ``__time``), and that part must differ too.
        shift = datetime.timedelta(days=n, seconds=1 + n % 86_398, microseconds=n % 999_983)
        return value + shift if value.year < 9000 else value - shift
    if kind is datetime.date:
        return value + datetime.timedelta(days=n) if value.year < 9000 else value - datetime.timedelta(days=n)
    if kind is datetime.time:
        # Another second (a backend may drop the microseconds) and microsecond.
        seconds = (value.hour * 3600 + value.minute * 60 + value.second + 1 + n % 86_398) % 86_400
        return value.replace(
            hour=seconds // 3600, minute=seconds // 60 % 60, second=seconds % 60,
            microsecond=(value.microsecond + 7919 * n) % 1_000_000,
        )  # fmt: skip
    if kind is datetime.timedelta:
        # Away from the end of the range it is close to (timedelta.max is
        # 999,999,999 days).
        shift = datetime.timedelta(seconds=7919 * n)
        return value + shift if value < _FAR_DURATION else value - shift
    if kind is uuid.UUID:
        return uuid.UUID(int=(value.int + n) % 2**128)
    raise TypeError(f"no probe for {value!r}")


def probe_values(values: Sequence[Any]) -> tuple | None:
    """Return other values of the same kinds, distinct from each other and from ``values``.

    Compiling a shape with these beside its real values shows which
    parameters come from which slot, and which are constants of the SQL.
    None values are their own probe (a None compiles alike whatever the
    others). None when no such probes are found for these values (floats
    too large to move, say): try with other values. Linear in the values.
    """
    taken = {(type(v), v) for v in values if v is not None and v == v}
    probes: list[Any] = []
    append = probes.append
    step = len(values) + 1
    for n, value in enumerate(values, 1):
        kind = type(value)
        if kind is str and _str_kind(value) is str:
            # Plain text: a probe with LIKE's specials and a number of its
            # own is plain text too, and no other value's or probe's.
            probe = f"{value}{_LIKE_SPECIALS}\x01{n}"
            if (str, probe) not in taken:
                taken.add((str, probe))
                append(probe)
                continue
        elif value is None:
            append(None)
            continue
        for attempt in range(_PROBE_TRIES):
            probe = _probe(value, n + attempt * step)
            marked = (type(probe), probe)
            if probe == probe and marked not in taken and _slot_kind(probe) == _slot_kind(value):
                break
        else:
            return None
        taken.add(marked)
        append(probe)
    return tuple(probes)


def slot_positions(
    params: Sequence[Any],
    values: Sequence[Any],
    probe_params: Sequence[Any],
    probes: Sequence[Any],
    adapters: dict[type, Callable[[Any], Any]] | None = None,
) -> tuple | None | bool:
    """Map each compiled parameter to its slot, or mark it a constant.

    ``params`` were compiled from ``values``, ``probe_params`` from
    ``probes`` (each probe distinct from every value and other probe). A
    parameter is slot ``j`` when it is ``values[j]`` in the first
    compilation and ``probes[j]`` in the second; it is a constant of the SQL
    when both compilations gave the same value and that value is no slot's.
    Anything else (Django transformed the value, e.g. ``contains`` wraps it
    in ``%``) makes the shape uncacheable: None. ``False`` means not with
    these values: the compilations differ in length, or a constant happened
    to equal a slot value. Linear in the number of parameters.

    ``adapters`` (value type -> the backend's adapter, e.g. MySQL's
    ``adapt_datetimefield_value``, which sends datetimes as text): a
    parameter that is ``adapter(values[j])`` in the first compilation and
    ``adapter(probes[j])`` in the second is slot ``j`` through that adapter,
    ``(j, adapter)`` in the positions. Naive datetimes are never adapted so:
    Django first makes them aware in the default zone.
    """
    if len(params) != len(probe_params):
        return False
    # (Probes are distinct from every value and other probe: a pair of
    # value and probe is one slot's.)
    slots: dict = {}
    for j, pair in enumerate(zip(values, probes)):
        if pair[0] is not None:
            slots.setdefault(pair, j)
    positions: list[Any] = []
    append = positions.append
    known = None
    adapted: dict | None = None
    for pair in zip(params, probe_params):
        try:
            found = slots.get(pair)
        except TypeError:  # an unhashable parameter (a list, JSON): no slot's
            found = None
        if found is not None:
            param, probe = pair
            if type(param) is type(values[found]) and type(probe) is type(probes[found]):
                append(found)
                continue
        param, probe = pair
        if adapters:
            if adapted is None:
                adapted = _adapted_slots(values, probes, adapters)
            try:
                through = adapted.get((type(param), param, type(probe), probe))
            except TypeError:
                through = None
            if through is not None:
                append(through)
                continue
        if type(param) is type(probe) and param == probe:
            if known is None:
                known = {(type(v), v) for v in (*values, *probes) if v is not None}
            try:
                if (type(param), param) in known:
                    return False
            except TypeError:
                pass
            append((param,))
            continue
        return None
    return tuple(positions)


def _adapted_slots(values: Sequence[Any], probes: Sequence[Any], adapters: dict[type, Callable[[Any], Any]]) -> dict:
    """``(type, adapted value, type, adapted probe) -> (slot, adapter)`` for the slots an adapter takes."""
    found: dict = {}
    for j, (value, probe) in enumerate(zip(values, probes)):
        adapter = adapters.get(type(value))
        if adapter is None or type(probe) is not type(value):
            continue
        if type(value) is datetime.datetime and (value.tzinfo is None or probe.tzinfo is None):
            continue
        try:
            a, b = adapter(value), adapter(probe)
            key = (type(a), a, type(b), b)
            found.setdefault(key, (j, adapter))
        except (ValueError, TypeError, OverflowError):  # refused: no slot of this adapter
            continue
    return found


# -- validation ------------------------------------------------------------------

# Fields that accept every value of the slot kinds below unchanged in
# validity: any str on a text field, any int on a number or text field.
_TEXT_FIELDS = (models.CharField, models.TextField)
_INT_FIELDS = (models.IntegerField, models.FloatField, models.DecimalField, *_TEXT_FIELDS)


def deferrable(model: type, method: str, kwargs: dict) -> bool:
    """Whether Django accepts every value of this call's slot kinds if it accepted one.

    Django validates lookup values when ``filter()`` is called (an int
    field given ``"abc"`` raises ValueError there). A call whose shape Django
    accepted before may skip building the query only when its values cannot
    fail where the earlier ones passed: strings on text fields, integers on
    number or text fields, and values of other kinds (their kind decides).
    """
    if method not in _LOOKUP_METHODS:
        return True
    for key, value in kwargs.items():
        items = value if type(value) is list or type(value) is tuple else (value,)
        kinds = {type(v) for v in items}
        if str not in kinds and int not in kinds:
            continue
        field = _target_field(model, key)
        if field is None:
            return False
        if str in kinds and not isinstance(field, _TEXT_FIELDS):
            return False
        if int in kinds and not isinstance(field, _INT_FIELDS):
            return False
    return True


def _target_field(model: type[models.Model], key: str) -> Any:
    """The field whose ``get_prep_value`` the lookup ``key`` applies, or None if unknown."""
    parts = key.split("__")
    opts = model._meta
    field = None
    i = 0
    for i, name in enumerate(parts):  # noqa: B007 (i is used after the loop)
        if field is not None:
            if not field.is_relation or field.related_model is None:
                break
            opts = field.related_model._meta
        try:
            field = opts.pk if name == "pk" else opts.get_field(name)
        except FieldDoesNotExist:
            break
    else:
        i = len(parts)
    if field is None:
        return None
    for _ in range(4):  # a key held by a relation (a parent link, a foreign key's key)
        if not field.is_relation:
            break
        target = getattr(field, "target_field", None) if isinstance(field, models.ForeignKey) else None
        if target is None:
            related = field.related_model
            target = related._meta.pk if related is not None else None
        if target is None or target is field:
            return None
        field = target
    if field.is_relation:
        return None
    rest = parts[i:]
    for n, name in enumerate(rest):
        if n == len(rest) - 1 and field.get_lookup(name) is not None:
            return field
        transform = field.get_transform(name)
        output = getattr(transform, "output_field", None) if transform is not None else None
        if not isinstance(output, models.Field):
            return None
        field = output
    return field
