"""Slots a backend adapts (datetimes sent as text) map through its adapter: no database."""

import datetime

from vinyl.translate.shapes import slot_positions

UTC = datetime.timezone.utc
A = datetime.datetime(2024, 1, 1, 12, tzinfo=UTC)
P = datetime.datetime(2024, 1, 2, 13, tzinfo=UTC)


def as_text(value):
    return str(value.astimezone(UTC).replace(tzinfo=None))


ADAPTERS = {datetime.datetime: as_text}


def test_an_adapted_value_is_its_slot_through_the_adapter():
    positions = slot_positions([as_text(A), 5], [A], [as_text(P), 5], [P], ADAPTERS)
    assert positions == ((0, as_text), (5,))


def test_without_adapters_an_adapted_value_keeps_the_shape_off_plans():
    assert slot_positions([as_text(A)], [A], [as_text(P)], [P]) is None


def test_naive_datetimes_are_never_adapted():
    # Django makes them aware in the default zone first (with a warning).
    naive, probe = A.replace(tzinfo=None), P.replace(tzinfo=None)
    assert slot_positions([str(naive)], [naive], [str(probe)], [probe], {datetime.datetime: str}) is None


def test_a_value_the_probe_does_not_follow_is_no_slot():
    # Only the value matches the adapter (a coincidence): not a slot.
    assert slot_positions([as_text(A)], [A], ["other"], [P], ADAPTERS) is None
