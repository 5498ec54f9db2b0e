"""Model instances straight from rows, for models that allow it.

Django builds each row's instance with ``Model.from_db`` and ``__init__``,
which walk the model's fields and send the init signals. For a model where
nothing observes the difference (see :func:`plain_construction`), vinyl
sets the state and the loaded columns on a bare instance, in the order
``__init__`` sets them, with code generated once per query shape: one
attribute store per column, as a hand-written loop would do. Columns left
out stay deferred, as ``__init__`` leaves them.
"""

from __future__ import annotations

import inspect
import keyword
from typing import Any, Callable, Sequence

from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

from vinyl import construct

Row = Sequence[Any]

# Django's __init__, and vinyl's quicker one that builds the same instances
# (vinyl.construct, installed on models with a vinyl manager).
_DJANGOS_INIT = (Model.__init__, construct._init)


def plain_construction(model: Any, attnames: Sequence[str]) -> bool:
    """Can instances of ``model`` be built without running ``__init__``?

    Yes when nothing would observe the difference: Django's own
    ``__init__``, ``from_db`` and attribute assignment, no init signal
    receivers, and plain field descriptors for the loaded columns.
    """
    if model.__init__ not in _DJANGOS_INIT or model.from_db.__func__ is not Model.from_db.__func__:
        return False
    if model.__setattr__ is not object.__setattr__:
        return False
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return False
    return all(isinstance(inspect.getattr_static(model, name, None), DeferredAttribute) for name in attnames)


def row_maker(model: type, attnames: Sequence[str], start: int, fetch_mode: Any = None) -> Callable[[str, Row], Any]:
    """``make(db, row)``: an instance of ``model`` from ``row[start:]``."""
    return _one(model, attnames, start, fetch_mode, "db, row")


def rows_maker(model: type, attnames: Sequence[str], start: int, fetch_mode: Any = None) -> Callable[[str, Sequence[Row]], list]:
    """``make(db, rows)``: one instance of ``model`` per row, from ``row[start:]``."""
    lines = [
        "def make(db, rows):",
        "    objs = []",
        "    append = objs.append",
        "    for row in rows:",
        *_instance(model, attnames, start, fetch_mode, "        "),
        "        append(obj)",
        "    return objs",
    ]
    return _compile(lines, model, attnames, fetch_mode)


def from_db_function(model: type, attnames: Sequence[str], fetch_mode: Any = None) -> Callable[[str, Sequence[str], Row], Any]:
    """A ``Model.from_db`` replacement for values of exactly ``attnames``."""
    return _one(model, attnames, 0, fetch_mode, "db, names, row")


def _one(model: type, attnames: Sequence[str], start: int, fetch_mode: Any, signature: str) -> Any:
    lines = [f"def make({signature}):", *_instance(model, attnames, start, fetch_mode, "    "), "    return obj"]
    return _compile(lines, model, attnames, fetch_mode)


def _instance(model: type, attnames: Sequence[str], start: int, fetch_mode: Any, indent: str) -> list[str]:
    # The statements building ``obj`` from ``row``, in __init__'s order.
    new_state = "new(State)" if ModelState.__init__ is object.__init__ else "State()"
    lines = ["obj = new(model)", f"state = {new_state}", "state.adding = False", "state.db = db"]
    if fetch_mode is not None:  # Django 6.1
        lines.append("state.fetch_mode = fetch_mode")
    lines.append("obj._state = state")
    for i, name in enumerate(attnames):
        if name.isidentifier() and not keyword.iskeyword(name) and not _has_setter(model, name):
            lines.append(f"obj.{name} = row[{start + i}]")
        else:
            # A foreign key's attname has a setter that clears the related
            # object's cache (empty here): store the value as from_db would.
            lines.append(f"obj.__dict__[attnames[{i}]] = row[{start + i}]")
    return [indent + line for line in lines]


def _has_setter(model: type, name: str) -> bool:
    return hasattr(type(inspect.getattr_static(model, name, None)), "__set__")


def _compile(lines: list[str], model: type, attnames: Sequence[str], fetch_mode: Any) -> Any:
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "model": model,
        "State": ModelState,
        "fetch_mode": fetch_mode,
        "attnames": tuple(attnames),
    }
    # The source holds only identifiers checked above and integer indexes.
    exec("\n".join(lines), namespace)  # noqa: S102
    return namespace["make"]
