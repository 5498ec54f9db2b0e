"""Batch sizes under asyncpg's parameter limit: arithmetic only, no database."""

from django.db import connections

from tests.qsapp.models import Gadget, Wide


def ops():
    return connections["vinyl_postgresql"].ops


def test_asyncpg_takes_at_most_32767_parameters():
    assert connections["vinyl_postgresql"].features.max_query_params == 32767
    # asyncmy inlines parameters on the client: no limit.
    assert connections["vinyl_mysql"].features.max_query_params is None


def test_insert_and_delete_batches_bind_one_parameter_per_column():
    fields = [f for f in Wide._meta.concrete_fields if not f.primary_key]
    assert ops().bulk_batch_size(fields, range(100_000)) == 32767 // 15
    assert ops().bulk_batch_size([Wide._meta.pk], range(100_000)) == 32767
    assert ops().bulk_batch_size([], range(7)) == 7


def test_bulk_update_batches_count_the_key_and_each_case_branch():
    pk = Gadget._meta.pk
    fields = [Gadget._meta.get_field("name"), Gadget._meta.get_field("count")]
    # Per object: pk IN (...) once, then WHEN pk = %s THEN %s per field.
    assert ops().bulk_batch_size([pk, pk, *fields], range(100_000)) == 32767 // (1 + 2 * 2)
