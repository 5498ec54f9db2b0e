"""Shapes of lookup calls: what part of a call is structure, what is a slot value."""

from __future__ import annotations

import copy
import pickle

from django.db.models import F, Prefetch

from vinyl.translate import shapes
from vinyl.translate.shapes import _slot_kind, step_shape


def test_a_list_of_integers_has_each_integers_own_kind():
    # Long integer lists (prefetching's key__in=[...]) take a shortcut: each
    # kind must stay the one a single integer gets (range edges, sign, zero).
    values = [0, 1, 32767, 32768, 65535, 65536, 2**31 - 1, -1, -32768, 2**31, 2**32, 2**63 + 5, -(2**70), 7, 7]
    for key in ("id__in", "id__range"):  # (grouped by kind, or in their order: see below)
        shape, slots = step_shape("filter", (), {key: values})
        assert sorted(slots) == sorted(dict.fromkeys(values) if key == "id__in" else values)
        assert shape == ("filter", ((key, list, tuple(_slot_kind(v) for v in slots)),))


def test_an_in_list_within_one_size_band_has_each_integers_own_kind():
    # A list whose integers all fall in one size band gets its kinds at once
    # (min and max): each must stay the one a single integer gets, at the
    # edges of every band, with repeats and None dropped as Django drops them.
    bands = [(0, 32767), (32768, 65535), (65536, 2**31 - 1), (-5, 3), (2**31, 2**31 + 2)]
    for low, high in bands:
        for values in ([low, high, low], [high, None, low, high], [low], [high, low + 1, None, None]):
            shape, slots = step_shape("filter", (), {"id__in": list(values)})
            unique = [v for v in dict.fromkeys(values) if v is not None]
            # (Integers of several kinds go in ascending order: see below.)
            assert list(slots) == (unique if len({_slot_kind(v) for v in unique}) == 1 else sorted(unique))
            kinds = tuple(_slot_kind(v) for v in slots)
            marked = (None,) if None in values else ()
            assert shape == ("filter", (("id__in", list, kinds, *marked),))


def test_an_in_list_of_several_size_bands_is_ascending_with_each_integers_own_kind():
    # Integers of several bands in [0, 2**31) (a prefetch's keys past
    # 32,767) get their kinds by band runs of the ascending list: each must
    # stay the one a single integer gets, at every band edge, and the
    # caller's list is put in that order (repeats and None dropped, None
    # marked), as for any list of several kinds.
    edges = [0, 1, 32767, 32768, 32769, 65535, 65536, 65537, 2**31 - 2, 2**31 - 1]
    for values in (
        edges[::-1],
        [40000, 5, 40000, 70000, None, 6],
        [32768, 32767],
        [65536, 65535, 65536],
        list(range(49990, 50010)) + list(range(5, 25)),
    ):
        for kind in (list, tuple):
            kwargs = {"id__in": kind(values)}
            shape, slots = step_shape("filter", (), kwargs)
            unique = sorted(v for v in dict.fromkeys(values) if v is not None)
            assert list(slots) == unique
            marked = (None,) if None in values else ()
            assert shape == ("filter", (("id__in", list, tuple(_slot_kind(v) for v in unique), *marked),))
            assert kwargs["id__in"] == kind([*unique, *marked])


def test_holds_none_finds_only_none_itself():
    # (An IN list holding None compiles differently; a value equal to None
    # without being it is not None.)
    class EqualsEverything:
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    assert shapes.holds_none("id__in", [1, None, 2])
    assert not shapes.holds_none("id__in", [1, 2])
    assert not shapes.holds_none("id__in", [EqualsEverything()])
    assert not shapes.holds_none("id", [None])


