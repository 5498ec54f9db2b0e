"""A plan's parameters from a query's slot values."""

from __future__ import annotations

from vinyl.translate.plans import Plan


def _plan(positions: tuple) -> Plan:
    return Plan("SELECT 1", positions, lambda rows: rows)


def test_slot_values_in_order_are_the_parameters_themselves():
    values = (5, "x", 7)
    assert _plan((0, 1, 2)).params(values) is values
    assert _plan(()).params(()) == ()


def test_other_positions_pick_reorder_adapt_or_add_constants():
    values = (5, "x", 7)
    assert _plan((0, 1)).params(values) == (5, "x")  # a slot that is no parameter
    assert _plan((2, 0, 1)).params(values) == (7, 5, "x")
    assert _plan((0, 0, 1, 2)).params(values) == (5, 5, "x", 7)
    assert _plan((0, (21,), 1, 2)).params(values) == (5, 21, "x", 7)
    assert _plan(((1, str.upper), 0, 2)).params(values) == ("X", 5, 7)
    # A list of values (not a tuple) is read by position too.
    assert _plan((0, 1, 2)).params([5, "x", 7]) == (5, "x", 7)


def test_constants_among_slot_values_in_their_places():
    # (Picked in C from the values followed by the constants.)
    values = (5, "x", 7)
    assert _plan(((1,), 0, 1)).params(values) == (1, 5, "x")
    assert _plan((0, (None,), 2, ("c",), 1)).params(values) == (5, None, 7, "c", "x")
    assert _plan(((1,), (2,))).params(values) == (1, 2)
    assert _plan(((9,),)).params(values) == (9,)
    assert _plan(((1,), 0, 1)).params([5, "x", 7]) == (1, 5, "x")
