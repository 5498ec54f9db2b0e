"""Model instances straight from rows, for models that allow it.

Django builds each row's instance with ``Model.from_db`` and ``__init__``,
which walk the model's fields and send the init signals. For a model where
nothing observes the difference (see :func:`plain_construction`), vinyl
sets the state and the loaded columns on a bare instance, in the order
``__init__`` sets them, with code generated once per query shape: one
attribute store per column, as a hand-written loop would do. Columns left
out stay deferred, as ``__init__`` leaves them.

Where the optional C extension ``vinyl.translate._rowbuild`` is built (see
:data:`ROWBUILD`), :func:`rows_maker` and :func:`joined_rows_maker` let it
build the instances of a shape without annotations, its converters
included: the same calls in the same order, without the interpreter's work
per row. Elsewhere the generated Python runs.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import keyword
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.fields.files import FileDescriptor, ImageFileDescriptor
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

from vinyl import construct
from vinyl.translate.converters import Conversion, Converted, _EPOCH, batch_aware

Row = Sequence[Any]

logger = logging.getLogger("vinyl.translate")

#: The version of ``_rowbuild``'s functions vinyl calls (``build_rows`` here,
#: the prefetch loops in vinyl.prefetch; the C source's ROWBUILD_VERSION).
ROWBUILD_VERSION = 5


def load_rowbuild() -> ModuleType | None:
    """The C extension ``vinyl.translate._rowbuild``, or None for the
    pure-Python builder: where it was not built (an optional extension),
    where ``VINYL_NO_EXTENSIONS`` is set (to anything but ``""`` or ``"0"``),
    and where it is of another version than this module calls, or older
    than its C source beside it (an editable checkout edited since it was
    built; a warning says to rebuild it)."""
    if os.environ.get("VINYL_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    try:
        from vinyl.translate import _rowbuild  # type: ignore[attr-defined]
    except ImportError as error:
        logger.debug("vinyl.translate._rowbuild is not built (%s): the pure-Python row builder runs", error)
        return None
    if getattr(_rowbuild, "VERSION", None) != ROWBUILD_VERSION:
        logger.warning(
            "vinyl.translate._rowbuild is of version %r, not %r: the pure-Python row builder runs (rebuild it: pip install -e .)",
            getattr(_rowbuild, "VERSION", None),
            ROWBUILD_VERSION,
        )
        return None
    source = Path(__file__).with_name("_rowbuild.c")
    if source.exists() and hashlib.sha256(source.read_bytes()).hexdigest() != getattr(_rowbuild, "SOURCE_HASH", None):
        logger.warning(
            "%s was built from another version of %s: the pure-Python row builder runs (rebuild it: pip install -e .)",
            _rowbuild.__file__,
            source,
        )
        return None
    return _rowbuild


#: The C row builder, or None: see :func:`load_rowbuild` (tests swap it to
#: run both builders).
ROWBUILD = load_rowbuild()


# Django's field descriptors whose __set__, on an instance being built, only
# stores the value in its __dict__ (a foreign key's also drops a cached
# related object, which a new instance has none of; an image's updates its
# dimension fields only when it held a file before). A descriptor_class of
# another kind with a setter must run it, as __init__ runs it.
_STORE_ONLY_SETTERS = (DeferredAttribute, ForeignKeyDeferredAttribute, FileDescriptor, ImageFileDescriptor)


def plain_construction(model: Any, attnames: Sequence[str]) -> bool:
    """Can instances of ``model`` be built without running ``__init__``?

    Yes when nothing would observe the difference: Django's own
    ``__init__``, ``from_db`` and attribute assignment, no init signal
    receivers, and plain field descriptors for the loaded columns: Django's
    deferred attributes, whose setter (if any) only stores the value, or a
    ``descriptor_class`` of the field's that has no setter.
    """
    # Django's __init__, or vinyl's quicker ones that build the same instances
    # (vinyl.construct, installed on models with a vinyl manager).
    if not construct.builds_like_django(model.__init__) or model.from_db.__func__ is not Model.from_db.__func__:
        return False
    if model.__setattr__ is not object.__setattr__:
        return False
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return False
    return all(_plain_descriptor(inspect.getattr_static(model, name, None)) for name in attnames)


def _plain_descriptor(descriptor: Any) -> bool:
    # The class whose __set__ runs (vinyl's copies of Django's descriptors,
    # vinyl.descriptors, subclass them and keep their setter).
    if not isinstance(descriptor, DeferredAttribute):
        return False
    for kind in type(descriptor).__mro__:
        if "__set__" in vars(kind):
            return kind in _STORE_ONLY_SETTERS
    return True


def row_maker(model: type, attnames: Sequence[str], start: int, fetch_mode: Any = None) -> Callable[[str, Row], Any]:
    """``make(db, row)``: an instance of ``model`` from ``row[start:]``."""
    return _one(model, attnames, start, fetch_mode, "db, row")


def rows_maker(
    model: type,
    attnames: Sequence[str],
    start: int,
    fetch_mode: Any = None,
    annotations: Sequence[tuple[str, int]] = (),
    converted: Converted | None = None,
    width: int | None = None,
) -> Callable[[str, Sequence[Row]], list]:
    """``make(db, rows)``: one instance of ``model`` per row, from ``row[start:]``.

    ``annotations``: ``(name, position)`` pairs; each instance then gets
    ``row[position]`` as attribute ``name``, as Django's iterable sets an
    annotation (or an ``extra()`` column) after building the instance.
    ``converted``: Django's converters of the row's columns, as
    :func:`~vinyl.translate.converters.value_expressions` gives them for
    ``row``, applied to each value as it is stored (no converted copy of
    each row first). ``width``: every row has exactly this many columns;
    the loop then unpacks each row into locals (``c<k>``, which the
    converter expressions must read: ``value_expressions(...,
    unpacked=True)``) instead of indexing it once per column.
    """
    if not annotations:
        compiled = _compiled_rows_maker(model, attnames, start, fetch_mode, width, (), converted)
        if compiled is not None:
            return compiled
    exprs = converted[2] if converted is not None else {}
    lines = [
        "def make(db, rows):",
        *_prologue(converted),
        "    objs = []",
        _loop(width),
        *_instance(model, attnames, start, fetch_mode, "        ", exprs=exprs, unpacked=width is not None),
        *_annotations(annotations, "        ", unpacked=width is not None),
        "        objs.append(obj)",
        "    return objs",
    ]
    namespace = dict(converted[0]) if converted is not None else {}
    namespace["annotation_names"] = tuple(name for name, _ in annotations)
    return _compile(lines, [(model, attnames)], fetch_mode, namespace)


def _compiled_rows_maker(
    model: type,
    attnames: Sequence[str],
    start: int,
    fetch_mode: Any,
    width: int | None,
    joins: Sequence[Joined] = (),
    converted: Converted | None = None,
) -> Any:
    """rows_maker's (joined_rows_maker's) ``make`` on the C builder, where it
    is loaded and can build every class of the shape (see :func:`_shape`);
    else None."""
    rowbuild = ROWBUILD
    if rowbuild is None:
        return None
    # (The C code checks the same, and refuses other classes with TypeError.)
    if not _c_buildable(ModelState) or ModelState.__init__ is not object.__init__:
        return None
    conversions = _conversions(converted[3]) if converted is not None else {}
    shape = _shape(model, attnames, start, joins, conversions)
    if shape is None:
        return None
    build_rows = rowbuild.build_rows
    unpacked = -1 if width is None else int(width)
    fetch = (("fetch_mode", fetch_mode),) if fetch_mode is not None else ()
    # The operations objects whose zone each batch reads, in the order the
    # generated Python reads them (before its loop).
    zoned = tuple(ops for (_, _, _, ops, _) in converted[3].values() if ops is not None) if converted is not None else ()
    if not zoned:

        def make(db: str, rows: Sequence[Row]) -> list:
            return build_rows(shape, ModelState, (("adding", False), ("db", db), *fetch), rows, unpacked, ())

        return make

    def make_zoned(db: str, rows: Sequence[Row]) -> list:
        batch = tuple([batch_aware(ops) for ops in zoned])
        return build_rows(shape, ModelState, (("adding", False), ("db", db), *fetch), rows, unpacked, batch)

    return make_zoned


def _conversions(conversions: dict[int, Conversion]) -> dict[int, tuple]:
    """The C builder's conversion of each converted position: ``(calls,
    expression, connection, slot, naive, epoch)`` (see ``_rowbuild.c``),
    the slot of an inlined MySQL datetime converter numbering them in
    order."""
    specs: dict[int, tuple] = {}
    slots = 0
    for pos, (calls, expression, connection, ops, naive) in conversions.items():
        slot = None
        if ops is not None:
            slot, slots = slots, slots + 1
        specs[int(pos)] = (tuple(calls), expression, connection, slot, bool(naive), _EPOCH)
    return specs


def _c_buildable(cls: Any) -> bool:
    """Does ``object.__new__(cls)`` and an attribute store on its instances
    do what the C builder does (no ``__new__`` or ``__setattr__`` of its own)?"""
    return cls.__new__ is object.__new__ and cls.__setattr__ is object.__setattr__


def _shape(model: type, attnames: Sequence[str], start: int, joins: Sequence[Joined], conversions: dict[int, tuple]) -> tuple | None:
    """The C builder's description of the objects _instance and _joined
    build: ``(model, start, names, use_dict, joins, converters)`` (column
    ``i`` at ``row[start + i]``), each join
    ``(shape, key position, cache name, back name or None)``, converters
    None or the conversion (see :func:`_conversions`) or None of each
    column; None where a class is not :func:`_c_buildable`."""
    if not _c_buildable(model):
        return None
    nested = []
    for join in joins:
        shape = _shape(join.model, join.attnames, join.start, join.joins, conversions)
        if shape is None:
            return None
        nested.append((shape, join.start + join.pk, sys.intern(join.cache_name), join.back))
    names = tuple(sys.intern(name) for name in attnames)
    # _instance's choice: attribute stores, or (a setter, a name no attribute
    # store spells) every column into obj.__dict__.
    use_dict = not all(_storable(model, name) for name in attnames)
    converters = tuple(conversions.get(start + i) for i in range(len(names)))
    return (model, int(start), names, use_dict, tuple(nested), converters if any(converters) else None)


def _loop(width: int | None) -> str:
    # (Unpacking reads the row once; indexing an asyncpg Record costs a
    # generic subscript call per column.)
    if width is None:
        return "    for row in rows:"
    return f"    for ({''.join(f'c{k}, ' for k in range(int(width)))}) in rows:"


def _column(position: int, unpacked: bool) -> str:
    return f"c{int(position)}" if unpacked else f"row[{int(position)}]"


def _prologue(converted: Converted | None) -> list[str]:
    return ["    " + line for line in converted[1]] if converted is not None else []


def _annotations(annotations: Sequence[tuple[str, int]], indent: str, unpacked: bool = False) -> list[str]:
    # setattr(obj, name, value) as Django's iterable calls it: an attribute
    # store where the name is an identifier (the same call), else setattr.
    lines = []
    for i, (name, position) in enumerate(annotations):
        if name.isidentifier() and not keyword.iskeyword(name):
            lines.append(f"{indent}obj.{name} = {_column(position, unpacked)}")
        else:
            lines.append(f"{indent}setattr(obj, annotation_names[{i}], {_column(position, unpacked)})")
    return lines


class Joined:
    """An object select_related builds from columns of each row.

    ``attnames`` are its loaded columns, at ``start`` in the row, ``pk`` the
    position of its key among them (a null key: no object). Its parent
    caches it as ``cache_name``; ``back`` is the name it caches its parent
    as (a one-to-one), or None.
    """

    # A plain class, not a dataclass: building a dataclass costs about 0.4 ms
    # at import, paid by every cold start.
    __slots__ = ("model", "attnames", "start", "pk", "cache_name", "back", "joins")

    def __init__(
        self,
        model: type,
        attnames: tuple[str, ...],
        start: int,
        pk: int,
        cache_name: str,
        back: str | None,
        joins: tuple[Joined, ...] = (),
    ) -> None:
        self.model = model
        self.attnames = attnames
        self.start = start
        self.pk = pk
        self.cache_name = cache_name
        self.back = back
        self.joins = joins


@functools.cache
def caches_assignable() -> bool:
    """Can a new instance's related-object cache be set as one dict?
    (Django's ModelState makes it on first read, with a plain descriptor.)
    A fact of Django's class: found once, not at every prefetch's attach."""
    return not hasattr(type(inspect.getattr_static(ModelState, "fields_cache", None)), "__set__")


def joined_rows_maker(
    model: type,
    attnames: Sequence[str],
    start: int,
    fetch_mode: Any,
    joins: Sequence[Joined],
    converted: Converted | None = None,
    width: int | None = None,
) -> Callable[[str, Sequence[Row]], list]:
    """``make(db, rows)``: one instance of ``model`` per row, with the
    objects ``joins`` build from the same row in its related-object cache,
    as Django's select_related populators leave them (every model plain).
    ``converted``, ``width``: as for :func:`rows_maker`."""
    compiled = _compiled_rows_maker(model, attnames, start, fetch_mode, width, joins, converted)
    if compiled is not None:
        return compiled
    models: list[tuple[type, Sequence[str]]] = [(model, attnames)]
    exprs = converted[2] if converted is not None else {}
    unpacked = width is not None
    lines = [
        "def make(db, rows):",
        *_prologue(converted),
        "    objs = []",
        _loop(width),
        *_instance(model, attnames, start, fetch_mode, "        ", exprs=exprs, unpacked=unpacked),
        *_joined("obj", "state", joins, fetch_mode, "        ", models, exprs=exprs, unpacked=unpacked),
        "        objs.append(obj)",
        "    return objs",
    ]
    return _compile(lines, models, fetch_mode, converted[0] if converted is not None else None)


def _joined(
    parent: str,
    parent_state: str,
    joins: Sequence[Joined],
    fetch_mode: Any,
    indent: str,
    models: list,
    cached: Sequence[str] = (),
    exprs: dict[int, str] | None = None,
    unpacked: bool = False,
) -> list[str]:
    # Build each joined object of ``parent`` (None for a null key), then
    # give ``parent`` its cache of them (and ``cached``, its entry for its
    # own parent) in one dict, as Django's populate() leaves it. An object
    # that caches nothing keeps the state Django's from_db gives it, where
    # the cache is made on first read.
    lines: list[str] = []
    cached = list(cached)
    for join in joins:
        n = len(models)
        models.append((join.model, join.attnames))
        var, state = f"obj{n}", f"state{n}"
        lines.append(f"{indent}if {_column(join.start + join.pk, unpacked)} is None:")
        lines.append(f"{indent}    {var} = None")
        lines.append(f"{indent}else:")
        lines.extend(_instance(join.model, join.attnames, join.start, fetch_mode, indent + "    ", n, exprs, unpacked))
        back = [f"{join.back!r}: {parent}"] if join.back is not None else []
        lines.extend(_joined(var, state, join.joins, fetch_mode, indent + "    ", models, back, exprs, unpacked))
        cached.append(f"{join.cache_name!r}: {var}")
    if not cached:
        return lines
    return lines + [f"{indent}{parent_state}.fields_cache = {{{', '.join(cached)}}}"]


def from_db_function(model: type, attnames: Sequence[str], fetch_mode: Any = None) -> Callable[[str, Sequence[str], Row], Any]:
    """A ``Model.from_db`` replacement for values of exactly ``attnames``."""
    return _one(model, attnames, 0, fetch_mode, "db, names, row")


def _one(model: type, attnames: Sequence[str], start: int, fetch_mode: Any, signature: str) -> Any:
    lines = [f"def make({signature}):", *_instance(model, attnames, start, fetch_mode, "    "), "    return obj"]
    return _compile(lines, [(model, attnames)], fetch_mode)


def _instance(
    model: type,
    attnames: Sequence[str],
    start: int,
    fetch_mode: Any,
    indent: str,
    n: int = 0,
    exprs: dict[int, str] | None = None,
    unpacked: bool = False,
) -> list[str]:
    # The statements building ``obj`` (``obj<n>``, of the n-th model given to
    # _compile) from ``row``, in __init__'s order (ModelState() is the
    # cheapest way to make the state). Attribute stores where every column
    # allows one: the values stay in the instance (no dict object). Where a
    # column's class attribute has a setter (a foreign key's, which only
    # stores the value and clears a cached related object a new instance
    # has none of), or no attribute store can spell its name, the instance
    # needs its __dict__ anyway: then every column goes straight into it, as
    # from_db stores them (a dict store costs less than an attribute store
    # through a field's descriptor, about 230 instructions against 306 on
    # 3.11), after the state (an attribute store that is specialized).
    suffix = str(n) if n else ""
    obj, state, model_name, values = f"obj{suffix}", f"state{suffix}", f"model{suffix}", f"values{suffix}"
    lines = [f"{obj} = new({model_name})", f"{state} = State()", f"{state}.adding = False", f"{state}.db = db"]
    if fetch_mode is not None:  # Django 6.1
        lines.append(f"{state}.fetch_mode = fetch_mode")
    exprs = exprs or {}
    stored = [(name, exprs.get(start + i) or _column(start + i, unpacked)) for i, name in enumerate(attnames)]
    lines.append(f"{obj}._state = {state}")
    direct = len(stored) if all(_storable(model, name) for name, _ in stored) else 0
    lines.extend(f"{obj}.{name} = {value}" for name, value in stored[:direct])
    if direct < len(stored):
        lines.append(f"{values} = {obj}.__dict__")
        lines.extend(f"{values}[{name!r}] = {value}" for name, value in stored[direct:])
    return [indent + line for line in lines]


def _storable(model: type, name: str) -> bool:
    """Can ``obj.<name> = value`` store a loaded value as from_db does?"""
    return name.isidentifier() and not keyword.iskeyword(name) and not _has_setter(model, name)


def _has_setter(model: type, name: str) -> bool:
    return hasattr(type(inspect.getattr_static(model, name, None)), "__set__")


def _compile(lines: list[str], models: Sequence[tuple[type, Sequence[str]]], fetch_mode: Any, extra: dict[str, Any] | None = None) -> Any:
    namespace: dict[str, Any] = {**(extra or {}), "new": object.__new__, "State": ModelState, "fetch_mode": fetch_mode}
    for n, (model, attnames) in enumerate(models):
        suffix = str(n) if n else ""
        namespace[f"model{suffix}"] = model
        namespace[f"attnames{suffix}"] = tuple(attnames)
    # The source holds only generated names, integer indexes, string
    # literals written by repr() and the converter expressions of
    # vinyl.translate.converters (names and integer positions).
    exec("\n".join(lines), namespace)  # noqa: S102
    return namespace["make"]