def test_every_order_of_an_in_list_has_one_shape():
    # An IN list's values grouped by kind (integers in ascending order,
    # other values each kind's in the list's order), in Django's query too:
    # its order changes no row, and the shape keeps which kind each
    # parameter is (PostgreSQL casts it by its size).
    values = [40000, 5, 2**40, None, 40001, 6, -3, 5, 2**31 - 1, "x"]
    shapes = set()
    for turn in range(len(values)):
        given = values[turn:] + values[:turn]
        kwargs = {"pages__in": given, "title": "t"}
        shape, slots = step_shape("filter", (), kwargs)
        shapes.add(shape)
        listed, title = slots[:-1], slots[-1]
        assert title == "t" and shape[1][0][2] == tuple(_slot_kind(v) for v in listed)
        assert sorted(map(repr, listed)) == sorted(map(repr, dict.fromkeys(v for v in given if v is not None)))
        assert kwargs["pages__in"] == [*listed, None]
        small = [v for v in dict.fromkeys(given) if type(v) is int and 0 <= v < 32768]
        assert [v for v in listed if type(v) is int and 0 <= v < 32768] == small
    assert len(shapes) == 1
    # Integers only: in ascending order, repeats dropped.
    kwargs = {"id__in": (2**40, 70000, 40000, 5, 40001, 6, 2**40)}
    assert step_shape("filter", (), kwargs)[1] == (5, 6, 40000, 40001, 70000, 2**40)
    assert kwargs["id__in"] == (5, 6, 40000, 40001, 70000, 2**40)
    # One kind, or a list already grouped: the caller's list is kept as it is.
    for given in ([7, 7, 3, None], [5, 40000, 40000, 2**40]):
        kwargs = {"id__in": given}
        step_shape("filter", (), kwargs)
        assert kwargs["id__in"] is given
    # Lists of other lookups keep their order.
    kwargs = {"id__range": (40000, 5)}
    assert step_shape("filter", (), kwargs)[1] == (40000, 5) and kwargs["id__range"] == (40000, 5)


def test_a_list_with_a_boolean_among_integers_is_no_slot_list():
    # A boolean is no integer slot (its own SQL on some backends): the list
    # keeps Django's compilation every time.
    assert step_shape("filter", (), {"id__in": [True, 5]}) is None



def test_an_integer_keyword_has_the_kind_of_any_integer_slot():
    # A single integer takes a shortcut up to 2**31 (keys of most tables):
    # its kind must stay _slot_kind's at every edge.
    for value in (0, 1, 32767, 32768, 65535, 65536, 2**31 - 1, 2**31, 2**32, 2**63, -1, -32768, -(2**40)):
        shape, slots = step_shape("filter", (), {"id__gte": value, "pages": 3})
        assert shape == ("filter", (("id__gte", _slot_kind(value)), ("pages", _slot_kind(3))))
        assert slots == (value, 3)
    # A boolean is structure, not an integer slot.
    assert step_shape("filter", (), {"flag": True}) == (("filter", (("flag", True),)), ())


def test_slices_have_their_offsets_as_slots_and_their_first_limits_as_shape(monkeypatch):
    def shaped(k: slice) -> tuple:
        return step_shape("__getitem__", (k,), {})

    # The first LITERAL_LIMITS distinct limits are shape (a literal LIMIT).
    admitted: set[int] = set()
    monkeypatch.setattr(shapes, "_literal_limits", admitted)
    assert shaped(slice(None, 100)) == (("slice", "bounds", None, 100), ())
    assert shaped(slice(0, 10)) == (("slice", "bounds", None, 10), ())
    assert shaped(slice(5, 15)) == (("slice", "bounds", _slot_kind(5), 10), (5,))
    assert shaped(slice(70000, 70100)) == (("slice", "bounds", _slot_kind(70000), 100), (70000,))
    assert shaped(slice(70000, None)) == (("slice", "bounds", _slot_kind(70000), None), (70000,))
    assert shaped(slice(None, None)) == (("slice", "bounds", None, None), ())
    assert admitted == {100, 10}
    # Later ones are slots, with their kinds as shape; the first stay shape.
    admitted.update(range(1000, 1000 + shapes.LITERAL_LIMITS - 2))
    assert shaped(slice(None, 40000)) == (("slice", "bounds", None, _slot_kind(40000)), (40000,))
    assert shaped(slice(None, 7)) == (("slice", "bounds", None, _slot_kind(7)), (7,))
    assert shaped(slice(5, 12)) == (("slice", "bounds", _slot_kind(5), _slot_kind(7)), (5, 7))
    assert shaped(slice(5, 15)) == (("slice", "bounds", _slot_kind(5), 10), (5,))
    assert len(admitted) == shapes.LITERAL_LIMITS and 7 not in admitted
    # Empty, negative or non-integer bounds are shapes by value.
    for k in (slice(5, 5), slice(6, 2), slice(-1, None), slice(None, -3), slice("a", None), slice(None, 2.0)):
        assert shaped(k) == (("slice", k.start, k.stop), ())
    assert shaped(slice(None, 10, 2)) is None
    assert step_shape("__getitem__", (3,), {}) is None


