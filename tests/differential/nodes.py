"""Values of a generated query that are built per ORM and printed as Python.

A case is data: plain values (ints, strings, dates...) and the nodes below.
``build(x, side)`` turns it into the objects one ORM gets (Django's sync
manager or vinyl's), ``code(x, side)`` into the Python source a user would
type, so that a mismatch report is a runnable reproduction.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import models as dm
from django.db.models import functions as fn
from django.db.models.fields.json import KT

from tests.diffapp import models

DJANGO = "django"
VINYL = "vinyl"

#: Names usable in Call nodes: Django's expression and helper classes.
CALLABLES: dict[str, Any] = {
    "Q": dm.Q,
    "F": dm.F,
    "Value": dm.Value,
    "Count": dm.Count,
    "Sum": dm.Sum,
    "Avg": dm.Avg,
    "Max": dm.Max,
    "Min": dm.Min,
    "StdDev": dm.StdDev,
    "Case": dm.Case,
    "When": dm.When,
    "Exists": dm.Exists,
    "OuterRef": dm.OuterRef,
    "Subquery": dm.Subquery,
    "ExpressionWrapper": dm.ExpressionWrapper,
    "Prefetch": dm.Prefetch,
    "IntegerField": dm.IntegerField,
    "FloatField": dm.FloatField,
    "CharField": dm.CharField,
    "DecimalField": dm.DecimalField,
    "Lower": fn.Lower,
    "Upper": fn.Upper,
    "Length": fn.Length,
    "Coalesce": fn.Coalesce,
    "Concat": fn.Concat,
    "Abs": fn.Abs,
    "ExtractYear": fn.ExtractYear,
    "ExtractMonth": fn.ExtractMonth,
    "ExtractHour": fn.ExtractHour,
    "TruncDate": fn.TruncDate,
    "TruncMonth": fn.TruncMonth,
    "Cast": fn.Cast,
    "BigIntegerField": dm.BigIntegerField,
    "DateTimeField": dm.DateTimeField,
    "DateField": dm.DateField,
    "BooleanField": dm.BooleanField,
    "Greatest": fn.Greatest,
    "Least": fn.Least,
    "NullIf": fn.NullIf,
    "Round": fn.Round,
    "Mod": fn.Mod,
    "Floor": fn.Floor,
    "Ceil": fn.Ceil,
    "Sign": fn.Sign,
    "Power": fn.Power,
    "Substr": fn.Substr,
    "Replace": fn.Replace,
    "Left": fn.Left,
    "Right": fn.Right,
    "StrIndex": fn.StrIndex,
    "LPad": fn.LPad,
    "Trim": fn.Trim,
    "Reverse": fn.Reverse,
    "Now": fn.Now,
    "TruncHour": fn.TruncHour,
    "TruncDay": fn.TruncDay,
    "ExtractWeekDay": fn.ExtractWeekDay,
    "ExtractQuarter": fn.ExtractQuarter,
    "KT": KT,
    "FilteredRelation": dm.FilteredRelation,
    "Window": dm.Window,
    "Rank": fn.Rank,
    "DenseRank": fn.DenseRank,
    "Lag": fn.Lag,
}

MODELS = {m.__name__: m for m in (models.Tag, models.Owner, models.Premium, models.Profile, models.Item)}


class Node:
    """Something built differently for each ORM."""

    def build(self, side: str, alias: str) -> Any:
        raise NotImplementedError

    def code(self, side: str) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Call(Node):
    """``name(*args, **kwargs)`` for a name of CALLABLES."""

    name: str
    args: tuple = ()
    kwargs: tuple = ()  # ((key, value), ...)

    def build(self, side: str, alias: str) -> Any:
        return CALLABLES[self.name](*build(self.args, side, alias), **dict(build(self.kwargs, side, alias)))

    def code(self, side: str) -> str:
        parts = [code(a, side) for a in self.args] + [f"{k}={code(v, side)}" for k, v in self.kwargs]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class BinOp(Node):
    """``left op right`` (``+ - * & | ~``) on expressions or Q objects."""

    op: str
    left: Any
    right: Any = None

    def build(self, side: str, alias: str) -> Any:
        left = build(self.left, side, alias)
        if self.op == "~":
            return ~left
        right = build(self.right, side, alias)
        return {"+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,
                "&": lambda: left & right, "|": lambda: left | right, "^": lambda: left ^ right}[self.op]()

    def code(self, side: str) -> str:
        if self.op == "~":
            return f"~{code(self.left, side)}"
        return f"({code(self.left, side)} {self.op} {code(self.right, side)})"


@dataclass(frozen=True)
class Gen(Node):
    """A generator over the items (a fresh one per build): non-list iterables for ``__in``."""

    items: tuple

    def build(self, side: str, alias: str) -> Any:
        return (x for x in build(list(self.items), side, alias))

    def code(self, side: str) -> str:
        return f"(x for x in {code(list(self.items), side)})"


@dataclass(frozen=True)
class Inst(Node):
    """An instance of the user's model with only its primary key (as a user passes a loaded one)."""

    model: str
    pk: Any

    def build(self, side: str, alias: str) -> Any:
        obj = MODELS[self.model](pk=self.pk)
        obj._state.adding = False
        obj._state.db = alias
        return obj

    def code(self, side: str) -> str:
        return f"{self.model}.objects.get(pk={self.pk!r})" if side == DJANGO else f"await {self.model}.vinyl.get(pk={self.pk!r})"


