"""Building large results with the garbage collector paused: no database."""

import gc

import pytest

from vinyl.translate.gcpause import GC_PAUSE_ROWS, batched, batched_rows, paused_gc


def _seen_collector(rows: list) -> bool:
    return gc.isenabled()


def test_large_batches_are_built_with_the_collector_paused_then_resumed():
    build = batched(_seen_collector)
    assert gc.isenabled()
    assert build([()] * GC_PAUSE_ROWS) is False
    assert gc.isenabled()
    assert build([()] * (GC_PAUSE_ROWS - 1)) is True  # small results: not worth it


def test_extra_arguments_reach_the_builder():
    assert batched(lambda rows, a, b: (len(rows), a, b))([1, 2], "a", "b") == (2, "a", "b")


def test_a_collector_the_application_disabled_stays_disabled():
    gc.disable()
    try:
        assert batched(_seen_collector)([()] * GC_PAUSE_ROWS) is False
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_resumes_when_building_fails():
    def broken(rows: list) -> None:
        raise ValueError("bad row")

    with pytest.raises(ValueError):
        batched(broken)([()] * GC_PAUSE_ROWS)
    assert gc.isenabled()


def test_a_driver_batch_is_let_go_once_built():
    # (The driver's list outlives the read: emptied, its rows are freed at
    # once instead of being walked by the next collection.)
    rows = [(k, f"row {k}") for k in range(GC_PAUSE_ROWS)]
    built = batched_rows(lambda given: [(gc.isenabled(), key) for key, _ in given])(rows)
    assert built == [(False, k) for k in range(GC_PAUSE_ROWS)]
    assert rows == []
    assert gc.isenabled()


def test_a_small_driver_result_and_a_tuple_of_rows_are_left_as_given():
    small = [(1,), (2,)]
    assert batched_rows(len)(small) == 2
    assert small == [(1,), (2,)]
    rows = tuple((k,) for k in range(GC_PAUSE_ROWS))
    assert batched_rows(len)(rows) == GC_PAUSE_ROWS
    assert len(rows) == GC_PAUSE_ROWS


def test_a_driver_batch_whose_build_fails_is_kept():
    def broken(rows: list) -> None:
        raise ValueError("bad row")

    rows = [()] * GC_PAUSE_ROWS
    with pytest.raises(ValueError):
        batched_rows(broken)(rows)
    assert len(rows) == GC_PAUSE_ROWS
    assert gc.isenabled()
