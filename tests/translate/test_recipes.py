"""Recipes: one object per recipe, hashed by identity, equal as tuples."""

from __future__ import annotations

import copy
import sys
import threading
import pickle

from vinyl.translate import recipes
from vinyl.translate.recipes import EMPTY, EXTENDED, Recipe, recipe_of
from vinyl.translate.shapes import step_shape


def _shape(method: str, **kwargs: object) -> object:
    found = step_shape(method, (), kwargs)
    assert found is not None
    return found[0]


def test_the_same_shapes_give_the_same_recipe_object():
    name, age = _shape("filter", name="Ann"), _shape("filter", age__gte=3)
    recipe = EXTENDED[EXTENDED[EMPTY, name], age]
    # Shapes made again from other values: the same object, found by the last shape only.
    assert EXTENDED[EXTENDED[EMPTY, _shape("filter", name="Bob")], _shape("filter", age__gte=9)] is recipe
    assert recipe_of([name, age]) is recipe
    assert recipe == (name, age) and type(recipe) is Recipe
    assert EXTENDED[EXTENDED[EMPTY, age], name] != recipe


def test_a_recipe_copied_or_pickled_is_the_recipe_of_this_process():
    recipe = recipe_of([_shape("filter", name="Ann"), _shape("order_by")])
    for copied in (copy.copy(recipe), copy.deepcopy(recipe), pickle.loads(pickle.dumps(recipe))):
        assert copied is recipe
    assert copy.deepcopy(EMPTY) is EMPTY and pickle.loads(pickle.dumps(EMPTY)) is EMPTY


def test_a_forgotten_recipe_made_again_is_another_key_of_the_same_recipe():
    # Its hash is its identity: a table keyed by the old object does not
    # find the new one (a second key), and never finds another recipe's entry.
    shapes = [_shape("filter", name="Ann"), _shape("filter", age=1)]
    old = recipe_of(shapes)
    table = {old: "old"}
    EXTENDED.clear()
    new = recipe_of(shapes)
    assert new is not old and new == old
    table[new] = "new"
    assert table[old] == "old" and table[new] == "new"


def test_the_table_of_extensions_is_bounded(monkeypatch):
    monkeypatch.setattr(recipes, "EXTENSIONS_MAX", 3)
    EXTENDED.clear()
    first = EXTENDED[EMPTY, _shape("filter", a=1)]
    for name in ("b", "c", "d"):
        EXTENDED[EMPTY, _shape("filter", **{name: 1})]
    assert len(EXTENDED) == 3
    # The oldest went first: made again, it is a new object, equal to the old.
    again = EXTENDED[EMPTY, _shape("filter", a=1)]
    assert again is not first and again == first


def test_threads_that_miss_at_once_share_one_bounded_table(monkeypatch):
    # Every thread's loop uses the one table: misses from several threads
    # at once, the table full and evicting, neither fail nor leave it past
    # its bound.
    monkeypatch.setattr(recipes, "EXTENSIONS_MAX", 4)
    EXTENDED.clear()
    shapes = [_shape("filter", **{f"f{k}": 1}) for k in range(12)]
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def churn(offset: int) -> None:
        try:
            start.wait()
            for k in range(3000):
                EXTENDED[EMPTY, shapes[(k + offset) % len(shapes)]]
        except BaseException as exc:  # (the assertion below reports it)
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=churn, args=(k,)) for k in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(EXTENDED) <= 4
