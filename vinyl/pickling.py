"""Pickling vinyl model classes and their instances.

A vinyl class (``vinyl_model(Book)``) carries its model's module and name,
where pickle finds the user's class: by default a vinyl class cannot be
pickled (so neither can ``Book.vinyl.filter(...).query``, which Django's
docs give as the way to keep a query), and an instance comes back as an
instance of the user's class, without vinyl's API. Here a vinyl class
pickles as "the vinyl class of" its model, and an instance as Django pickles
it, made a vinyl instance again when loaded.
"""

from __future__ import annotations

import copyreg
import threading
from typing import Any

from django.db.models.base import model_unpickle

from vinyl._vinylize import adopt, vinyl_model

_metaclasses: dict[type, type] = {}
_lock = threading.Lock()


def vinyl_metaclass(metaclass: type) -> type:
    """The metaclass of the vinyl classes of models whose metaclass is
    ``metaclass`` (Django's ModelBase, or a project's subclass of it): the
    same, with a pickle reduction of its own (registered with copyreg, which
    pickle consults for exactly this type)."""
    meta = _metaclasses.get(metaclass)
    if meta is None:
        with _lock:
            meta = _metaclasses.get(metaclass)
            if meta is None:
                meta = type(f"Vinyl{metaclass.__name__}", (metaclass,), {"__module__": __name__})
                copyreg.pickle(meta, _reduce_vinyl_class)
                _metaclasses[metaclass] = meta
    return meta


def _reduce_vinyl_class(cls: type) -> tuple[Any, tuple[type]]:
    # The user's model goes by reference, as pickle stores any class.
    return vinyl_model, (cls.__dict__["_vinyl_origin"],)


def unpickle_instance(model_id: Any) -> Any:
    """An empty instance of the vinyl class of the model ``model_id`` names
    (as Django's ``model_unpickle``), for pickle to fill in."""
    return adopt(model_unpickle(model_id))