def test_calls_of_names_and_flags_are_structure():
    class Name(str):
        pass

    assert step_shape("order_by", ("id", "-pages"), {}) == (("order_by", ("id", "-pages"), ()), ())
    assert step_shape("order_by", (Name("id"),), {}) == (("order_by", (Name("id"),), ()), ())
    assert step_shape("values_list", ("id",), {"named": False, "flat": True}) == (
        ("values_list", ("id",), (("flat", True), ("named", False))),
        (),
    )
    assert step_shape("select_for_update", (), {"of": (), "nowait": False}) is None
    assert step_shape("order_by", (F("id").desc(),), {}) is None
    assert step_shape("values_list", ("id",), {"flat": 1}) is None
    shape, slots = step_shape("prefetch_related", ("book_set", Prefetch("tags")), {})
    assert shape[0] == "prefetch_related" and shape[1][0] == "book_set" and slots == ()


def test_update_expressions_of_f_and_constants_are_keyed_by_value():
    from decimal import Decimal

    from django.db.models import IntegerField, Value

    from vinyl.translate.shapes import update_shape

    def key(expression):
        return update_shape({"n": expression})[0]

    assert key(F("n") + 1) == key(F("n") + 1)
    assert key(F("n") + 1) == ("update", (("n", "=", ("C", "+", ("F", "n"), ("V", int, 1))),))
    assert key(F("n") + 1) != key(F("n") + 2) != key(F("m") + 2)
    assert key(F("n") + 1) != key(F("n") + 1.0) != key(F("n") + Decimal(1))
    assert key(F("n") + 1) != key(F("n") - 1)
    assert key((F("n") + 1) * F("m")) == ("update", (("n", "=", ("C", "*", ("C", "+", ("F", "n"), ("V", int, 1)), ("F", "m"))),))
    assert key(1 + F("n")) == ("update", (("n", "=", ("C", "+", ("V", int, 1), ("F", "n"))),))
    # An explicit output field not bound to a model: Django's identity keeps
    # only its class, and compares constants by == (Value(True) equals
    # Value(1)): no key, the update goes to Django.
    assert update_shape({"n": F("n") + Value(1, output_field=IntegerField())}) is None
    assert update_shape({"n": Value(True, output_field=IntegerField())}) is None
    # An expression whose identity holds only names, ints and bound fields is its own key.
    from django.db.models.functions import Lower

    assert key(Lower("n"))[1][0][2] == Lower("n")


