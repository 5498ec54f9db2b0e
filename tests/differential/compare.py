"""Answers of either ORM in one comparable form.

``outcome`` of a run is ``("ok", value)`` or ``("error", stage, class)``,
where the class is the Django or builtin exception class a user catches
(``Item.DoesNotExist``, ``FieldError``, ``IntegrityError``, ``ValueError``...);
an exception of a driver or of SQLAlchemy is ``LEAK:module.Class``.
``norm`` makes values comparable: instances become their model and loaded
field values (plus what ``select_related``/``prefetch_related`` loaded),
floats are compared to 12 significant digits, decimals by value.
"""

from __future__ import annotations

import datetime
import inspect
import decimal
import math
import uuid
from collections import Counter
from typing import Any

from django.core import exceptions as dx
from django.db import models as dm
from django.db import utils as du
from django.db.models.fields.related_descriptors import ReverseManyToOneDescriptor

from tests.diffapp import models

_MODELS_CHILD_FIRST = [models.Premium, models.Owner, models.Tag, models.Profile, models.Item, models.Item.tags.through]
_DB_ERRORS = [du.IntegrityError, du.DataError, du.OperationalError, du.ProgrammingError, du.NotSupportedError,
              du.InternalError, du.InterfaceError, du.DatabaseError, du.Error]
_DJANGO_ERRORS = [dx.FieldError, dx.FieldDoesNotExist, dx.ValidationError, dx.EmptyResultSet,
                  dx.SynchronousOnlyOperation, dx.ImproperlyConfigured]
_FOREIGN = ("asyncpg", "asyncmy", "aiosqlite", "sqlalchemy", "pymysql", "psycopg", "sqlite3", "MySQLdb", "greenlet")


def classify(exc: BaseException, oracle: bool = False) -> str:
    """The class a Django user would catch for ``exc`` (or ``LEAK:...`` for a driver's).

    ``oracle``: the exception is Django's own. Django lets a few driver
    exceptions through (PyMySQL refuses ``inf`` while quoting, before Django
    wraps errors); those count as the PEP 249 class of the same name, which
    is what vinyl is expected to raise as Django's class.
    """
    mod = type(exc).__module__ or ""
    if mod.split(".")[0] in _FOREIGN:
        if oracle:
            for cls in type(exc).__mro__:
                if cls.__name__ in {c.__name__ for c in _DB_ERRORS}:
                    return cls.__name__
        return f"LEAK:{mod}.{type(exc).__qualname__}"
    if isinstance(exc, dx.ObjectDoesNotExist):
        for model in _MODELS_CHILD_FIRST:
            if isinstance(exc, model.DoesNotExist):
                return f"{model.__name__}.DoesNotExist"
        return "ObjectDoesNotExist"
    if isinstance(exc, dx.MultipleObjectsReturned):
        for model in _MODELS_CHILD_FIRST:
            if isinstance(exc, model.MultipleObjectsReturned):
                return f"{model.__name__}.MultipleObjectsReturned"
        return "MultipleObjectsReturned"
    for cls in _DB_ERRORS + _DJANGO_ERRORS:
        if isinstance(exc, cls):
            return cls.__name__
    for cls in type(exc).__mro__:
        if cls.__module__ == "builtins":
            return cls.__name__
    return f"{mod}.{type(exc).__qualname__}"


def norm(x: Any) -> Any:
    """A hashable, type-aware form of a plain value (see module docstring)."""
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        if math.isnan(x):
            return ("float", "nan")
        if math.isinf(x):
            return ("float", str(x))
        return ("float", float(f"{x:.12g}"))
    if isinstance(x, decimal.Decimal):
        return ("Decimal", str(x.normalize()) if x.is_finite() else str(x))
    if isinstance(x, datetime.datetime):
        return ("datetime", x.isoformat())
    if isinstance(x, (datetime.date, datetime.time, datetime.timedelta, uuid.UUID)):
        return x
    if isinstance(x, (bytes, memoryview, bytearray)):
        return ("bytes", bytes(x))
    if isinstance(x, dict):
        return ("dict", tuple(sorted(((norm(k), norm(v)) for k, v in x.items()), key=repr)))
    if isinstance(x, list):
        return ("list", tuple(norm(i) for i in x))
    if isinstance(x, tuple):
        fields = getattr(type(x), "_fields", None)
        if fields is not None:
            return ("row", tuple(fields), tuple(norm(i) for i in x))
        return ("tuple", tuple(norm(i) for i in x))
    if isinstance(x, dm.Model):
        return norm_instance(x, (), ())
    return ("?", type(x).__name__, repr(x))


def _related(obj: dm.Model, name: str, vinyl: bool) -> Any:
    """What a select_related / prefetch_related path loaded, read without a query."""
    if vinyl:
        return obj[name]
    if isinstance(inspect.getattr_static(type(obj), name, None), ReverseManyToOneDescriptor):
        return list(getattr(obj, name).all())  # the prefetched list (no query)
    try:
        return getattr(obj, name)
    except dx.ObjectDoesNotExist:
        return None


def _sub_paths(paths: frozenset, head: str) -> frozenset:
    """The paths of ``paths`` below ``head`` (``head__x`` -> ``x``)."""
    prefix = head + "__"
    return frozenset(p[len(prefix):] for p in paths if p.startswith(prefix))


