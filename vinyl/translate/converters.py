"""Rows through Django's converters, with code generated once per query shape.

Django's ``SQLCompiler.apply_converters`` copies each row into a list and
calls every converter of every converted column through two loops. Here a
function written for the shape builds each row as a tuple with one
expression per converted column: the converters Django gave, called in
Django's order with Django's arguments. One converter is inlined, because it
runs on every datetime MySQL returns under ``USE_TZ``: the MySQL backend's
``convert_datetimefield_value`` (``make_aware(value, connection.timezone)``),
which for a naive ``datetime`` (of fold 0, as drivers build them) is
``value.replace(tzinfo=...)``, written as date arithmetic that builds the
same value more cheaply (see :func:`value_expressions`); any other value (an
aware one, a string for a zero date, fold 1) goes through Django's
converter, so errors stay Django's.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Sequence

Rows = Sequence[Sequence[Any]]

#: The naive datetime every naive one is an offset from (year 1: any
#: datetime minus it is a timedelta in range).
_EPOCH = datetime.datetime(1, 1, 1)

_MYSQL_DATETIME = ("django.db.backends.mysql.operations", "DatabaseOperations.convert_datetimefield_value")


#: The time zone :func:`aware_epoch` was last given, and its aware epoch.
_last_aware: tuple[Any, datetime.datetime | None] = (None, None)


def aware_epoch(tz: datetime.tzinfo) -> datetime.datetime:
    """``_EPOCH.replace(tzinfo=tz)``, remembered for the last ``tz`` given.

    Every batch of MySQL datetimes needs it (see :func:`value_expressions`),
    and ``replace()`` parses its keyword: about 9,000 instructions a query
    on CPython 3.11, more than the rest of building one instance. The time
    zone is compared by identity (equal time zones may still differ, by
    name: the value must hold the very object Django would give it), and
    kept with its value in one tuple, replaced whole, so that threads never
    read the value of another zone.
    """
    global _last_aware
    last = _last_aware
    if last[0] is tz:
        return last[1]  # type: ignore[return-value]
    aware = _EPOCH.replace(tzinfo=tz)
    _last_aware = (tz, aware)
    return aware


def _is_mysql_datetime(converter: Any) -> bool:
    func = getattr(converter, "__func__", None)
    return func is not None and (func.__module__, func.__qualname__) == _MYSQL_DATETIME


#: One converted position, as the C row builder takes it (see
#: vinyl.translate.instances): Django's converters of it in order, the
#: expression and connection passed to each, and, where the first is MySQL's
#: datetime converter inlined (see :func:`value_expressions`), its
#: operations object (None otherwise) and whether the driver's datetimes are
#: all naive of fold 0.
Conversion = tuple[tuple[Any, ...], Any, Any, Any, bool]

#: What :func:`value_expressions` gives: the names the expressions use, the
#: statements to run once per batch before them, per converted position the
#: expression of its converted value, and per converted position its
#: :data:`Conversion` (in the order of the statements run once per batch).
Converted = tuple[dict[str, Any], list[str], dict[int, str], dict[int, Conversion]]


def batch_aware(ops: Any) -> datetime.datetime | None:
    """The aware epoch a batch of MySQL datetimes is converted with (None
    without a time zone): what the statements :func:`value_expressions`
    runs once per batch compute, read the same way."""
    tz = ops.connection.timezone
    return None if tz is None else aware_epoch(tz)


def value_expressions(converters: dict[int, tuple[list, Any]], connection: Any, row: str = "r", unpacked: bool = False) -> Converted:
    """Django's converters of each converted position, as Python expressions
    reading the column from ``row`` (see :func:`rows_converter`); code that
    builds objects straight from rows inlines them (vinyl.translate.instances).
    ``unpacked``: the expressions read column ``k`` from the local ``c<k>``
    (a loop that unpacked each row), not ``row[k]``."""
    namespace: dict[str, Any] = {"conn": connection, "dt": datetime.datetime, "epoch": _EPOCH, "aware_epoch": aware_epoch}
    prologue: list[str] = []
    items: dict[int, str] = {}
    conversions: dict[int, Conversion] = {}
    naive = bool(getattr(connection, "vinyl_driver_datetimes_naive", False))
    for pos, (convs, expression) in converters.items():
        namespace[f"e{pos}"] = expression
        value = f"c{pos}" if unpacked else f"{row}[{pos}]"
        start = 0
        inlined = bool(convs) and _is_mysql_datetime(convs[0])
        conversions[pos] = (tuple(convs), expression, connection, convs[0].__self__ if inlined else None, naive)
        if inlined:
            # make_aware(v, tz) of a naive datetime; None stays None.
            namespace[f"c{pos}_0"] = convs[0]
            namespace[f"ops{pos}"] = convs[0].__self__
            # aware + (v - epoch) is v.replace(tzinfo=tz) for a naive v of
            # fold 0: naive arithmetic keeps the left operand's tzinfo object
            # and gives fold 0, without replace()'s (or combine()'s)
            # argument parsing: per value about 1,700 instructions fewer.
            # Without a time zone (USE_TZ off: Django adds no such
            # converter) every value goes through Django's converter.
            prologue.append(f"tz{pos} = ops{pos}.connection.timezone")
            prologue.append(f"naive{pos}, aware{pos} = (None, None) if tz{pos} is None else (dt, aware_epoch(tz{pos}))")
            if naive:
                # Every datetime the driver gives is naive, of fold 0 (its
                # own decoders): the type says enough (about 780
                # instructions a value fewer than reading tzinfo and fold).
                value = (
                    f"(aware{pos} + (v - epoch) if type(v := {value}) is naive{pos} "
                    f"else None if v is None else c{pos}_0(v, e{pos}, conn))"
                )
            else:
                value = (
                    f"(None if (v := {value}) is None else aware{pos} + (v - epoch) "
                    f"if type(v) is naive{pos} and v.tzinfo is None and not v.fold else c{pos}_0(v, e{pos}, conn))"
                )
            start = 1
        for k in range(start, len(convs)):
            namespace[f"c{pos}_{k}"] = convs[k]
            value = f"c{pos}_{k}({value}, e{pos}, conn)"
        items[pos] = value
    return namespace, prologue, items, conversions


def rows_converter(converters: dict[int, tuple[list, Any]], width: int | None, connection: Any) -> Callable[[Rows], Rows]:
    """``convert(rows)``: Django's converted rows (the first ``width`` columns).

    ``converters`` is ``SQLCompiler.get_converters()``: position ->
    ``(converters, expression)``; ``connection`` the compiler's, passed to
    each converter as ``apply_converters`` does.
    """
    if not converters:
        if width is None:
            return lambda rows: rows
        return lambda rows: [row[:width] for row in rows]
    namespace, prologue, converted, _ = value_expressions(converters, connection)
    last = max(converters)
    items = [converted.get(pos, f"r[{pos}]") for pos in range(last + 1)]
    tail = f"*r[{last + 1}:{'' if width is None else width}]"
    lines = ["def convert(rows):", *("    " + line for line in prologue), f"    return [({', '.join(items)}, {tail}) for r in rows]"]
    # The source holds only integer positions and names defined above.
    exec("\n".join(lines), namespace)  # noqa: S102
    return namespace["convert"]