@dataclass(frozen=True)
class QS(Node):
    """A QuerySet of the side's own manager, e.g. for ``__in``, Subquery, Exists, Prefetch."""

    model: str
    ops: tuple  # ((method, args, kwargs), ...)

    def build(self, side: str, alias: str) -> Any:
        model = MODELS[self.model]
        qs = model.objects.using(alias) if side == DJANGO else model.vinyl.all()
        return apply_ops(qs, self.ops, side, alias)

    def code(self, side: str) -> str:
        head = f"{self.model}.objects" if side == DJANGO else f"{self.model}.vinyl"
        return head + ops_code(self.ops, side) if self.ops else head + ".all()"


@dataclass(frozen=True)
class Method(Node):
    """``obj.name(**kwargs)``, e.g. ``F("x").desc(nulls_last=True)``."""

    obj: Any
    name: str
    kwargs: tuple = ()

    def build(self, side: str, alias: str) -> Any:
        return getattr(build(self.obj, side, alias), self.name)(**dict(build(self.kwargs, side, alias)))

    def code(self, side: str) -> str:
        return f"{code(self.obj, side)}.{self.name}({', '.join(f'{k}={code(v, side)}' for k, v in self.kwargs)})"


@dataclass(frozen=True)
class New(Node):
    """A new, unsaved instance of the user's model (bulk_create's input)."""

    model: str
    fields: tuple

    def build(self, side: str, alias: str) -> Any:
        return MODELS[self.model](**dict(build(self.fields, side, alias)))

    def code(self, side: str) -> str:
        return f"{self.model}({', '.join(f'{k}={code(v, side)}' for k, v in self.fields)})"


@dataclass(frozen=True)
class Existing(Node):
    """An instance of a stored row with new field values (bulk_update's input)."""

    model: str
    pk: Any
    fields: tuple

    def build(self, side: str, alias: str) -> Any:
        obj = MODELS[self.model](pk=self.pk, **dict(build(self.fields, side, alias)))
        obj._state.adding = False
        obj._state.db = alias
        return obj

    def code(self, side: str) -> str:
        return f"{self.model}(pk={self.pk!r}, {', '.join(f'{k}={code(v, side)}' for k, v in self.fields)})"


def apply_ops(qs: Any, ops: tuple, side: str, alias: str) -> Any:
    """Apply chain operations ``(method, args, kwargs)`` (``slice``/``index`` included)."""
    for name, args, kwargs in ops:
        if name == "slice":
            qs = qs[slice(*args)]
        else:
            qs = getattr(qs, name)(*build(args, side, alias), **dict(build(kwargs, side, alias)))
    return qs


def ops_code(ops: tuple, side: str) -> str:
    out = []
    for name, args, kwargs in ops:
        if name == "slice":
            start, stop = args
            out.append(f"[{'' if start is None else start}:{'' if stop is None else stop}]")
        else:
            parts = [code(a, side) for a in args] + [f"{k}={code(v, side)}" for k, v in kwargs]
            out.append(f".{name}({', '.join(parts)})")
    return "".join(out)


def build(x: Any, side: str, alias: str) -> Any:
    """The object ``x`` stands for on ``side``."""
    if isinstance(x, Node):
        return x.build(side, alias)
    if type(x) is list:
        return [build(i, side, alias) for i in x]
    if type(x) is tuple:
        return tuple(build(i, side, alias) for i in x)
    if type(x) is dict:
        return {k: build(v, side, alias) for k, v in x.items()}
    return x


