"""Seeded random QuerySets and writes over tests.diffapp, replayable from two seeds.

A *shape* seed drives every structural choice (model, chain methods, paths,
lookups, terminal); a *draw* seed drives the values. The same shape seed with
other draw seeds gives the same QuerySet shape with new values (what a plan
cache sees in production). ``Grammar.read(shape, draw)`` and
``Grammar.write(shape, draw)`` return :class:`~tests.differential.nodes.Case`.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import random
import uuid
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

from tests.differential.data import INT_RANGES, JSONS, STRINGS, ZONES, Dataset
from tests.differential.nodes import MODELS, QS, BinOp, Call, Case, Existing, Gen, Inst, Method, New

UTC = datetime.timezone.utc

KIND_OF = {
    "SmallIntegerField": "int:small", "PositiveSmallIntegerField": "int:psmall", "IntegerField": "int:integer",
    "PositiveIntegerField": "int:pint", "BigIntegerField": "int:big", "PositiveBigIntegerField": "int:pbig",
    "AutoField": "int:pk", "BigAutoField": "int:pk", "CharField": "str", "TextField": "str", "SlugField": "str",
    "DecimalField": "dec", "FloatField": "float", "BooleanField": "bool", "DateField": "date", "DateTimeField": "dt",
    "TimeField": "time", "DurationField": "dur", "UUIDField": "uuid", "JSONField": "json", "BinaryField": "bytes",
    "GenericIPAddressField": "ip",
}

#: Paths each model is filtered on (relations included).
FILTER_PATHS = {
    "Item": ["id", "name", "text", "small", "psmall", "integer", "pint", "big", "pbig", "dec", "flt", "flag", "maybe",
             "day", "at", "clock", "span", "uid", "data", "blob", "slug", "ip", "owner", "tags", "owner__name",
             "owner__age", "owner__joined", "owner__profile__score", "owner__premium__level", "tags__name", "tags__weight"],
    "Owner": ["id", "name", "age", "joined", "items", "items__integer", "items__name", "items__at", "items__flag",
              "profile__bio", "profile__score", "premium__level", "premium__since", "profile"],
    "Premium": ["id", "name", "age", "joined", "level", "since", "code", "items__name", "items__big", "profile__score"],
    "Profile": ["id", "bio", "score", "owner", "owner__name", "owner__age", "owner__items__flag"],
    "Tag": ["id", "name", "weight", "items", "items__name", "items__flag", "items__owner__name", "items__day"],
}
#: Orderable paths (single-valued relations only, so ordering never multiplies rows).
ORDER_PATHS = {
    "Item": ["name", "text", "small", "integer", "big", "pbig", "dec", "flt", "flag", "maybe", "day", "at", "clock",
             "span", "uid", "slug", "owner__name", "owner__age", "owner"],
    "Owner": ["name", "age", "joined", "profile__score", "premium__level"],
    "Premium": ["name", "age", "level", "since"],
    "Profile": ["bio", "score", "owner__name", "owner"],
    "Tag": ["name", "weight"],
}
VALUE_PATHS = {
    "Item": ["id", "name", "text", "small", "psmall", "integer", "pint", "big", "pbig", "dec", "flt", "flag", "maybe",
             "day", "at", "clock", "span", "uid", "data", "blob", "slug", "ip", "owner", "owner__name", "owner__age",
             "tags__name", "owner__profile__bio"],
    "Owner": ["id", "name", "age", "joined", "profile__bio", "premium__level", "items__name", "profile"],
    "Premium": ["id", "name", "age", "joined", "level", "since", "code", "owner_ptr"],
    "Profile": ["id", "bio", "score", "owner", "owner__name"],
    "Tag": ["id", "name", "weight", "items__integer"],
}
SELECT_RELATED = {"Item": ["owner", "owner__profile", "owner__premium"], "Owner": ["profile", "premium"],
                  "Premium": ["profile"], "Profile": ["owner", "owner__premium"], "Tag": []}
PREFETCH = {"Item": ["tags", "owner", "owner__items", "owner__items__tags"], "Owner": ["items", "items__tags", "profile"],
            "Premium": ["items", "items__tags"], "Profile": ["owner", "owner__items", "owner__items__tags"],
            "Tag": ["items", "items__owner", "items__tags"]}
#: Paths a Prefetch queryset of the model at the end of a prefetch path filters on, by the relation the path ends
#: with: back through that same relation (the join vinyl's prefetcher must reuse, as Django's does) or through others.
PREFETCH_THROUGH = {
    "tags": ["items__name", "items__flag", "items__integer", "items__owner__name", "items__id", "items"],
    "items:m2m": ["tags__name", "tags__weight", "tags", "tags__id"],
    "items:fk": ["owner__name", "owner__age", "owner", "owner__profile__score"],
}
PREFETCH_OTHER = {"Tag": ["name", "weight", "items__owner__age"], "Item": ["integer", "name", "flag", "owner__name", "tags__name"]}
#: Kinds an ``__in`` list of hundreds or thousands of distinct values can be drawn for.
LONG_KINDS = ("int", "str", "uuid", "date", "dec", "float", "rel")
ONLY_FIELDS = {"Item": ["name", "integer", "dec", "at", "data", "flag", "owner"], "Owner": ["name", "age"],
               "Premium": ["name", "level", "code"], "Profile": ["bio", "owner"], "Tag": ["name"]}
DATE_FIELDS = {"Item": [("day", "date"), ("at", "dt")], "Owner": [("joined", "date")], "Premium": [("since", "dt"), ("joined", "date")]}
#: Meta.ordering that is a total order (ties impossible).
TOTAL_META = {"Tag", "Owner", "Premium"}
#: only()/defer() across a relation select_related joins: the relation's fields a chain names (``owner__name``).
ONLY_ACROSS = {"Item": {"owner": ["name", "age", "joined"], "owner__profile": ["bio", "score"], "owner__premium": ["level", "code"]},
               "Owner": {"profile": ["bio", "score"], "premium": ["level", "since"]},
               "Premium": {"profile": ["bio", "score"]},
               "Profile": {"owner": ["name", "age", "joined"], "owner__premium": ["level", "since"]}}
#: A concrete field that is not a relation (prefetch_related of it is refused) per model.
NOT_A_RELATION = {"Item": "name", "Owner": "name", "Premium": "level", "Profile": "bio", "Tag": "weight"}
#: only()/defer() a Prefetch queryset applies (the key the prefetcher matches on is kept, or loaded after).
PREFETCH_ONLY = {"Item": [("only", ("name", "integer")), ("defer", ("text", "data", "blob")), ("only", ("name",)),
                          ("defer", ("name", "owner"))],
                 "Tag": [("only", ("name",)), ("defer", ("weight",))]}

LOOKUPS = {
    "int": ["exact", "exact", "lt", "lte", "gt", "gte", "in", "range", "isnull", "regex"],
    "str": ["exact", "exact", "iexact", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith",
            "in", "regex", "iregex", "gt", "lte", "isnull"],
    "dec": ["exact", "lt", "gte", "in", "range", "isnull"],
    "float": ["exact", "lt", "gte", "in", "range", "isnull"],
    "bool": ["exact", "exact", "in", "isnull"],
    "date": ["exact", "lt", "gte", "range", "in", "isnull", "year", "month", "day", "week_day", "quarter", "year__gt",
             "month__in", "iso_year", "week"],
    "dt": ["exact", "lt", "gte", "range", "isnull", "date", "date__lt", "year", "month", "day", "hour", "minute",
           "week_day", "date__in", "hour__gte", "time__lt", "date__range"],
    "time": ["exact", "lt", "gt", "hour", "isnull", "in"],
    "dur": ["exact", "lt", "gt", "isnull"],
    "uuid": ["exact", "iexact", "in", "isnull", "startswith", "icontains"],
    "json": ["exact", "isnull", "has_key", "has_keys", "has_any_keys", "contains", "key", "key", "key_gt",
             "key_isnull", "key_in", "key_icontains", "nested"],
    "bytes": ["exact", "isnull"],
    "ip": ["exact", "in", "isnull", "startswith"],
    "rel": ["exact", "in", "isnull", "pk_gt", "exact"],
}
#: Lookups whose compiled SQL or parameters depend on the value or the settings
#: (time zone, LIKE escaping, integer ranges, list length and duplicates):
#: stable shapes pick these often.
HOT_LEAVES = {
    "Item": [("id", "in"), ("integer", "in"), ("name", "in"), ("at", "date"), ("at", "hour"), ("at", "date__lt"),
             ("at", "day"), ("day", "year"), ("name", "iexact"), ("name", "contains"), ("name", "startswith"),
             ("text", "icontains"), ("name", "iendswith"), ("pint", "lt"), ("psmall", "gt"), ("big", "gte"),
             ("pbig", "lt"), ("small", "lte"), ("dec", "lt"), ("uid", "exact"), ("owner", "exact"),
             ("owner__name", "iexact"), ("tags__name", "in"), ("flt", "gte"), ("at", "exact"), ("maybe", "exact"),
             ("text", "exact"), ("integer", "range"), ("pint", "in")],
    "Owner": [("id", "in"), ("name", "iexact"), ("age", "lt"), ("items__at", "date"), ("items__name", "icontains")],
    "Premium": [("level", "lt"), ("since", "hour"), ("name", "startswith"), ("id", "in")],
    "Profile": [("bio", "iexact"), ("score", "lt"), ("owner__name", "contains")],
    "Tag": [("name", "iexact"), ("weight", "in"), ("items__at", "date")],
}
REGEXES = ["^a", "b$", "a.b", "^$", "[0-9]", "é", "^[A-Z]", "b{1,2}", "\\\\", "(a|b)", "^.{2}$", "%", "_", "\\.", "ann"]
JSON_KEYS = ["a", "b", "k", "0", "é", "%"]
#: Where a value is compared with an F() of the same kind.
F_PAIRS = {
    "Item": [("small", "integer"), ("integer", "big"), ("psmall", "pint"), ("name", "text"), ("name", "slug"),
             ("dec", "flt"), ("integer", "owner__age"), ("flt", "owner__profile__score"), ("day", "owner__joined")],
    "Owner": [("age", "items__integer"), ("name", "profile__bio")],
    "Premium": [("level", "age")],
    "Profile": [("score", "owner__age")],
    "Tag": [("weight", "items__small"), ("name", "items__name")],
}


#: Database functions over Item's columns (each a name and a maker taking the value rng): casts, wrappers,
#: math, text, dates in the current time zone, JSON keys as text.
ITEM_FUNCTIONS: list = [
    ("cint", lambda v: Call("Cast", ("dec", Call("IntegerField")))),
    ("cstr", lambda v: Call("Cast", (v.choice(["integer", "day", "flag"]), Call("CharField", (), (("max_length", 40),))))),
    ("cday", lambda v: Call("Cast", ("at", Call("DateField")))),
    ("cdec", lambda v: Call("Cast", ("small", Call("DecimalField", (), (("max_digits", 10), ("decimal_places", 2)))))),
    ("ew", lambda v: Call("ExpressionWrapper", (BinOp("*", Call("F", ("small",)), Call("F", ("psmall",))),),
                          (("output_field", Call("BigIntegerField")),))),
    ("ewd", lambda v: Call("ExpressionWrapper", (BinOp("+", Call("F", ("dec",)), v.choice([1, 0])),),
                           (("output_field", Call("DecimalField", (), (("max_digits", 14), ("decimal_places", 3))),),))),
    ("ewb", lambda v: Call("ExpressionWrapper", (Call("Q", (), (("integer__gt", v.randint(-3, 3)),)),),
                           (("output_field", Call("BooleanField")),))),
    ("gt", lambda v: Call("Greatest", ("small", "psmall", Call("Value", (v.choice([0, -5, 100]),))))),
    ("ls", lambda v: Call("Least", ("day", Call("Value", (datetime.date(2024, v.choice([1, 6]), 1),))))),
    ("nif", lambda v: Call("NullIf", ("name", Call("Value", (v.choice(["a", "", "Ann"]),))))),
    ("ab", lambda v: Call("Abs", ("small",))),
    ("rd", lambda v: Call("Round", ("dec", v.choice([0, 1, 2])))),
    ("rf", lambda v: Call("Round", ("flt",))),
    ("md", lambda v: Call("Mod", ("integer", Call("Value", (v.choice([7, -3]),))))),
    ("fl", lambda v: Call("Floor", ("dec",))),
    ("ce", lambda v: Call("Ceil", ("dec",))),
    ("sg", lambda v: Call("Sign", ("big",))),
    ("pw", lambda v: Call("Power", ("psmall", Call("Value", (2,))))),
    ("ss", lambda v: Call("Substr", ("name", v.choice([1, 2, 3]), v.choice([1, 2])))),
    ("rp", lambda v: Call("Replace", ("name", Call("Value", (v.choice(["a", "%", "_", "b"]),)), Call("Value", ("X",))))),
    ("lf", lambda v: Call("Left", ("name", v.choice([1, 2])))),
    ("rt", lambda v: Call("Right", ("name", v.choice([1, 3])))),
    ("si", lambda v: Call("StrIndex", ("name", Call("Value", (v.choice(["a", "b", "%", ""]),))))),
    ("lp", lambda v: Call("LPad", ("slug", v.choice([3, 5]), Call("Value", ("*",))))),
    ("tr", lambda v: Call("Trim", ("name",))),
    ("th", lambda v: Call("TruncHour", ("at",))),
    ("tdy", lambda v: Call("TruncDay", ("at",))),
    ("tm", lambda v: Call("TruncMonth", ("day",))),
    ("wd", lambda v: Call("ExtractWeekDay", ("at",))),
    ("qt", lambda v: Call("ExtractQuarter", ("day",))),
    ("past", lambda v: Call("Case", (Call("When", (), (("at__lt", Call("Now")), ("then", Call("Value", (True,))))),),
                            (("default", Call("Value", (False,))),))),
    ("kt", lambda v: Call("KT", (v.choice(["data__a", "data__k__n", "data__0", "data__b__1"]),))),
]
#: Expressions a values()/values_list() call selects under a name, per model.
VALUE_EXPRESSIONS: dict = {
    "Item": [lambda v: Call("Lower", ("name",)), lambda v: Call("KT", ("data__a",)), lambda v: Call("F", ("owner__name",)),
             lambda v: BinOp("+", Call("F", ("integer",)), v.choice([1, -1])), lambda v: Call("TruncDate", ("at",)),
             lambda v: Call("Left", ("name", 1))],
    "Owner": [lambda v: Call("Upper", ("name",)), lambda v: Call("Count", ("items",)), lambda v: Call("F", ("profile__score",))],
    "Premium": [lambda v: BinOp("+", Call("F", ("level",)), 1), lambda v: Call("Lower", ("code",))],
    "Profile": [lambda v: Call("Length", ("bio",)), lambda v: Call("F", ("owner__age",))],
    "Tag": [lambda v: Call("Abs", ("weight",)), lambda v: Call("Count", ("items",))],
}
#: Order keys that are expressions (string ones through Lower: equal words tie, the key after breaks it).
ORDER_EXPRESSIONS = {
    "Item": [Call("Lower", ("name",)), Call("KT", ("data__a",)), Call("Length", ("text",)), Call("Coalesce", ("integer", "small")),
             BinOp("-", Call("F", ("big",)), 1), Call("ExtractHour", ("at",))],
    "Owner": [Call("Lower", ("name",)), Call("Coalesce", ("age", Call("Value", (0,))))],
    "Premium": [Call("Lower", ("code",)), BinOp("*", Call("F", ("level",)), -1)],
    "Profile": [Call("Length", ("bio",)), Call("Abs", ("score",))],
    "Tag": [Call("Abs", ("weight",)), Call("Reverse", ("name",))],
}
#: distinct(*fields) (PostgreSQL only; others raise NotSupportedError): fields it keeps one row per value of.
DISTINCT_ON = {"Item": ["owner", "flag", "day", "maybe"], "Owner": ["age"], "Premium": ["level"], "Profile": ["owner"],
               "Tag": ["weight"]}
#: A filter whose right-hand side is an expression (a function, the current time): (model, lookup, maker).
EXPRESSION_LEAVES = {
    "Item": [("at__lt", lambda v: Call("Now")), ("day__lte", lambda v: Call("TruncDate", (Call("Now"),))),
             ("integer__gt", lambda v: Call("Abs", ("small",))), ("name__startswith", lambda v: Call("Left", ("text", 1))),
             ("name__iexact", lambda v: Call("Lower", ("slug",))), ("flt__lt", lambda v: Call("Round", ("dec",))),
             ("data__a", lambda v: Call("KT", ("data__b",)))],
    "Owner": [("age__gte", lambda v: Call("Length", ("name",))), ("joined__lt", lambda v: Call("TruncDate", (Call("Now"),)))],
    "Premium": [("since__lt", lambda v: Call("Now")), ("level__gt", lambda v: Call("Abs", ("age",)))],
    "Profile": [("score__lt", lambda v: Call("Length", ("bio",)))],
    "Tag": [("weight__lte", lambda v: Call("Length", ("name",)))],
}

#: Aggregates over expressions: (function, maker of its argument).
AGGREGATE_EXPRESSIONS = {
    "Item": [("Sum", lambda v: BinOp("*", Call("F", ("small",)), v.choice([2, -1]))), ("Max", lambda v: Call("Lower", ("name",))),
             ("Count", lambda v: Call("Case", (Call("When", (), (("flag", True), ("then", Call("Value", (1,))))),))),
             ("Sum", lambda v: Call("Case", (Call("When", (), (("integer__gt", v.randint(-3, 3)), ("then", "dec"))),),
                                    (("default", Call("Value", (decimal.Decimal("0"),))),))),
             ("Avg", lambda v: Call("Length", ("name",))), ("Min", lambda v: Call("TruncDate", ("at",))),
             ("Max", lambda v: Call("Coalesce", ("integer", "small")))],
    "Owner": [("Max", lambda v: Call("Length", ("name",))), ("Sum", lambda v: BinOp("+", Call("F", ("age",)), 1))],
    "Tag": [("Sum", lambda v: Call("Abs", ("weight",))), ("Max", lambda v: Call("Upper", ("name",)))],
}

#: Expressions bulk_update sets a field of Item to.
BULK_UPDATE_EXPRESSIONS = {
    "integer": lambda v: BinOp("+", Call("F", ("integer",)), v.choice([1, -1, 2**31])),
    "big": lambda v: BinOp("*", Call("F", ("small",)), Call("F", ("psmall",))),
    "name": lambda v: Call("Concat", (Call("F", ("name",)), Call("Value", (v.choice(["!", "%", ""]),)))),
    "dec": lambda v: Call("Round", ("dec", 1)),
    "flag": lambda v: Call("ExpressionWrapper", (Call("Q", (), (("integer__gt", 0),)),), (("output_field", Call("BooleanField")),)),
    "text": lambda v: Call("Lower", ("name",)),
    "day": lambda v: Call("TruncDate", ("at",)),
}

#: The relation a FilteredRelation of the model joins, and the field of it the condition and filters read.
FILTERED_RELATION = {"Item": ("tags", "weight"), "Owner": ("items", "integer"), "Premium": ("items", "integer"),
                     "Tag": ("items", "integer")}


def _field(model: type, path: str) -> tuple[type, Any]:
    """The model and field a ``__`` path ends on."""
    field = None
    for part in path.split("__"):
        field = model._meta.get_field(part)
        if field.is_relation:
            model = field.related_model
    return model, field


def kind_of(model_name: str, path: str) -> tuple[str, type, Any]:
    model, field = _field(MODELS[model_name], path)
    if field.is_relation:
        return "rel", model, field
    return KIND_OF[field.get_internal_type()], model, field


class Grammar:
    """Draws cases over a dataset; every method takes the shape rng ``s`` and value rng ``v``."""

    def __init__(self, data: Dataset, backend: str) -> None:
        self.data = data
        self.backend = backend
        rows = {
            "Tag": data.tags, "Owner": data.owners, "Profile": data.profiles, "Item": data.items,
            "Premium": [{**o, **p, "id": o["id"]} for p in data.premiums for o in data.owners if o["id"] == p["owner_ptr_id"]],
        }
        self.rows = rows
        # A "stable" shape keeps to what vinyl can plan (keyword filters, plain
        # values of one type per slot, fixed list lengths): its draws replay a
        # cached plan with new values, where plan-cache bugs show.
        self.stable = False
        #: How often the rarer shapes were drawn (long lists, Prefetch querysets...): the run's summary shows it.
        self.tally: Counter = Counter()

    # ------------------------------------------------------------------ values
    def column(self, model: type, field: Any) -> list:
        name = field.attname if hasattr(field, "attname") else field.name
        return [r[name] for r in self.rows[model.__name__] if r.get(name) is not None]

    def scalar(self, v: random.Random, kind: str, model: type, field: Any) -> Any:
        """One value for an exact-like comparison with ``field`` (mostly one that exists)."""
        col = self.column(model, field) if kind != "rel" else []
        r = v.random()
        if col and r < (0.75 if self.stable else 0.65):
            return v.choice(col)
        if r < (0.97 if self.stable else 0.9):
            return self.edge(v, kind, model, field)
        return self.odd(v, kind, model)

    def edge(self, v: random.Random, kind: str, model: type, field: Any) -> Any:
        if kind.startswith("int"):
            name = kind.split(":")[1]
            if name == "pk":
                return v.choice([1, 2, 3, 5, 11, 36, 37, 0, -1, 10**6, 2**63 - 1])
            lo, hi = INT_RANGES[name]
            return v.choice([lo, hi, lo - 1, hi + 1, 0, 1, -1, 65535, 65536, 4294967295, 4294967296, 5_000_000_000,
                             2_500_000_000, 2**63, -(2**63) - 1, 2**64, v.randint(-50, 50)])
        if kind == "str":
            return v.choice(STRINGS)
        if kind == "dec":
            return v.choice([decimal.Decimal("0"), decimal.Decimal("1.5"), decimal.Decimal("-0.001"), decimal.Decimal("1e9"),
                             decimal.Decimal("999999999.9995"), decimal.Decimal("12.3456"), decimal.Decimal("1E+20"),
                             decimal.Decimal("-999999999.999"), decimal.Decimal(v.randint(-999, 999)) / 10])
        if kind == "float":
            return v.choice([0.0, -0.0, 1.5, 0.1, 1e300, -1e-300, 2.5, 1e308, v.uniform(-100, 100)])
        if kind == "bool":
            return v.choice([True, False])
        if kind == "date":
            return v.choice([datetime.date(2024, 2, 29), datetime.date(2024, 1, 1), datetime.date(1, 1, 1),
                             datetime.date(9999, 12, 31), datetime.date(1970, 1, 1), datetime.date(2023, 12, 31)])
        if kind == "dt":
            zone = ZoneInfo(v.choice(ZONES))
            return v.choice([datetime.datetime(2024, 1, 1, tzinfo=UTC), datetime.datetime(2024, 1, 1, 0, 30, tzinfo=zone),
                             datetime.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                             datetime.datetime(2024, 2, 29, 12, tzinfo=zone), datetime.datetime(1999, 12, 31, 15, tzinfo=UTC),
                             datetime.datetime(1, 1, 2, tzinfo=UTC), datetime.datetime(9999, 12, 30, tzinfo=UTC)])
        if kind == "time":
            return v.choice([datetime.time(0), datetime.time(9, 30), datetime.time(23, 59, 59, 999999), datetime.time(12)])
        if kind == "dur":
            return v.choice([datetime.timedelta(0), datetime.timedelta(seconds=1), datetime.timedelta(days=3),
                             datetime.timedelta(seconds=-60), datetime.timedelta(days=999999999)])
        if kind == "uuid":
            return v.choice([uuid.UUID(int=0), uuid.UUID(int=v.getrandbits(128), version=4), uuid.UUID(int=2**128 - 1)])
        if kind == "json":
            return v.choice(JSONS)
        if kind == "bytes":
            return v.choice([b"", b"\x00", b"ab", bytes(range(6))])
        if kind == "ip":
            return v.choice(["127.0.0.1", "::1", "10.0.0.2", "::ffff:10.0.0.2", "2001:DB8::1"])
        if kind == "rel":
            pks = [r["id"] for r in self.rows[model.__name__]]
            pk = v.choice(pks + [99, 0])
            return Inst(model.__name__, pk) if v.random() < 0.5 else pk
        raise AssertionError(kind)

    def odd(self, v: random.Random, kind: str, model: type) -> Any:
        """A value of another type than the field's: Django converts it or raises."""
        pools = {
            "int": ["12", "-3", 1.5, 2.5, decimal.Decimal("2"), True, "abc", "1e3", " 7 "],
            "str": [5, 1.5, True, decimal.Decimal("1.5"), uuid.UUID(int=1)],
            "dec": [1.5, "1.5", 2, "abc", decimal.Decimal("NaN"), decimal.Decimal("Infinity"), float("nan"), "1e2"],
            "float": [float("inf"), float("-inf"), float("nan"), "1.5", decimal.Decimal("1.5"), 2, "abc", 10**400],
            "bool": [1, 0, "true", "False", "abc", "1", 2],
            "date": ["2024-02-29", "2024-02-30", "abc", datetime.datetime(2024, 2, 29, 23, tzinfo=UTC), 20240229],
            "dt": ["2024-01-01T00:00:00+09:00", "2024-01-01 10:00:00Z", "abc", datetime.datetime(2024, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo"))],
            "time": ["09:30", "25:00", "abc", 1],
            "dur": [60, "1 day, 0:00:00", "abc", 1.5],
            "uuid": ["12345678123456781234567812345678", "12345678-1234-5678-1234-567812345678", "zzz", 5, "ABCDEF00-0000-0000-0000-000000000000"],
            "json": [{"a": [1, {"b": None}]}, 1.5, "", [None], {"a": decimal.Decimal("1.5")}],
            "bytes": ["ab", b"\xff" * 3, bytearray(b"ab")],
            "ip": ["999.1.1.1", "abc", "", 1],
            "rel": ["1", "abc", 1.5, None],
        }
        return v.choice(pools[kind.split(":")[0]])

    def long_values(self, v: random.Random, kind: str, model: type, field: Any) -> list:
        """64 to 3,000 values (now and then 33,000 integers: PostgreSQL's array binding), distinct mostly,
        existing ones among them, with repeats and a None sometimes (vinyl plans such a list from it cut short)."""
        base = kind.split(":")[0]
        n = v.choice([64, 64, 65, 100, 257, 1000, 3000]) if v.random() < 0.9 or base not in ("int", "rel") else 33_000
        col = self.column(model, field) if base != "rel" else [r["id"] for r in self.rows[model.__name__]]
        if base == "int" or base == "rel":
            lo, hi = (-(10**6), 10**6) if base == "rel" or kind.endswith("pk") else INT_RANGES[kind.split(":")[1]]
            lo, hi = max(lo, -(10**9)), min(hi, 10**9)
            start = v.randint(lo, max(lo, hi - n))
            fresh = list(range(start, start + n))
        elif base == "str":
            fresh = [f"{v.choice(STRINGS)}{i}" for i in range(n)]
        elif base == "uuid":
            fresh = [uuid.UUID(int=v.getrandbits(128)) for _ in range(n)]
        elif base == "date":
            day = datetime.date(2023, 1, 1) - datetime.timedelta(days=v.randint(0, 3000))
            fresh = [day + datetime.timedelta(days=i) for i in range(n)]
        elif base == "dec":
            fresh = [decimal.Decimal(i - n // 2) / 8 for i in range(n)]
        else:
            fresh = [(i - n // 2) / 4 for i in range(n)]
        items = [v.choice(col) if col and v.random() < 0.1 else x for x in fresh]
        if v.random() < 0.3:  # repeats (a list of 64 with repeats has fewer than 64 values Django compiles)
            for _ in range(v.choice([1, 5, n // 3])):
                items[v.randrange(n)] = v.choice(items)
        if v.random() < 0.2:
            for _ in range(v.choice([1, 1, 3])):
                items[v.randrange(n)] = None
        if base == "rel" and v.random() < 0.3:
            items = [Inst(model.__name__, x) if isinstance(x, int) and x in col else x for x in items]
        v.shuffle(items)
        return items

    def lookup_value(self, v: random.Random, s_container: str, kind: str, lookup: str, model: type, field: Any,
                     length: int | None = None) -> Any:
        """The value for ``path__lookup`` (container type decided by the shape)."""
        base = kind.split(":")[0]
        if lookup == "isnull":
            return v.choice([True, False]) if v.random() < 0.98 else v.choice([1, "yes"])
        if lookup in ("in", "month__in", "date__in", "key_in"):
            n = length if length is not None else v.choice([0, 1, 2, 3, 3, 5, 8]) if v.random() < 0.97 else 0
            if lookup == "month__in":
                items = [v.randint(1, 12) for _ in range(n)]
            elif lookup == "date__in":
                items = [v.choice([datetime.date(2024, 1, 1), datetime.date(2024, 2, 29), datetime.date(2023, 12, 31), datetime.date(1999, 12, 31)]) for _ in range(n)]
            elif lookup == "key_in":
                items = [v.choice([1, "x", 2, True, None]) for _ in range(n)]
            else:
                items = [self.scalar(v, kind, model, field) for _ in range(n)]
            if items and v.random() < 0.25:
                items[-1] = v.choice(items[:-1] or items)  # a duplicate (same length when stable)
            if items and v.random() < 0.08:
                items[v.randrange(len(items))] = None
            v.shuffle(items)
            if s_container == "tuple":
                return tuple(items)
            if s_container == "gen":
                return Gen(tuple(items))
            if s_container == "set" and all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in items):
                return sorted(set(items), key=repr)
            return items
        if lookup in ("range", "date__range"):
            k = "date" if lookup == "date__range" else kind
            a, b = self.scalar(v, k, model, field), self.scalar(v, k, model, field)
            if v.random() < 0.8:
                try:
                    a, b = sorted((a, b))
                except (TypeError, ArithmeticError):
                    pass  # values that do not order (NaN, mixed types) stay as drawn
            return (a, b) if s_container != "list" else [a, b]
        if lookup in ("contains", "icontains", "startswith", "istartswith", "endswith", "iendswith", "key_icontains"):
            if base == "uuid":
                return v.choice(["0000", "1234", "abc", "ABC", "-", str(uuid.UUID(int=v.getrandbits(128), version=4))[:6]])
            if base == "ip":
                return v.choice(["127", "10.", "::", "2001"])
            word = self.scalar(v, "str", model, field) if base == "str" else v.choice(STRINGS)
            if not isinstance(word, str):
                return word
            if word and v.random() < 0.6:
                i = v.randint(0, len(word) - 1)
                word = word[i:i + v.randint(1, 3)]
            if v.random() < 0.3:
                word = v.choice(["_", "%", "\\", "a_b", "a%", "%b", "_b", "'", "\\%", "é", "É"])
            return word.upper() if v.random() < 0.2 else word
        if lookup in ("regex", "iregex"):
            return v.choice(REGEXES) if v.random() < 0.97 else v.choice(["(", "[", "*a"])
        if lookup in ("year", "iso_year", "year__gt"):
            return v.choice([2024, 2023, 1999, 2000, 1970, 0, 10000, "2024", 1.5])
        if lookup in ("month", "quarter", "week", "week_day", "day", "hour", "minute", "hour__gte"):
            top = {"month": 12, "quarter": 4, "week": 53, "week_day": 7, "day": 31, "hour": 23, "minute": 59, "hour__gte": 23}[lookup]
            return v.choice([v.randint(0, top), v.randint(1, top), top + 1, -1, "3"]) if v.random() < 0.97 else v.choice([0, 99, "x"])
        if lookup in ("date", "date__lt"):
            r = v.random()
            col = self.column(model, field) if base == "dt" else []
            if col and r < 0.7:
                # A day some row falls on in UTC or in a zone east or west of it.
                return (v.choice(col) + datetime.timedelta(hours=v.choice([-10, 0, 0, 10]))).date()
            return self.scalar(v, "date", model, field) if r < 0.9 else v.choice(["2024-01-01", "abc", datetime.datetime(2024, 1, 1, tzinfo=UTC)])
        if lookup == "time__lt":
            return self.scalar(v, "time", model, field)
        if lookup in ("has_key",):
            return v.choice(JSON_KEYS)
        if lookup in ("has_keys", "has_any_keys"):
            return v.sample(JSON_KEYS, v.randint(1, 3))
        if lookup in ("contains", "contained_by") and base == "json":
            return v.choice([{"a": 1}, {"a": "x"}, [1], {}, {"k": {"n": 2}}, "str", 5])
        if lookup == "key":
            return v.choice([1, "x", 2, True, False, "2", 1.5, [1, 2], {"n": 2}])
        if lookup == "key_gt":
            return v.choice([0, 1, 1.5, "a", "w"])
        if lookup == "key_isnull":
            return v.choice([True, False])
        if lookup == "nested":
            return v.choice([2, "2", 3, None])
        if lookup == "pk_gt":
            return v.randint(0, 12)
        return self.scalar(v, kind, model, field)

    # ------------------------------------------------------------ conditions
    def leaf(self, s: random.Random, v: random.Random, model_name: str) -> tuple[str, Any]:
        if self.stable and s.random() < 0.6:
            path, lookup = s.choice(HOT_LEAVES[model_name])
            kind, model, field = kind_of(model_name, path)
        else:
            path = s.choice(FILTER_PATHS[model_name])
            kind, model, field = kind_of(model_name, path)
            lookup = s.choice(LOOKUPS[kind.split(":")[0]])
        container = s.choice(["list", "list", "tuple"] if self.stable else ["list", "list", "tuple", "gen", "set"])
        length = s.choice([1, 2, 3, 3, 4, 6]) if self.stable else None
        if lookup == "in" and kind.split(":")[0] in LONG_KINDS and s.random() < 0.06:
            # A long list: vinyl compiles the statement with the list cut to 2 and 3 values and stretches it
            # (its length is a value then: each draw its own).
            items = self.long_values(v, kind, model, field)
            self.tally["long_in"] += 1
            self.tally["long_in>32767"] += len(items) > 32767
            return f"{path}__in", tuple(items) if container == "tuple" else items
        if kind == "json" and s.random() < 0.08:
            # A JSON list of 64+ items is one value to Django; to vinyl's plans a list that long is a long list.
            self.tally["long_json"] += 1
            n = v.choice([64, 70, 200])
            op = s.choice(["", "__contains", "__has_keys", "__has_any_keys"])
            if op in ("__has_keys", "__has_any_keys"):
                return f"{path}{op}", [v.choice(JSON_KEYS + [f"k{i}" for i in range(n)]) for _ in range(n)]
            return f"{path}{op}", [v.choice([i, str(i), None, i]) for i in range(n)]
        value = self.lookup_value(v, container, kind, lookup, model, field, length)
        if kind == "json" and lookup.startswith("key") or lookup == "nested":
            key = s.choice(JSON_KEYS)
            name = {"key": f"{path}__{key}", "key_gt": f"{path}__{key}__gt", "key_isnull": f"{path}__{key}__isnull",
                    "key_in": f"{path}__{key}__in", "key_icontains": f"{path}__{key}__icontains",
                    "nested": f"{path}__k__n"}[lookup]
            return name, value
        if lookup == "pk_gt":
            return f"{path}__pk__gt", value
        if lookup == "exact" and s.random() < 0.5:
            return path, value
        if lookup == "in" and kind == "rel" and s.random() < 0.3 and not self.stable:
            target = model.__name__
            sub = QS(target, (("filter", (), ((s.choice(["id__lte", "id__gte"]), v.randint(0, 12)),)), ("values", ("pk",), ())))
            return f"{path}__in", sub
        return f"{path}__{lookup}", value

    def f_leaf(self, s: random.Random, v: random.Random, model_name: str) -> tuple[str, Any]:
        if s.random() < 0.3:
            key, make = s.choice(EXPRESSION_LEAVES[model_name])
            self.tally["expression_leaf"] += 1
            return key, make(v)
        a, b = s.choice(F_PAIRS[model_name])
        if s.random() < 0.5:
            a, b = b, a
        op = s.choice(["exact", "lt", "gte", "gt"])
        rhs: Any = Call("F", (b,))
        kind, _, _ = kind_of(model_name, b)
        if kind.startswith("int") and s.random() < 0.4:
            rhs = BinOp(s.choice(["+", "-"]), rhs, v.choice([1, 0, 100, -5, 2**40]))
        return f"{a}__{op}" if op != "exact" else a, rhs

    def q(self, s: random.Random, v: random.Random, model_name: str, depth: int = 0) -> Any:
        r = s.random()
        if depth >= 2 or r < 0.45:
            n = 1 if s.random() < 0.7 else 2
            kw = tuple(self.f_leaf(s, v, model_name) if s.random() < 0.12 else self.leaf(s, v, model_name) for _ in range(n))
            return Call("Q", (), kw)
        if r < 0.6:
            return BinOp("~", self.q(s, v, model_name, depth + 1))
        if r < 0.68 and model_name == "Item":
            sub = QS("Tag", (("filter", (), (("items", Call("OuterRef", ("pk",))), ("weight__gt", v.randint(-3, 3)))),))
            node: Any = Call("Exists", (sub,))
            return BinOp("~", node) if s.random() < 0.3 else node
        op = s.choice(["&", "|", "|", "^"])
        return BinOp(op, self.q(s, v, model_name, depth + 1), self.q(s, v, model_name, depth + 1))

    def condition(self, s: random.Random, v: random.Random, model_name: str) -> tuple[tuple, tuple]:
        """(args, kwargs) of one filter/exclude call."""
        if s.random() < 0.5 and not self.stable:
            return (self.q(s, v, model_name),), ()
        n = 1 if s.random() < 0.75 else 2
        kw = {}
        for _ in range(n):
            k, val = self.f_leaf(s, v, model_name) if s.random() < 0.1 and not self.stable else self.leaf(s, v, model_name)
            kw[k] = val
        return (), tuple(kw.items())

    # ------------------------------------------------------------ annotations
    def annotation(self, s: random.Random, v: random.Random, model_name: str) -> tuple[str, Any, bool]:
        """(name, expression, is_aggregate)."""
        options = {
            "Item": [
                ("n_tags", lambda: Call("Count", ("tags",)), True),
                ("n_dtags", lambda: Call("Count", ("tags",), (("distinct", True),)), True),
                ("n_ftags", lambda: Call("Count", ("tags",), (("filter", Call("Q", (), (("tags__weight__gt", v.randint(-3, 3)),))),)), True),
                ("tw", lambda: Call("Sum", ("tags__weight",)), True),
                ("total", lambda: BinOp("+", Call("F", ("integer",)), Call("F", ("small",))), False),
                ("plus", lambda: BinOp("+", Call("F", ("big",)), v.choice([1, -1, 2**40, 0])), False),
                ("low", lambda: Call("Lower", ("name",)), False),
                ("ln", lambda: Call("Length", ("name",)), False),
                ("yr", lambda: Call("ExtractYear", ("at",)), False),
                ("hr", lambda: Call("ExtractHour", ("at",)), False),
                ("td", lambda: Call("TruncDate", ("at",)), False),
                ("co", lambda: Call("Coalesce", ("integer", "small")), False),
                ("cv", lambda: Call("Coalesce", ("integer", Call("Value", (v.randint(-9, 9),)))), False),
                ("case", lambda: Call("Case", (Call("When", (), (("flag", True), ("then", Call("Value", (v.choice(["y", "n", "%"]),))))),),
                                      (("default", Call("Value", ("other",))),)), False),
                ("oname", lambda: Call("F", ("owner__name",)), False),
                ("const", lambda: Call("Value", (v.choice([1, "x", 2.5, True]),)), False),
                ("ex", lambda: Call("Exists", (QS("Tag", (("filter", (), (("items", Call("OuterRef", ("pk",))), ("weight__gte", v.randint(-3, 3)))),)),)), False),
                ("firsttag", lambda: Call("Subquery", (QS("Tag", (("filter", (), (("items", Call("OuterRef", ("pk",))),)), ("order_by", ("name",), ()),
                                                                   ("values", ("name",), ()), ("slice", (None, 1), ()))),)), False),
                ("sd", lambda: Call("StdDev", ("tags__weight",)), True),
            ] + [(name, lambda make=make: make(v), False) for name, make in ITEM_FUNCTIONS],
            "Owner": [
                ("n_items", lambda: Call("Count", ("items",)), True),
                ("s_int", lambda: Call("Sum", ("items__integer",)), True),
                ("a_flt", lambda: Call("Avg", ("items__flt",)), True),
                ("mx_at", lambda: Call("Max", ("items__at",)), True),
                ("mn_name", lambda: Call("Min", ("items__name",)), True),
                ("up", lambda: Call("Upper", ("name",)), False),
                ("age2", lambda: BinOp("*", Call("F", ("age",)), v.choice([2, -1, 0])), False),
                ("gr", lambda: Call("Greatest", ("age", Call("Value", (v.choice([0, 30, -1]),)))), False),
                ("mo", lambda: Call("ExtractMonth", ("joined",)), False),
                ("l2", lambda: Call("Left", ("name", v.choice([0, 1, 2]))), False),
                ("pname", lambda: Call("Coalesce", (Call("F", ("premium__level",)), Call("Value", (-1,)))), False),
            ],
            "Premium": [
                ("n_items", lambda: Call("Count", ("items",)), True),
                ("lv", lambda: BinOp("+", Call("F", ("level",)), v.randint(0, 3)), False),
            ],
            "Profile": [
                ("oname", lambda: Call("F", ("owner__name",)), False),
                ("sc", lambda: Call("Coalesce", ("score", Call("Value", (v.choice([0.0, 1.5]),)))), False),
                ("rnd", lambda: Call("Round", ("score", v.choice([0, 1]))), False),
                ("rev", lambda: Call("Reverse", ("bio",)), False),
            ],
            "Tag": [
                ("n", lambda: Call("Count", ("items",)), True),
                ("sb", lambda: Call("Sum", ("items__big",)), True),
                ("av", lambda: Call("Avg", ("items__dec",)), True),
                ("w2", lambda: BinOp("-", Call("F", ("weight",)), v.randint(-2, 2)), False),
                ("wmod", lambda: Call("Mod", ("weight", Call("Value", (v.choice([3, -2, 0]),)))), False),
                ("sub", lambda: Call("Substr", ("name", v.choice([1, 2]), 2)), False),
                ("mxday", lambda: Call("Max", ("items__day",)), True),
            ],
        }[model_name]
        if s.random() < 0.3:
            # A window function: a value per row computed over the others (wrapped in a subquery when filtered on).
            options = {
                "Item": [
                    ("rk", lambda: Call("Window", (Call("Rank"),), (("partition_by", Call("F", ("owner",))), ("order_by", "-integer"))), False),
                    ("rsum", lambda: Call("Window", (Call("Sum", ("integer",)),), (("partition_by", Call("F", ("owner",))),)), False),
                    ("prev", lambda: Call("Window", (Call("Lag", ("small",)),), (("order_by", "id"),)), False),
                ],
                "Owner": [("drk", lambda: Call("Window", (Call("DenseRank"),), (("order_by", "age"),)), False)],
                "Premium": [("drk", lambda: Call("Window", (Call("DenseRank"),), (("order_by", "-level"),)), False)],
                "Profile": [("mx", lambda: Call("Window", (Call("Max", ("score",)),)), False)],
                "Tag": [("wcount", lambda: Call("Window", (Call("Count", ("id",)),), (("partition_by", Call("F", ("weight",))),)), False)],
            }[model_name]
            self.tally["window"] += 1
        name, make, agg = s.choice(options)
        return name, make(), agg

    def aggregate_terminal(self, s: random.Random, v: random.Random, model_name: str) -> tuple:
        paths = [p for p in FILTER_PATHS[model_name] if kind_of(model_name, p)[0] not in ("json", "bytes", "rel")]
        out = []
        for i in range(s.choice([1, 1, 2, 3])):
            p = s.choice(paths)
            kind = kind_of(model_name, p)[0]
            funcs = ["Count", "Max", "Min"]
            if kind.startswith("int") or kind in ("dec", "float"):
                funcs += ["Sum", "Avg", "Sum"]
            if kind == "bool" and s.random() < 0.3:
                funcs += ["Sum"]
            f = s.choice(funcs)
            kw: tuple = ()
            if s.random() < 0.15 and model_name in AGGREGATE_EXPRESSIONS:
                # Over an expression (arithmetic, a function, a condition).
                f, arg = s.choice(AGGREGATE_EXPRESSIONS[model_name])
                out.append((f"a{i}", Call(f, (arg(v),), (("default", 0),) if s.random() < 0.3 and f != "Count" else ())))
                self.tally["aggregate_expression"] += 1
                continue
            if f == "Count" and s.random() < 0.3:
                kw = (("distinct", True),)
            if s.random() < 0.15:
                kw += (("filter", self.q(s, v, model_name, 2)),)
            if f in ("Sum", "Max", "Min") and s.random() < 0.1:
                kw += (("default", v.choice([0, 1])),)
            out.append((f"a{i}", Call(f, (p,), kw)))
        return ("aggregate", (), tuple(out))

    # ------------------------------------------------------------------ reads
    def read(self, shape: int, draw: int, seed: int) -> Case:
        s = random.Random(f"{seed}-shape-{shape}")
        v = random.Random(f"{seed}-shape-{shape}-draw-{draw}")
        # Shape and value choices added later draw from rngs of their own, so that the older choices (and the
        # cases other seeds were reported with) stay as they were.
        x = random.Random(f"{seed}-shape-{shape}-x")
        xv = random.Random(f"{seed}-shape-{shape}-draw-{draw}-x")
        in_order: list[str] = []
        model = s.choice(["Item"] * 6 + ["Owner"] * 2 + ["Premium", "Profile", "Tag"])
        self.stable = s.random() < 0.5
        ops: list = []
        ordered = model in TOTAL_META
        explicit_order = False
        grouped = False
        ties = False  # rows that tie on the order: first()/last()/[i] have no single answer
        partial = False  # an order_by() without the key last: rows may tie on it (first()/last() too)
        mode = "obj"  # obj | values | flat | named | tuples | dates
        related: list[str] = []
        attrs: list[str] = []
        annotated: list[str] = []
        filtered_relation = False
        n_ops = s.choice([1, 1, 1, 2, 2, 3] if self.stable else [0, 1, 1, 2, 2, 2, 3, 3, 4, 5])
        for _ in range(n_ops):
            kind = s.choice(["filter"] * 6 + ["exclude"] * 2 + ["order_by"] * 2 + ["annotate", "select_related",
                            "prefetch_related", "distinct", "only", "defer", "reverse", "alias", "filtered_relation",
                            "complex_filter"])
            if x.random() < 0.1:
                kind = "prefetch_related"  # (drawn more often than the list above says: its kinds are many)
            if self.stable and kind in ("annotate", "alias") and model == "Item" and s.random() < 0.4:
                # A function of the row whose arguments are values (a length, a digit count, a text to find):
                # each draw of the shape its own, replayed on a plan the first draw made.
                name, make = s.choice(ITEM_FUNCTIONS)
                if name not in annotated:
                    ops.append(("annotate", (), ((name, make(v)),)))
                    annotated.append(name)
                    attrs.append(name)
                    self.tally["stable_function"] += 1
                continue
            if self.stable and kind in ("annotate", "alias") or kind == "complex_filter" and s.random() < 0.5:
                kind = "filter"
            if kind == "complex_filter":
                # A Q object or a dict of lookups (the stable shapes: a dict, plannable).
                args, kw = self.condition(s, v, model)
                ops.append(("complex_filter", (args[0] if args else dict(kw),), ()))
                self.tally["complex_filter"] += 1
            elif kind in ("filter", "exclude"):
                args, kw = self.condition(s, v, model)
                if annotated and s.random() < 0.3:
                    name = s.choice(annotated)
                    kw = kw + ((f"{name}__isnull", v.choice([True, False])),) if s.random() < 0.5 else kw + ((f"{name}__gte", v.randint(0, 2)),)
                ops.append((kind, args, kw))
            elif kind == "order_by":
                keys: list[Any] = []
                for _ in range(s.choice([0, 1, 1, 2])):
                    p = s.choice(ORDER_PATHS[model] + annotated)
                    r_key = s.random()
                    if r_key < 0.15 and not self.stable:
                        keys.append(_desc(p, s.random() < 0.5))
                    elif r_key < 0.3:
                        # An expression, or F() with where its NULLs go (either way, either direction).
                        expr = s.choice(ORDER_EXPRESSIONS[model] + [Call("F", (p,))])
                        nulls = s.choice([(), (("nulls_first", True),), (("nulls_last", True),)])
                        keys.append(Method(expr, s.choice(["asc", "desc"]), nulls))
                        self.tally["order_by_expression"] += 1
                    else:
                        keys.append(s.choice(["", "-"]) + p)
                total = s.random() < 0.8 or not keys
                if total:
                    keys.append(s.choice(["pk", "-pk", "id"]))
                ops.append(("order_by", tuple(keys), ()))
                # Without the key last, rows may tie: compared as a bag then.
                ordered = total
                explicit_order = total
                partial = not total
            elif kind == "annotate":
                name, expr, agg = self.annotation(s, v, model)
                if name in annotated:
                    continue
                ops.append(("annotate", (), ((name, expr),)))
                annotated.append(name)
                attrs.append(name)
                if agg:
                    grouped = True
                    if not explicit_order:
                        ordered = False
            elif kind == "alias":
                name, expr, agg = self.annotation(s, v, model)
                if name in annotated or agg:
                    continue
                ops.append(("alias", (), ((name + "_al", expr),)))
                ops.append(("filter", (), ((f"{name}_al__isnull", False),)))
            elif kind == "filtered_relation" and model in FILTERED_RELATION and not filtered_relation:
                # A relation joined under a condition of its own, then filtered on through its alias.
                rel, field = FILTERED_RELATION[model]
                cond = Call("Q", (), ((f"{rel}__{field}__gte", v.randint(-3, 3)),))
                ops.append((s.choice(["annotate", "alias"]), (), (("fr", Call("FilteredRelation", (rel,), (("condition", cond),))),)))
                lookup = s.choice([(f"fr__{field}__lt", v.randint(-2, 5)), ("fr__isnull", v.choice([True, False])),
                                   (f"fr__{field}__isnull", v.choice([True, False]))])
                ops.append((s.choice(["filter", "filter", "exclude"]), (), (lookup,)))
                filtered_relation = True
                self.tally["filtered_relation"] += 1
            elif kind == "select_related" and SELECT_RELATED[model]:
                paths = tuple(sorted(set(s.sample(SELECT_RELATED[model], s.randint(1, len(SELECT_RELATED[model]))))))
                if x.random() < 0.1:
                    # Every non-null foreign key (Profile.owner; Item.owner is nullable: none).
                    ops.append(("select_related", (), ()))
                    related.extend(["owner"] if model == "Profile" else [])
                    self.tally["select_related_all"] += 1
                    continue
                ops.append(("select_related", paths, ()))
                related.extend(paths)
            elif kind == "prefetch_related":
                path = s.choice(PREFETCH[model])
                last = path.rpartition("__")[2]
                if x.random() < 0.04:
                    # What Django refuses: a field that is no relation, a name that is none, a to_attr that is a
                    # field's, the same lookup with two querysets.
                    target = "Item" if last == "items" else "Tag"
                    other = QS(target, (("filter", (), (("pk__gt", 0),)),))
                    ops.append(("prefetch_related", x.choice([
                        (NOT_A_RELATION[model],), ("nope",), (f"{path}__nope",),
                        (Call("Prefetch", (path,), (("to_attr", NOT_A_RELATION[model]),)),),
                        (path, Call("Prefetch", (path,), (("queryset", other),)))]
                        if last in ("items", "tags") else [(NOT_A_RELATION[model],), ("nope",)]), ()))
                    self.tally["prefetch_refused"] += 1
                    continue
                if (s.random() < (0.45 if self.stable else 0.35) or x.random() < 0.25) and last in ("items", "tags"):
                    target = "Item" if last == "items" else "Tag"
                    steps: list = [("filter",) + self.condition(s, v, target)] if s.random() < 0.5 else []
                    if s.random() < 0.7:
                        # Through the relation the path ends with (or others): the prefetcher's own join.
                        through = "tags" if last == "tags" else "items:m2m" if model == "Tag" and path == "items" else "items:fk"
                        p = s.choice(PREFETCH_THROUGH[through] + PREFETCH_OTHER[target])
                        k, m, f = kind_of(target, p)
                        lookup = s.choice([lk for lk in ("exact", "in", "isnull", "gte", "lt") if lk in LOOKUPS[k.split(":")[0]]])
                        val = self.lookup_value(v, "list", k, lookup, m, f, s.choice([1, 2, 3]) if self.stable else None)
                        steps.append((s.choice(["filter", "filter", "exclude"]), (), ((f"{p}__{lookup}", val),)))
                        self.tally["prefetch_qs_through"] += p in PREFETCH_THROUGH[through]
                    if s.random() < 0.5:
                        steps.append(("order_by", (s.choice(["", "-"]) + s.choice(ORDER_PATHS[target]), "pk"), ()))
                    if target == "Item" and s.random() < 0.2:
                        steps.append(("select_related", ("owner",), ()))
                    if not steps:
                        steps.append(("filter",) + self.condition(s, v, target))
                    # Each parent's list in the queryset's order: an order_by() ending with the key, or Tag's Meta.
                    ordered_qs = target in TOTAL_META or any(step[0] == "order_by" for step in steps)
                    if x.random() < 0.3 and ordered_qs:
                        # A slice: the first rows of each parent's list (Django numbers them per parent).
                        steps.append(("slice", x.choice([(None, xv.choice([1, 2, 3])), (1, xv.choice([2, 3, None])),
                                                         (0, xv.choice([0, 1, 5]))]), ()))
                        self.tally["prefetch_sliced"] += 1
                    if x.random() < 0.2:
                        steps.append(x.choice(PREFETCH_ONLY[target]) + ((),))
                        self.tally["prefetch_only"] += 1
                    if x.random() < 0.02:
                        steps.append(("values", ("pk",), ()))  # refused by Prefetch
                        self.tally["prefetch_values"] += 1
                    qs = QS(target, tuple(steps))
                    self.tally["prefetch_qs"] += 1
                    self.tally["prefetch_qs_nested"] += "__" in path
                    in_order.extend(ordered_levels(path.rpartition("__")[0]))
                    # What the queryset's select_related() joined onto each prefetched row is compared too.
                    joined = ["owner"] if ("select_related", ("owner",), ()) in steps else []
                    if s.random() < 0.5 and not self.stable:
                        lookups = (Call("Prefetch", (path,), (("queryset", qs), ("to_attr", "pf"))),)
                        attrs.append("pf")
                        if "__" not in path:
                            related.extend(f"pf__{j}" for j in joined)
                            in_order.extend(["pf"] if ordered_qs else [])
                            if x.random() < 0.6:
                                # Through the to_attr list: its instances get their own prefetch.
                                deeper = "pf__" + x.choice(["tags", "owner"] if last == "items" else ["items"])
                                lookups += (deeper,)
                                related.append(deeper)
                                in_order.extend(["pf"] if ordered_qs else [])
                                in_order.extend(["pf__tags"] if deeper == "pf__tags" else [])
                                self.tally["prefetch_through_to_attr"] += 1
                        ops.append(("prefetch_related", lookups, ()))
                    else:
                        in_order.extend([path] if ordered_qs else [])
                        lookups: tuple = (Call("Prefetch", (path,), (("queryset", qs),)),)
                        r2 = s.random()
                        if r2 < 0.2 and "__" in path:
                            # The prefix first as a string lookup: the Prefetch's queryset at the level below it.
                            lookups = (path.rpartition("__")[0],) + lookups
                            self.tally["prefetch_qs_with_prefix"] += 1
                        elif r2 < 0.4:
                            # Deeper lookups through the Prefetch (its queryset's rows get their own prefetch).
                            deeper = f"{path}__{s.choice(['tags', 'owner'] if last == 'items' else ['items'])}"
                            lookups += (deeper,)
                            related.append(deeper)
                            in_order.extend([deeper] if deeper.endswith("__tags") else [])
                            self.tally["prefetch_qs_then_deeper"] += 1
                        ops.append(("prefetch_related", lookups, ()))
                        related.append(path)
                        related.extend(f"{path}__{j}" for j in joined)
                else:
                    ops.append(("prefetch_related", (path,), ()))
                    related.append(path)
                    in_order.extend(ordered_levels(path))
            elif kind == "distinct":
                ops.append(("distinct", (), ()))
            elif kind in ("only", "defer"):
                fields = tuple(s.sample(ONLY_FIELDS[model], s.randint(1, len(ONLY_FIELDS[model]))))
                if model in ONLY_ACROSS and x.random() < 0.4:
                    # Across a relation select_related joins: some of its fields loaded, the others deferred.
                    rel = x.choice(sorted(ONLY_ACROSS[model]))
                    names = ONLY_ACROSS[model][rel]
                    fields += tuple(f"{rel}__{f}" for f in x.sample(names, x.randint(1, len(names))))
                    if x.random() < 0.9:
                        ops.append(("select_related", (rel,), ()))
                        related.append(rel)
                    self.tally[f"{kind}_across"] += 1
                ops.append((kind, fields, ()))
            elif kind == "reverse" and ordered:
                ops.append(("reverse", (), ()))
        if model in DISTINCT_ON and s.random() < 0.04:
            # distinct(*fields): the first row (by pk) of each value of the fields, in their order.
            field_ = s.choice(DISTINCT_ON[model])
            ops.append(("order_by", (field_, s.choice(["pk", "-pk"])), ()))
            ops.append(("distinct", (field_,), ()))
            ordered = explicit_order = True
            partial = ties = False
            self.tally["distinct_on"] += 1
        if not self.stable and s.random() < 0.04:
            # QuerySets combined with | & ^ (the right one's filter joined to the left one's).
            other = QS(model, (("filter",) + self.condition(s, v, model),))
            ops.append((s.choice(["__or__", "__or__", "__and__", "__xor__"]), (other,), ()))
            if s.random() < 0.3:
                ops.append(("none", (), ()))
            self.tally["combined"] += 1
        if not self.stable and s.random() < 0.03:
            ops.append(("none", (), ()))
        if s.random() < 0.03 and self.backend != "sqlite":
            # Outside a transaction Django refuses it when evaluated; in one (a read step of a transaction case) it
            # locks the rows. (Not on SQLite, where Django ignores it and vinyl raises NotSupportedError by design:
            # docs/queryset-methods.md, tests/backends/test_sqlite.py.)
            ops.append(("select_for_update", (), s.choice([(), (("nowait", True),), (("skip_locked", True),), (("of", ("self",)),),
                                                            (("no_key", True),)])))
            self.tally["select_for_update"] += 1
        # values / dates
        r = s.random()
        if r < 0.3:
            fields = tuple(s.sample(VALUE_PATHS[model] + annotated, s.randint(0, 3)))
            style = s.choice(["values", "values", "list", "flat", "named"])
            exprs: tuple = ()
            if s.random() < 0.25:
                # Expressions selected under a name (values) or by position (values_list).
                makers = s.sample(VALUE_EXPRESSIONS[model], s.randint(1, 2))
                exprs = tuple((f"e{i}", make(v)) for i, make in enumerate(makers))
                self.tally["values_expression"] += 1
                if any(isinstance(e, Call) and e.name == "Count" for _, e in exprs) and not explicit_order:
                    ordered = False  # grouped: Meta.ordering does not apply
            if style == "flat":
                if exprs and s.random() < 0.5:
                    ops.append(("values_list", (exprs[0][1],), (("flat", True),)))
                else:
                    fields = fields[:1] or (s.choice(VALUE_PATHS[model]),)
                    ops.append(("values_list", fields, (("flat", True),)))
            elif style == "named":
                ops.append(("values_list", fields + tuple(e for _, e in exprs), (("named", True),)))
            elif style == "list":
                ops.append(("values_list", fields + tuple(e for _, e in exprs), ()))
            else:
                ops.append(("values", fields, exprs))
                if exprs and s.random() < 0.3:
                    # Ordered by an expression values() named.
                    ops.append(("order_by", (s.choice(["", "-"]) + exprs[0][0], "pk"), ()))
                    ordered = explicit_order = True
                    partial = False
            mode = "values"
            if any(f.split("__")[0] in ("tags", "items") for f in fields):
                # A multi-valued relation multiplies the rows: they tie on any order by the key.
                ordered = False
                ties = True
            if s.random() < 0.25 and not self.stable:  # GROUP BY the values
                name, expr, agg = self.annotation(s, v, model)
                ops.append(("annotate", (), ((name + "_g", expr),)))
                if agg and not explicit_order:
                    ordered = False
            if s.random() < 0.2:
                ops.append(("distinct", (), ()))
            if x.random() < 0.04:
                # prefetch_related after values(): Django refuses it when evaluated.
                ops.append(("prefetch_related", (x.choice(PREFETCH[model]),), ()))
                self.tally["prefetch_after_values"] += 1
            if style in ("list", "flat") and fields and not self.stable and s.random() < 0.2:
                # A set operation with a QuerySet of the same columns (each ORM its own).
                other = QS(model, (("filter",) + self.condition(s, v, model), ("values_list", fields, (("flat", True),) if style == "flat" else ())))
                method = s.choice(["union", "union", "intersection", "difference"])
                ops.append((method, (other,), (("all", True),) if method == "union" and s.random() < 0.5 else ()))
                ordered = False
        elif r < 0.36 and model in DATE_FIELDS:
            fname, fkind = s.choice(DATE_FIELDS[model])
            order = s.choice(["ASC", "DESC"])
            if fkind == "date":
                ops.append(("dates", (fname, s.choice(["year", "month", "week", "day"]), order), ()))
            else:
                kind_ = s.choice(["year", "month", "week", "day", "hour", "minute", "second"])
                tzinfo = (("tzinfo", ZoneInfo(v.choice(ZONES))),) if s.random() < 0.3 else ()
                ops.append(("datetimes", (fname, kind_, order), tzinfo))
            mode = "dates"
            ordered = True
        # terminal
        t = s.random()
        if ordered and s.random() < 0.25:
            a = v.choice([None, 0, 1, 2, 5])
            b = v.choice([None, 3, 4, 10, 40])
            if a is not None and b is not None and b < a:
                a, b = b, a
            ops.append(("slice", (a, b), ()))
        if mode == "obj":
            choices = ["list"] * 5 + ["iter"] * 2 + ["count", "exists", "first", "last", "get", "aggregate", "in_bulk",
                                                    "index", "contains", "latest"]
        else:
            choices = ["list"] * 5 + ["iter", "count", "exists", "first", "index"]
        term = s.choice(choices) if not (self.stable and s.random() < 0.4) else "list"
        if any(op[0] == "slice" for op in ops) and term in ("first", "last", "get", "in_bulk", "latest", "aggregate", "contains"):
            term = "list"
        if ties and term in ("first", "last", "index", "get") or partial and term in ("first", "last"):
            term = "count"
        if term == "get":
            if s.random() < 0.5:
                terminal = ("get", (), (("pk", v.choice([r["id"] for r in self.rows[model]] + [999])),))
            else:
                terminal = ("get",) + self.condition(s, v, model)
        elif term == "aggregate":
            terminal = self.aggregate_terminal(s, v, model)
        elif term == "in_bulk":
            ids = [v.choice([r["id"] for r in self.rows[model]] + [999]) for _ in range(v.randint(0, 4))]
            choice = s.random()
            if choice < 0.2:
                terminal = ("in_bulk", (), ())
            elif choice < 0.4:
                # A QuerySet as the id list (each ORM its own).
                sub = QS(model, (("filter", (), (("id__lte", v.randint(0, 12)),)), ("values_list", ("pk",), (("flat", True),))))
                terminal = ("in_bulk", (sub,), ())
            elif choice < 0.5 and model == "Tag":
                terminal = ("in_bulk", ([v.choice(self.data.tags)["name"] for _ in range(2)],), (("field_name", "name"),))
            else:
                terminal = ("in_bulk", (ids,), ())
        elif term == "index":
            terminal = ("index", (v.choice([0, 0, 1, 3, 50]),), ())
            if not ordered:
                terminal = ("count", (), ())
        elif term == "contains":
            terminal = ("contains", (Inst(model if model != "Premium" else "Premium", v.choice([r["id"] for r in self.rows[model]] + [999])),), ())
        elif term == "latest":
            field = s.choice(ORDER_PATHS[model][:4])
            terminal = (s.choice(["latest", "earliest"]), (field, "pk"), ())
        elif term == "iter":
            # A stream: Django's iterator() (vinyl's iterator() or its aiterator alias) at a chunk size, or vinyl's
            # ``async for`` over the QuerySet (Django's ``async for`` fetches it whole: list()).
            how = x.choice(["iterator"] * 3 + ["aiterator", "aiterator", "aiter", "aiter"])
            size = None if how == "aiter" else x.choice([2, 2, 2, 1, 3, 7, 100, None])
            terminal = ("iter", (size, how), ())
            self.tally[f"stream_{how}"] += 1
        else:
            terminal = (term, (), ())
        if terminal[0] == "in_bulk" and x.random() < 0.35:
            # By another field: the key (unique), a one-to-one (keys are the related instances), one not unique.
            pks = [xv.choice([r["id"] for r in self.rows[model]] + [999]) for _ in range(xv.randint(0, 4))]
            terminal = x.choice([("in_bulk", (pks,), (("field_name", "id"),)), ("in_bulk", (), (("field_name", "pk"),)),
                                 ("in_bulk", ([xv.choice(STRINGS) for _ in range(2)],), (("field_name", NOT_A_RELATION[model]),))]
                                + ([("in_bulk", ([xv.randint(1, 13) for _ in range(3)],), (("field_name", "owner"),))] * 2
                                   if model == "Profile" else []))
            self.tally["in_bulk_field_name"] += 1
        if mode == "values" and x.random() < 0.06:
            # in_bulk() of values()/values_list() (Django 6: by the key; Django 5.2: TypeError).
            terminal = ("in_bulk", ([xv.choice([r["id"] for r in self.rows[model]]) for _ in range(3)],), ())
            self.tally["in_bulk_values"] += 1
        refresh = None
        deferring = any(op[0] in ("only", "defer") for op in ops)
        if mode == "obj" and terminal[0] in ("list", "iter", "first", "last", "get", "index", "latest", "earliest") \
                and x.random() < (0.5 if deferring else 0.04):
            # Then refresh_from_db() on the instances: their deferred fields (as reading one does in Django), all
            # loaded fields, or named ones.
            refresh = x.choice(["deferred", "deferred", "all", [x.choice(ONLY_FIELDS[model])],
                                x.sample(ONLY_FIELDS[model], min(2, len(ONLY_FIELDS[model])))])
            self.tally["refresh_after"] += 1
        rel_after = None
        lookups_ = [a for name_, args_, _ in ops if name_ == "prefetch_related" for a in args_]
        # (A relation a Prefetch queryset loads is left out: Django's all() reads what that queryset kept.)
        many = sorted({a.split("__")[0] for a in lookups_ if isinstance(a, str)} & {"items", "tags"}
                      - {a.args[0].split("__")[0] for a in lookups_ if isinstance(a, Call)})
        if mode == "obj" and many and terminal[0] in ("list", "iter", "first", "last", "get") and x.random() < 0.6:
            # Then the related manager of a prefetched relation: Django's all()/count() read the prefetched list,
            # vinyl's query (docs/relations.md); filter() queries on both.
            rel_after = (x.choice(many), x.choice(["all", "all", "count", "exists", "filter"]))
            self.tally["related_read_after_prefetch"] += 1
        # The current time zone is the caller's (per request): a value, not structure.
        tz = v.choice(ZONES[:4]) if v.random() < 0.45 else None
        if mode != "obj":
            related, attrs = [], []
        if ties:
            # Lag over rows a multi-valued relation multiplied (each with its own tag's name, say) reads whichever
            # tied row the server met first: no single answer (seed 3022 shape 134: Django's two runs may differ
            # too). A rank gives tied rows one value.
            ops = [_lag_ranked(op) for op in ops]
        extra: dict = {"grouped": grouped, "alias": random.Random(f"{seed}-alias-{shape}-{draw}").random() < 0.15}
        if refresh is not None:
            extra["refresh"] = refresh
        if rel_after is not None:
            extra["rel_after"] = rel_after
        return Case(model=model, ops=tuple(ops), terminal=terminal, shape=shape, draw=draw, tz=tz, ordered=ordered,
                    related=tuple(related), attrs=tuple(attrs), extra=extra,
                    in_order=tuple(sorted(set(in_order))) if mode == "obj" else ())

    # ----------------------------------------------------------------- writes
    def new_fields(self, v: random.Random, s: random.Random, model_name: str) -> dict:
        if model_name == "Tag":
            return {"name": v.choice(STRINGS + [f"t{v.randint(0, 99)}"]), "weight": v.choice([0, 1, -2, 40000])}
        fields = s.sample(["name", "text", "small", "psmall", "integer", "pint", "big", "pbig", "dec", "flt", "flag",
                           "maybe", "day", "at", "uid", "data", "owner", "slug", "span", "clock"], s.randint(1, 6))
        out = {}
        for f in fields:
            kind, model, field = kind_of("Item", f)
            val = self.scalar(v, kind, model, field)
            if isinstance(val, Inst):
                val = val.pk
            out[f + "_id" if kind == "rel" else f] = val
        if "name" not in out:
            out["name"] = v.choice(STRINGS)
        return out

    def update_value(self, s: random.Random, v: random.Random, model_name: str, path: str) -> Any:
        kind, model, field = kind_of(model_name, path)
        r = s.random() if not self.stable else 1.0
        if kind.startswith("int") and r < 0.35:
            return BinOp(s.choice(["+", "-", "*"]), Call("F", (path,)), v.choice([1, 2, -1, 0, 1000, 2**31]))
        if kind.startswith("int") and r < 0.45:
            other = s.choice(["small", "integer", "psmall"])
            return Call("F", (other,))
        if kind.startswith("int") and r < 0.55:
            # A conditional or a correlated value: Case/When on the row, or a subquery over the items (Owner.age).
            if model_name == "Owner" and path == "age":
                return Call("Subquery", (QS("Item", (("filter", (), (("owner", Call("OuterRef", ("pk",))),)), ("order_by", ("-integer", "pk"), ()),
                                                     ("values", ("integer",), ()), ("slice", (None, 1), ()))),))
            if model_name == "Item":
                return Call("Case", (Call("When", (), (("flag", True), ("then", Call("Value", (v.choice([0, 7, -3]),))))),),
                            (("default", Call("F", (path,))),))
            return Call("Coalesce", (path, Call("Value", (v.choice([0, 5]),))))
        if kind.startswith("int") and r < 0.62:
            return s.choice([Call("Greatest", (path, Call("Value", (v.choice([0, 5]),)))), Call("Abs", (path,)),
                             Call("Mod", (path, Call("Value", (v.choice([3, 0]),)))), Call("Length", ("name",)) if model_name != "Profile" else Call("Abs", (path,))])
        if kind == "str" and r < 0.3:
            return s.choice([Call("Lower", (path,)), Call("Concat", (path, Call("Value", (v.choice(STRINGS),)))), Call("F", ("slug",)),
                             Call("Replace", (path, Call("Value", (v.choice(["a", "%"]),)), Call("Value", ("b",)))),
                             Call("Substr", (path, 2)), Call("Upper", (Call("Left", (path, 3)),))])
        if kind == "dec" and r < 0.3:
            return s.choice([Call("Round", (path, 1)), BinOp("*", Call("F", (path,)), v.choice([2, -1]))])
        if kind == "dt" and r < 0.2:
            return s.choice([Call("TruncHour", (path,)), Call("TruncDay", (path,))])
        val = self.scalar(v, kind, model, field)
        if v.random() < 0.1:
            return None
        return val

    def write(self, shape: int | str, draw: int, seed: int, depth: int = 0) -> Case:
        """A write; ``depth``: how many transactions it is a step of (a
        transaction may be a step of one, then a block nested in another).
        vinyl's side calls it by Django's ``a``-prefixed name now and then
        (``aget_or_create``, ``asave``, ``aadd``...)."""
        case = self._write(shape, draw, seed, depth)
        name = case.terminal[0]
        if name != "txn":
            odds = 0.5 if name in ("get_or_create", "update_or_create") else 0.15
            case.extra["alias"] = random.Random(f"{seed}-walias-{shape}-{draw}").random() < odds
            self.tally["async_name"] += case.extra["alias"]
        return case

    def _write(self, shape: int | str, draw: int, seed: int, depth: int = 0) -> Case:
        s = random.Random(f"{seed}-wshape-{shape}")
        v = random.Random(f"{seed}-wshape-{shape}-draw-{draw}")
        self.stable = s.random() < 0.5
        kind = s.choice(["update"] * 4 + ["delete"] * 2 + ["bulk_create"] * 2 + ["bulk_update"] * 2 + ["get_or_create",
                        "update_or_create", "create", "save", "save", "obj_delete", "m2m", "m2m", "reverse_fk"]
                        + (["txn"] * (3 - 2 * depth) if depth < 2 else []))
        if kind == "txn":
            return self.transaction(s, shape, draw, seed, depth)
        tz = None
        if kind in ("update", "delete"):
            model = s.choice(["Item"] * 4 + ["Owner", "Tag", "Profile", "Premium"])
            ops = tuple(("filter",) + self.condition(s, v, model) for _ in range(s.choice([0, 1, 1, 2])))
            if s.random() < 0.1:
                ops += (("exclude",) + self.condition(s, v, model),)
            if s.random() < 0.15:
                # What Django refuses to delete or update (a slice, distinct(fields), values()) or lets through
                # (an order, distinct(), only(), none()).
                ops += s.choice([(("order_by", ("-pk",), ()), ("slice", (None, 2), ())), (("slice", (1, None), ()),),
                                 (("order_by", ("pk",), ()),), (("distinct", (), ()),), (("values", ("pk",), ()),),
                                 (("order_by", ("pk",), ()), ("distinct", ("pk",), ())), (("none", (), ()),),
                                 (("only", ("pk",), ()),), (("values_list", ("pk",), (("flat", True),)),),
                                 (("annotate", (), (("n", Call("Count", ("pk",))),)),)])
                self.tally["write_after_chain"] += 1
            if kind == "delete":
                return Case(model, ops, ("delete", (), ()), shape, draw, write=True)
            paths = {"Item": ["name", "text", "small", "psmall", "integer", "pint", "big", "pbig", "dec", "flt", "flag", "maybe",
                              "day", "at", "uid", "data", "slug", "span", "owner"],
                     "Owner": ["name", "age", "joined"], "Tag": ["weight", "name"], "Profile": ["bio", "score"],
                     "Premium": ["level", "since", "name", "code"]}[model]
            kw = tuple((p, self.update_value(s, v, model, p)) for p in s.sample(paths, s.choice([1, 1, 2])))
            kw = tuple((p, val.pk if isinstance(val, Inst) else val) if p == "owner" else (p, val) for p, val in kw)
            kw = tuple((("owner_id" if p == "owner" else p), val) for p, val in kw)
            return Case(model, ops, ("update", (), kw), shape, draw, write=True)
        if kind == "bulk_create":
            model = s.choice(["Item", "Item", "Tag"])
            objs = [New(model, tuple(self.new_fields(v, random.Random(f"{seed}-{shape}-{i}"), model).items()))
                    for i in range(v.randint(0, 5))]
            kw: tuple = ()
            if s.random() < 0.3:
                kw += (("batch_size", s.choice([1, 2])),)
            if model == "Tag" and s.random() < 0.4:
                kw += (("ignore_conflicts", True),)
            elif model == "Tag" and s.random() < 0.3:
                kw += (("update_conflicts", True), ("unique_fields", ["name"]), ("update_fields", ["weight"]))
            return Case(model, (), ("bulk_create", (objs,), kw), shape, draw, write=True)
        if kind == "bulk_update":
            model = "Item"
            fields = s.sample(["name", "integer", "big", "dec", "flt", "flag", "day", "at", "data", "uid", "text"], s.randint(1, 3))
            objs = []
            for _ in range(v.randint(0, 4)):
                pk = v.choice([r["id"] for r in self.data.items] + [999])
                vals = {}
                for f in fields:
                    k, m, fld = kind_of("Item", f)
                    if s.random() < 0.2 and f in BULK_UPDATE_EXPRESSIONS:
                        # An expression: evaluated on each row by the UPDATE's CASE.
                        vals[f] = BULK_UPDATE_EXPRESSIONS[f](v)
                        self.tally["bulk_update_expression"] += 1
                    else:
                        vals[f] = self.scalar(v, k, m, fld)
                objs.append(Existing("Item", pk, tuple(vals.items())))
            kw = (("batch_size", 2),) if s.random() < 0.3 else ()
            return Case(model, (), ("bulk_update", (objs, fields), kw), shape, draw, write=True)
        if kind in ("get_or_create", "update_or_create"):
            model = s.choice(["Tag", "Item", "Owner"])
            if model == "Tag":
                lookup = (("name", v.choice([t["name"] for t in self.data.tags] + STRINGS[:10] + ["new"])),)
                defaults = {"weight": v.choice([1, 2, 5])}
            elif model == "Owner":
                lookup = (("name", v.choice(STRINGS[:30])),)
                if s.random() < 0.5:
                    lookup += (("age", v.choice([None, 30, 17, 99])),)
                defaults = {"joined": v.choice([None, datetime.date(2024, 5, 5)])}
            else:
                lookup = tuple(self.leaf(s, v, "Item") for _ in range(1))
                lookup = tuple((k, val) for k, val in lookup if "__" not in k and not isinstance(val, (Inst, QS, Gen)))
                if not lookup:
                    lookup = (("name", v.choice(STRINGS)),)
                defaults = {"name": v.choice(STRINGS), "integer": v.randint(-5, 5)}
            extra: tuple = (("defaults", defaults),)
            if kind == "update_or_create" and s.random() < 0.4:
                # Values used only when it creates (Django 5.0+), the defaults then only when it updates.
                self.tally["create_defaults"] += 1
                creating = {"Tag": {"weight": v.choice([7, -7])}, "Owner": {"age": v.choice([None, 1])},
                            "Item": {"name": v.choice(STRINGS), "small": v.choice([3, None])}}[model]
                extra = s.choice([extra, ()]) + (("create_defaults", creating),)
            return Case(model, (), (kind, (), lookup + extra), shape, draw, write=True)
        if kind == "create":
            model = s.choice(["Item", "Tag", "Premium"])
            if model == "Premium":
                fields = (("name", v.choice(STRINGS)), ("level", v.choice([0, 7, 70000, -1])), ("age", v.choice([None, 3])))
            else:
                fields = tuple(self.new_fields(v, s, model).items())
            return Case(model, (), ("create", (), fields), shape, draw, write=True)
        if kind == "save":
            model = s.choice(["Item", "Item", "Owner", "Premium", "Tag"])
            pk = v.choice([r["id"] for r in self.rows[model]])
            paths = {"Item": ["name", "integer", "big", "dec", "flt", "flag", "day", "at", "data", "uid", "text", "owner_id"],
                     "Owner": ["name", "age", "joined"], "Premium": ["name", "level", "since", "age"], "Tag": ["name", "weight"]}[model]
            fields = s.sample(paths, s.randint(1, min(3, len(paths))))
            vals = []
            for f in fields:
                k, m, fld = kind_of(model, f.removesuffix("_id"))
                val = self.scalar(v, k, m, fld)
                vals.append((f, val.pk if isinstance(val, Inst) else val))
            uf = s.choice([None, fields, fields[:1]])
            return Case(model, (), ("obj:save", (pk, tuple(vals), uf), ()), shape, draw, write=True)
        if kind == "obj_delete":
            model = s.choice(["Item", "Owner", "Tag", "Premium", "Profile"])
            pk = v.choice([r["id"] for r in self.rows[model]])
            return Case(model, (), ("obj:delete", (pk,), ()), shape, draw, write=True)
        if kind == "m2m":
            side = s.choice(["Item", "Tag"])
            method = s.choice(["add", "remove", "set", "clear", "add"])
            pk = v.choice([r["id"] for r in self.rows[side]])
            other = "Tag" if side == "Item" else "Item"
            targets = [v.choice([r["id"] for r in self.rows[other]]) for _ in range(v.randint(0, 3))]
            targets = [Inst(other, t) if s.random() < 0.5 else t for t in targets]
            attr = "tags" if side == "Item" else "items"
            return Case(side, (), ("obj:m2m", (pk, attr, method, tuple(targets)), ()), shape, draw, write=True)
        # reverse foreign key manager: owner.items.add/remove/clear/set
        method = s.choice(["add", "remove", "clear", "set"])
        pk = v.choice([r["id"] for r in self.data.owners])
        targets = tuple(Inst("Item", v.choice([r["id"] for r in self.data.items])) for _ in range(v.randint(0, 3)))
        return Case("Owner", (), ("obj:m2m", (pk, "items", method, targets), ()), shape, draw, write=True, tz=tz)


    def transaction(self, s: random.Random, shape: int | str, draw: int, seed: int, depth: int = 0) -> Case:
        """Two to four steps (writes, reads seeing them, or a transaction
        nested in this one) in one atomic block (see
        tests/differential/runner.py: each step guarded, the block
        committed or rolled back at its end)."""
        self.tally["txn"] += 1
        steps = []
        for k in range(s.randint(2, 4)):
            if s.random() < 0.3:
                sub = self.read(f"{shape}.{k}", draw, seed)
                if sub.terminal[0] == "iter":
                    # A stream on the block's connection. (Not where a stream's own accepted differences could show,
                    # which stay with the reads: chunked prefetches, and Django's cursors on PostgreSQL.)
                    how = sub.terminal[1][1] if sub.terminal[1] else "iterator"
                    if any(op[0] == "prefetch_related" for op in sub.ops) or self.backend == "postgresql" and how != "aiter":
                        sub = dataclasses.replace(sub, terminal=("list", (), ()))
                    else:
                        self.tally["stream_in_txn"] += 1
            else:
                sub = self.write(f"{shape}.{k}", draw, seed, depth=depth + 1)
            steps.append((sub, s.choice(["plain", "plain", "savepoint", "savepoint", "caught"])))
        ending = s.choice(["ended", "ended", "ended", "raise"])
        return Case(steps[0][0].model, (), ("txn", (tuple(steps), ending), ()), shape, draw, write=True)

def ordered_levels(path: str) -> list[str]:
    """The levels of a string prefetch path whose lists have a defined order (many-to-many to Tag: its Meta.ordering
    is a unique key); Item has no Meta.ordering, and the other levels are instances."""
    parts = path.split("__")
    return ["__".join(parts[:i + 1]) for i, part in enumerate(parts) if part == "tags"]


def _lag_ranked(op: tuple) -> tuple:
    """``op`` with a ``Window(Lag(...))`` it annotates made a ``Window(Rank())`` of the same order."""
    name, args, kwargs = op
    if name not in ("annotate", "alias"):
        return op
    swapped = []
    for key, expr in kwargs:
        if isinstance(expr, Call) and expr.name == "Window" and isinstance(expr.args[0], Call) and expr.args[0].name == "Lag":
            expr = Call("Window", (Call("Rank"),), expr.kwargs)
        swapped.append((key, expr))
    return (name, args, tuple(swapped))


def loaded_by(ops: tuple) -> tuple[set, set]:
    """The relation paths and attribute names a chain loads onto its instances."""
    related, attrs = set(), set()
    for name, args, kwargs in ops:
        if name == "select_related":
            related.update(args)
        elif name == "prefetch_related":
            for a in args:
                if isinstance(a, str):
                    related.add(a)
                else:
                    kw = dict(a.kwargs)
                    if "to_attr" in kw:
                        attrs.add(kw["to_attr"])
                    else:
                        related.add(a.args[0])
        elif name == "annotate":
            attrs.update(k for k, _ in kwargs)
    return related, attrs


def _desc(path: str, nulls_last: bool) -> Any:
    return Method(Call("F", (path,)), "desc", (("nulls_last", True),) if nulls_last else ())

