"""Shapes of lookup calls: what part of a call is structure, what is a slot value."""

from __future__ import annotations

from vinyl.translate.shapes import _slot_kind, step_shape


def test_a_list_of_integers_has_each_integers_own_kind():
    # Long integer lists (prefetching's key__in=[...]) take a shortcut: each
    # kind must stay the one a single integer gets (range edges, sign, zero).
    values = [0, 1, 32767, 32768, 65535, 65536, 2**31 - 1, -1, -32768, 2**31, 2**32, 2**63 + 5, -(2**70), 7, 7]
    shape, slots = step_shape("filter", (), {"id__in": values})
    distinct = list(dict.fromkeys(values))
    assert slots == tuple(distinct)
    assert shape == ("filter", (("id__in", list, tuple(_slot_kind(v) for v in distinct)),))


def test_a_list_with_a_boolean_among_integers_is_no_slot_list():
    # A boolean is no integer slot (its own SQL on some backends): the list
    # keeps Django's compilation every time.
    assert step_shape("filter", (), {"id__in": [True, 5]}) is None