def code(x: Any, side: str) -> str:
    """Python source for ``x`` on ``side``."""
    if isinstance(x, Node):
        return x.code(side)
    if type(x) is list:
        return "[" + ", ".join(code(i, side) for i in x) + "]"
    if type(x) is tuple:
        inner = ", ".join(code(i, side) for i in x)
        return f"({inner},)" if len(x) == 1 else f"({inner})"
    if type(x) is dict:
        return "{" + ", ".join(f"{k!r}: {code(v, side)}" for k, v in x.items()) + "}"
    if isinstance(x, datetime.datetime):
        tz = x.tzinfo
        tzs = "" if tz is None else (", tzinfo=UTC" if tz is datetime.timezone.utc else f", tzinfo=ZoneInfo({getattr(tz, 'key', str(tz))!r})")
        return f"datetime.datetime({x.year}, {x.month}, {x.day}, {x.hour}, {x.minute}, {x.second}, {x.microsecond}{tzs})"
    if isinstance(x, (datetime.date, datetime.time, datetime.timedelta)):
        return "datetime." + repr(x).removeprefix("datetime.")
    if isinstance(x, decimal.Decimal):
        return f"Decimal({str(x)!r})"
    if isinstance(x, uuid.UUID):
        return f"uuid.UUID({str(x)!r})"
    if isinstance(x, datetime.tzinfo) and hasattr(x, "key"):
        return f"ZoneInfo({x.key!r})"
    return repr(x)


PRELUDE = (
    "import datetime, uuid\nfrom decimal import Decimal\nfrom zoneinfo import ZoneInfo\n"
    "from django.db.models import *\nfrom django.db.models.functions import *\n"
    "from django.utils import timezone\nfrom tests.diffapp.models import *\nUTC = datetime.timezone.utc\n"
)


@dataclass
class Case:
    """One generated operation: a chain and a terminal, on one model, maybe under a time zone."""

    model: str
    ops: tuple
    terminal: tuple  # (name, args, kwargs)
    shape: int = 0  # index of the shape it was drawn from
    draw: int = 0  # index of the value draw within the shape
    tz: str | None = None
    ordered: bool = False  # results are a total order (compare as lists)
    related: tuple = ()  # select_related / prefetch paths to read from instances
    attrs: tuple = ()  # annotations / to_attr names read from instances
    write: bool = False
    extra: dict = field(default_factory=dict)
    #: Prefetched / to_attr lists (paths) whose order is defined: compared in order (see compare.norm_instance).
    in_order: tuple = ()

    def code(self, side: str) -> str:
        """A reproduction of this case on ``side`` as Python source."""
        name, args, kwargs = self.terminal
        if self.write and name.startswith("obj:"):
            return self.extra["code"][side]
        head = f"{self.model}.objects" if side == DJANGO else f"{self.model}.vinyl"
        chain = head + (ops_code(self.ops, side) if self.ops else ".all()")
        parts = [code(a, side) for a in args] + [f"{k}={code(v, side)}" for k, v in kwargs]
        aw = "await " if side == VINYL else ""
        if name == "list":
            line = f"list({chain})" if side == DJANGO else f"await {chain}"
        elif name == "iter":
            size, how = stream_of(self)
            sized = "" if size is None else f"chunk_size={size}"
            if how == "aiter":
                line = f"list({chain})" if side == DJANGO else f"[x async for x in {chain}]"
            else:
                if side == DJANGO and how == "aiterator" and size is None:
                    sized = "chunk_size=2000"  # (Django's aiterator()'s default)
                line = (f"list({chain}.iterator({sized}))" if side == DJANGO
                        else f"[x async for x in {chain}.{how}({sized})]")
        elif name == "index":
            line = f"{aw}{chain}[{args[0]}]"
        else:
            method = async_name(self, name) if side == VINYL else name
            line = f"{aw}{chain}.{method}({', '.join(parts)})"
        rel_after = self.extra.get("rel_after")
        if rel_after is not None:
            head, method = rel_after
            call = "filter(pk__gt=0)" if method == "filter" else f"{method}()"
            line = (f"result = {line}\n# then, on up to 3 of its instances (lowest pk first):\n"
                    f"{'await ' if side == VINYL else 'list(' if method in ('all', 'filter') else ''}obj.{head}.{call}"
                    f"{')' if side == DJANGO and method in ('all', 'filter') else ''}")
        refresh = self.extra.get("refresh")
        if refresh is not None:
            fields = {"deferred": "<its deferred fields>", "all": "None"}.get(refresh) if isinstance(refresh, str) else repr(refresh)
            how = async_name(self, "refresh_from_db") if side == VINYL else "refresh_from_db"
            line = (f"result = {line}\n# then, on up to 3 of its instances (lowest pk first):\n"
                    f"{aw}obj.{how}(fields={fields})")
        if self.tz:
            return f"with timezone.override({self.tz!r}):\n    " + line.replace("\n", "\n    ")
        return line


def stream_of(case: Case) -> tuple:
    """(chunk_size, how) of an ``iter`` terminal: how is ``iterator``, ``aiterator``
    (vinyl's alias of it; Django's iterator() is the oracle) or ``aiter`` (``async for``
    over the QuerySet itself; Django's list() is the oracle, as its ``async for`` is)."""
    args = case.terminal[1]
    return (args[0], args[1]) if args else (2, "iterator")


def async_name(case: Case, name: str) -> str:
    """The name vinyl's side calls: Django's ``a``-prefixed alias when the case says so."""
    return "a" + name if case.extra.get("alias") else name
