"""The shape of a QuerySet: its structure with the values left out.

A vinyl QuerySet records the chain of calls that built it. The shape of a
call keeps what decides the SQL (method, field names, lookups, slice bounds,
value types) and replaces each lookup value by a slot; two QuerySets of the
same shape compile to the same SQL, with the slot values as parameters. That
is what lets compiled SQL be reused across queries: cache keys are shapes,
never values.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, Sequence

from django.db.models import F, Value
from django.db.models.expressions import CombinedExpression

# Django compiles an integer beyond its field's range differently (a lookup
# that matches all or nothing): the range an integer falls in, and its sign,
# are part of a shape.
_INT_BUCKETS = (range(0, 2**15), range(2**15, 2**31), range(2**31, 2**63))


def _int_kind(value: int) -> tuple[str, int]:
    magnitude = -value - 1 if value < 0 else value
    sign = "-" if value < 0 else "+"
    for n, bucket in enumerate(_INT_BUCKETS):
        if magnitude in bucket:
            return sign, n
    return sign, len(_INT_BUCKETS)

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
        return _int_kind(value)
    if value is None:
        return kind
    if kind is datetime.datetime:
        return (kind, value.tzinfo is not None)
    if kind in _SCALARS:
        return kind
    return None


def step_shape(method: str, args: tuple, kwargs: dict) -> tuple[Any, tuple] | None:
    """Return ``(shape, slot_values)`` of one call, or None if not cacheable."""
    if method in _LOOKUP_METHODS:
        if args:
            return None  # Q objects and expressions: compiled every time
        keys = []
        values: list[Any] = []
        for key in sorted(kwargs):
            value = kwargs[key]
            if type(value) is bool:
                # isnull=True and isnull=False are different SQL: structure.
                keys.append((key, value))
                continue
            if isinstance(value, (list, tuple)):
                kinds = tuple(_slot_kind(v) for v in value)
                if not kinds or None in kinds:
                    return None
                keys.append((key, type(value), kinds))
                values.extend(value)
                continue
            kind = _slot_kind(value)
            if kind is None:
                return None
            keys.append((key, kind))
            values.append(value)
        return (method, tuple(keys)), tuple(values)
    if method in _STRUCTURE_METHODS:
        if not all(isinstance(a, str) for a in args):
            return None
        if not all(isinstance(v, (bool, type(None))) for v in kwargs.values()):
            return None
        return (method, args, tuple(sorted(kwargs.items()))), ()
    if method == "update":
        return _update_shape(kwargs)
    if method == "__getitem__":
        (k,) = args
        if isinstance(k, slice) and k.step is None:
            return ("slice", k.start, k.stop), ()
    return None


def _update_shape(kwargs: dict) -> tuple[Any, tuple] | None:
    # update(field=value): plain values are slots; expressions (F("n") + 1),
    # booleans and None are structure.
    keys: list[Any] = []
    values: list[Any] = []
    for key in sorted(kwargs):
        value = kwargs[key]
        if _update_structure(value):
            structure = _expression_key(value)
            if structure is None:
                return None
            keys.append((key, "=", structure))
            continue
        kind = _slot_kind(value)
        if kind is None:
            return None
        keys.append((key, kind))
        values.append(value)
    return ("update", tuple(keys)), tuple(values)


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
    if kind is Value and type(value.value) in (int, float, str, decimal.Decimal) and "output_field" not in value.__dict__:
        return ("V", type(value.value), value.value)
    if kind is CombinedExpression and "output_field" not in value.__dict__:
        lhs, rhs = _expression_key(value.lhs), _expression_key(value.rhs)
        if lhs is None or rhs is None:
            return None
        return ("C", value.connector, lhs, rhs)
    if kind in (bool, type(None)):
        return value
    try:
        hash(value)
    except TypeError:
        return None
    return value


def _update_structure(value: Any) -> bool:
    return type(value) is bool or value is None or hasattr(value, "resolve_expression")


def substitute(method: str, args: tuple, kwargs: dict, values: Any) -> tuple[tuple, dict]:
    """Return the call's arguments with its slots filled from ``values``.

    ``values`` is an iterator consumed in the order :func:`step_shape`
    collected the slots.
    """
    if method == "update":
        return args, {k: v if _update_structure(v) else next(values) for k, v in sorted(kwargs.items())}
    if method not in _LOOKUP_METHODS:
        return args, kwargs
    filled = {}
    for key in sorted(kwargs):
        value = kwargs[key]
        if type(value) is bool or value is None:
            filled[key] = value
        elif isinstance(value, (list, tuple)):
            filled[key] = type(value)(next(values) for _ in value)
        else:
            filled[key] = next(values)
    return args, filled


def _probe_str(value: str, n: int) -> str:
    # Strings often carry a typed value (a UUID, a number) that Django
    # parses: the probe keeps the format so that it parses too.
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        pass
    else:
        other = uuid.UUID(int=(parsed.int + n) % 2**128)
        return other.hex if value == parsed.hex else str(other)
    if value.isdigit():
        return str(int(value) + n)
    return f"{value}\x01{n}"


def probe_values(values: Sequence[Any]) -> tuple:
    """Return other values of the same kinds, all distinct from each other.

    Compiling a shape with these beside its real values shows which
    parameters come from which slot, and which are constants of the SQL.
    """
    probes = []
    for n, value in enumerate(values, 1):
        kind = type(value)
        if value is None:
            probes.append(None)
        elif kind is int:
            bucket = _int_kind(value)
            probes.append(value + n if _int_kind(value + n) == bucket else value - n)
        elif kind is str:
            probes.append(_probe_str(value, n))
        elif kind is float:
            probes.append(value + 7919.5 * n)
        elif kind is decimal.Decimal:
            probes.append(value + 7919 * n)
        elif kind in (datetime.datetime, datetime.date):
            probes.append(value + datetime.timedelta(days=n) if value.year < 9000 else value - datetime.timedelta(days=n))
        elif kind is datetime.time:
            probes.append(value.replace(microsecond=(value.microsecond + 7919 * n) % 1_000_000))
        elif kind is datetime.timedelta:
            probes.append(value + datetime.timedelta(seconds=7919 * n))
        elif kind is uuid.UUID:
            probes.append(uuid.UUID(int=(value.int + n) % 2**128))
        else:
            raise TypeError(f"no probe for {value!r}")
    return tuple(probes)


def slot_positions(
    params: Sequence[Any],
    values: Sequence[Any],
    probe_params: Sequence[Any],
    probes: Sequence[Any],
) -> tuple | None:
    """Map each compiled parameter to its slot, or mark it a constant.

    ``params`` were compiled from ``values``, ``probe_params`` from
    ``probes``. A parameter is slot ``j`` when it equals ``values[j]`` in the
    first compilation and ``probes[j]`` in the second; it is a constant of
    the SQL when both compilations gave the same value and that value is no
    slot's. Anything else (Django transformed the value, e.g. ``contains``
    wraps it in ``%``) makes the shape uncacheable: None. ``False`` means
    not now: a constant happened to equal a slot value.
    """
    if len(params) != len(probe_params):
        return None
    positions: list[Any] = []
    for param, probe in zip(params, probe_params):
        found = None
        for j, (value, other) in enumerate(zip(values, probes)):
            if type(param) is type(value) and param == value and type(probe) is type(other) and probe == other:
                found = j
                break
        if found is not None:
            positions.append(found)
            continue
        if type(param) is type(probe) and param == probe:
            if any(type(param) is type(v) and param == v for v in (*values, *probes)):
                return False
            positions.append((param,))
            continue
        return None
    return tuple(positions)