def _seq(items: list, in_order: bool) -> tuple:
    """A list of normalized items: in its order when that order is defined, else sorted."""
    return ("list", tuple(items)) if in_order else ("bag", tuple(sorted(items, key=repr)))


def norm_instance(obj: dm.Model, related: tuple, attrs: tuple, in_order: frozenset = frozenset()) -> Any:
    """An instance as (model, loaded fields, attributes, related paths, state).

    ``in_order``: the prefetched lists and ``to_attr`` lists (paths, relative
    to ``obj``) whose order is defined (an ordered Prefetch queryset, a model
    ordered by a unique key): compared as lists, the others as bags.
    """
    from vinyl.models import is_vinyl_model

    vinyl = is_vinyl_model(type(obj))
    deferred = obj.get_deferred_fields()
    fields = tuple((f.attname, norm(obj.__dict__[f.attname])) for f in obj._meta.concrete_fields if f.attname not in deferred)
    extra = tuple((a, norm(obj.__dict__.get(a, "<missing>")) if not isinstance(obj.__dict__.get(a), list)
                   else _seq([norm_instance(o, (), ()) if isinstance(o, dm.Model) else norm(o) for o in obj.__dict__[a]],
                             a in in_order))
                  for a in attrs)
    rel = []
    heads: dict[str, list[str]] = {}
    for path in related:
        head, _, rest = path.partition("__")
        heads.setdefault(head, [])
        if rest:
            heads[head].append(rest)
    for head, rests in sorted(heads.items()):
        try:
            value = _related(obj, head, vinyl)
        except Exception as exc:  # noqa: BLE001 - an unreadable relation is part of the answer
            rel.append((head, ("error", classify(exc))))
            continue
        below = _sub_paths(in_order, head)
        if isinstance(value, list):
            rel.append((head, _seq([norm_instance(o, tuple(rests), (), below) for o in value], head in in_order)))
        elif isinstance(value, dm.Model):
            rel.append((head, norm_instance(value, tuple(rests), (), below)))
        else:
            rel.append((head, norm(value)))
    # The state a loaded instance must have on either side: not adding (save() updates), bound to a database.
    state = ("adding" if obj._state.adding else "loaded", "db" if obj._state.db else "no db")
    return ("obj", obj._meta.concrete_model._meta.label, fields, tuple(sorted(deferred)), extra, tuple(rel), state)


def norm_result(value: Any, related: tuple, attrs: tuple, ordered: bool, in_order: tuple = ()) -> Any:
    """A terminal's result: lists of rows/instances compare in order only when ``ordered``
    (``in_order``: see ``norm_instance``)."""
    paths = frozenset(in_order)

    def one(v: Any) -> Any:
        return norm_instance(v, related, attrs, paths) if isinstance(v, dm.Model) else norm(v)

    if isinstance(value, list):
        items = [one(v) for v in value]
        return ("list", tuple(items)) if ordered else ("bag", tuple(sorted(items, key=repr)))
    if isinstance(value, dict) and value and all(isinstance(v, dm.Model) for v in value.values()):
        return ("in_bulk", tuple(sorted(((norm(k), one(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], dm.Model):
        return ("pair", one(value[0]), norm(value[1]))
    return one(value)


def non_vinyl_instances(value: Any) -> list[str]:
    """Instances in a vinyl result that are not of the vinyl class (API: every instance is)."""
    from vinyl.models import is_vinyl_model

    bad = []
    values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, dm.Model) and not is_vinyl_model(type(v)):
            bad.append(type(v).__name__)
    return bad


def same(a: Any, b: Any) -> bool:
    return a == b


def diff_summary(a: Any, b: Any) -> str:
    """A short description of how two normalized answers differ."""
    if isinstance(a, tuple) and isinstance(b, tuple) and a[:1] == b[:1] and a[:1] in (("bag",), ("list",)):
        ca, cb = Counter(map(repr, a[1])), Counter(map(repr, b[1]))
        only_a, only_b = ca - cb, cb - ca
        if not only_a and not only_b:
            for x, y in zip(a[1], b[1]):
                if x != y:
                    return "the same items by repr, yet unequal: " + _first_difference(x, y)
            return "same items, other order"
        head = f"{len(a[1])} rows vs {len(b[1])}; {sum(only_a.values())} only in Django's, {sum(only_b.values())} only in vinyl's"
        ia = [x for x in a[1] if repr(x) in only_a]
        ib = [x for x in b[1] if repr(x) in only_b]
        if ia and ib:
            return head + "; first difference: " + _first_difference(ia[0], ib[0])
        return head + f"; e.g. {_clip(repr((ia or ib)[0]))}"
    return _first_difference(a, b)


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    """Where two normalized values first differ, e.g. ``[3].owner.name: 'a' != 'b'``."""
    if type(a) is tuple and type(b) is tuple and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                label = x[0] if type(x) is tuple and len(x) == 2 and isinstance(x[0], str) and x[0] == y[0] else f"[{i}]"
                return _first_difference(x, y, f"{where}.{label}" if label != f"[{i}]" else f"{where}{label}")
    return f"{where or 'value'}: Django {_clip(repr(a), 200)} != vinyl {_clip(repr(b), 200)}"
