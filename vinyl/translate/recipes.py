"""Recipes: the shapes of a QuerySet's calls, one object per recipe.

A recipe is a key of two tables looked up at every call and every statement
(the recipes Django accepted, the plan cache), and Python caches no tuple's
hash: hashing a recipe of three calls cost about 1,000 instructions, paid
once for the call's check and again at each plan lookup. A :class:`Recipe`
is the tuple of its shapes, hashed by identity (in C, a few instructions)
and compared as a tuple. Each is made once, by :data:`EXTENDED` from the
recipe before it and the new call's shape (only that shape is hashed), and
found again for the same shapes: equal recipes are then one object.

Soundness does not rest on that: a table still finds a key only if it is
equal, shape for shape, to the one asked for. Two equal recipes made apart
(after :data:`EXTENDED` forgot one) are merely two keys of one shape.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable


class Recipe(tuple):
    """The shapes of a QuerySet's calls, hashed by identity (see the module)."""

    __slots__ = ()

    # (object's own hash slot, called in C: no Python frame per hash.)
    __hash__ = object.__hash__

    # (Copied and pickled as the recipe of its shapes: a copy, a deepcopy or
    # an unpickled QuerySet finds the recipe object of this process.)
    def __reduce__(self) -> tuple:
        return (recipe_of, (tuple(self),))


#: The recipe of no calls (a manager's ``all()``).
EMPTY = Recipe()


class _Extensions(dict):
    """``(recipe, shape)`` -> the recipe of ``recipe``'s calls and a call of ``shape``.

    Made on first use (``__missing__``): a recipe found again costs one
    dict lookup in C, no Python call. Bounded: the oldest goes first; a
    recipe forgotten is made again as a new object (a new key, not a wrong
    one).
    """

    __slots__ = ()

    def __missing__(self, key: tuple) -> Recipe:
        # (The table is shared by every thread's loop: a miss, the rare
        # path, changes it under a lock, so that two threads never evict
        # the same oldest entry nor make two objects of one recipe at once.
        # A hit stays one lookup in C, which a change under the lock never
        # shows half done.)
        with _missing_lock:
            found = dict.get(self, key)
            if found is None:
                recipe, shape = key
                if len(self) >= EXTENSIONS_MAX:
                    del self[next(iter(self))]
                found = self[key] = Recipe((*recipe, shape))
            return found

    def clear(self) -> None:
        """Forget every recipe, and the tables that keep recipes made here
        (see :func:`cleared_with`): after it, a recipe found anywhere is
        one this table makes, as ``recipe_of`` (a copy, a pickle) finds."""
        with _missing_lock:
            dict.clear(self)
            for table in _cleared_with:
                table.clear()


#: ``EXTENDED[recipe, shape]``: the recipe of ``recipe``'s calls followed by
#: a call of ``shape`` (only ``shape`` is hashed: ``recipe`` by identity).
EXTENDED: dict[tuple, Recipe] = _Extensions()
_missing_lock = threading.Lock()
EXTENSIONS_MAX = 10_000
_cleared_with: list[dict] = []


def cleared_with(table: dict) -> None:
    """Clear ``table`` (one that keeps recipes this module made, by shape)
    whenever :data:`EXTENDED` is cleared.

    (A table that keeps the recipe after a call, to skip EXTENDED's own
    lookup, would otherwise keep giving recipes EXTENDED no longer makes:
    equal ones, but other keys of the plan cache than a copy's. An entry
    EXTENDED evicts when full leaves such a table a second key of the
    same shape, as the module says, never a wrong one.)
    """
    _cleared_with.append(table)


def recipe_of(shapes: Iterable[Any]) -> Recipe:
    """The recipe of these shapes, in this order."""
    recipe = EMPTY
    for shape in shapes:
        recipe = EXTENDED[recipe, shape]
    return recipe