def test_a_long_list_of_one_kind_has_that_kind_and_its_length_as_shape():
    # (A plan cache key is hashed at every lookup: a long list's shape is
    # its one kind and its count, not the kind repeated once per value.)
    def kinds_of(values: list) -> tuple:
        shape, slots = step_shape("filter", (), {"id__in": values})
        assert list(slots) == list(dict.fromkeys(values))
        ((_key, _type, kinds),) = shape[1]
        return kinds

    hundred = kinds_of(list(range(1, 101)))
    assert type(hundred) is shapes.Run and len(hundred) == 100
    assert hundred == kinds_of(list(range(200, 100, -1))) == kinds_of(list(range(1, 101)) + [5, 7])
    assert hash(hundred) == hash(kinds_of(list(range(301, 401))))
    assert hundred != kinds_of(list(range(1, 100)))  # another count
    assert hundred != kinds_of(list(range(40000, 40100)))  # another size band
    assert hundred != kinds_of([-5, *range(1, 100)])  # another kind among them: each kind kept
    text = kinds_of([f"name {i}" for i in range(20)])
    assert type(text) is shapes.Run and len(text) == 20
    assert text != kinds_of([f"name {i}" for i in range(21)])
    # Short lists keep a kind per value; no three values' kinds equal a run.
    three = kinds_of([1, 2, 3])
    assert type(three) is tuple and three == (_slot_kind(1),) * 3
    assert shapes.Run(_slot_kind(1), 3) != three
    # A queryset's recipe goes through copies and pickles with it.
    for copied in (copy.deepcopy(hundred), copy.copy(hundred), pickle.loads(pickle.dumps(hundred))):
        assert type(copied) is shapes.Run and copied == hundred and len(copied) == 100


def test_the_long_list_span_of_a_run_is_its_count_of_values():
    shape, slots = step_shape("filter", (), {"id__in": list(range(1, 201)), "age": 3})
    recipe = (shape, ("order_by", ("id",), ()))
    # Keywords sorted: age's slot first, then the list's 200.
    assert slots == (3, *range(1, 201))
    assert shapes.long_list_span(recipe) == (1, 200)


def test_one_update_value_has_the_shape_it_has_among_others():
    # update_shape shapes a single field apart (text, integers, F() and a
    # constant): the same shape and slots as the loop gives that field
    # among others ("zzz" sorts last).
    from decimal import Decimal

    from django.db.models import IntegerField, Value

    from vinyl.translate.shapes import update_shape

    values = [
        "abc", "123", "a:b", "", "0" * 32, "12345678-1234-5678-1234-567812345678",
        1, -1, 32767, 32768, 2**31, 2**63, -(2**40), 0, True, False, None, 1.5, Decimal("2.50"),
        F("n") + 1, F("n") - 2.5, F("n") * Decimal("1.5"), F("n") + "x", F("n") + 0, F("n") + True,
        1 + F("n"), F("n") + F("m"), (F("n") + 1) * 2, F("n") + Value(1), F("n") + Value(1, output_field=IntegerField()),
        Value(3), F("n"),
    ]  # fmt: skip
    for value in values:
        alone = update_shape({"n": value})
        among = update_shape({"n": value, "zzz": 5})
        if among is None:
            assert alone is None, value
            continue
        assert alone is not None, value
        assert alone[0] == ("update", among[0][1][:1]), value
        assert alone[1] == among[1][:-1], value


def test_two_integer_keywords_have_the_shape_they_have_among_others():
    # step_shape shapes two integer keywords apart: the same shape and
    # slots, in sorted order, as the loop gives them with a third keyword.
    edges = (0, 1, 32767, 32768, 65535, 65536, 2**31 - 1, 2**31, 2**63, -1, -(2**40))
    for first in edges:
        for second in edges:
            for keys in (("id__gte", "id__lt"), ("id__lt", "id__gte")):
                kwargs = dict(zip(keys, (first, second)))
                shape, slots = step_shape("filter", (), dict(kwargs))
                among = step_shape("filter", (), {**kwargs, "zzz": "x"})
                assert among is not None
                assert shape == ("filter", among[0][1][:2])
                assert slots == among[1][:2]
    # Not two integers (a boolean, a text, a list): the loop's shape.
    for kwargs in ({"a": 1, "b": True}, {"a": "1", "b": 2}, {"a": [1], "b": 2}):
        assert step_shape("filter", (), dict(kwargs))[0] == ("filter", step_shape("filter", (), {**kwargs, "zzz": "x"})[0][1][:2])
