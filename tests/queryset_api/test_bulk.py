"""bulk_create and bulk_update, as Django documents them, on both databases."""

from __future__ import annotations

import datetime
import decimal

import pytest
from django.db import IntegrityError, NotSupportedError, connections
from django.db.models import F, Value

from tests.qsapp.models import Gadget, Wide
from tests.queryset_api._sql import captured_sql

pytestmark = pytest.mark.usefixtures("vinyl_db")

ASYNCPG_MAX_PARAMS = 32767


def within_parameter_limit(statements: list) -> bool:
    """Does each statement bind no more parameters than the driver takes?"""
    limit = connections["vinyl_default"].features.max_query_params
    if connections["vinyl_default"].vendor == "postgresql":
        assert limit == ASYNCPG_MAX_PARAMS
    # asyncmy inlines parameters on the client: it has no such limit.
    return limit is None or all(len(params or ()) <= limit for _, params in statements)


def gadgets(*codes: str, **fields) -> list[Gadget]:
    return [Gadget.vinyl.model(code=code, name=code.upper(), **fields) for code in codes]


async def test_bulk_create_sets_primary_keys_in_order():
    objs = await Gadget.vinyl.bulk_create(gadgets("a", "b", "c"))
    assert [o.pk for o in objs] == [o.pk for o in await Gadget.vinyl.order_by("code")]
    assert len({o.pk for o in objs}) == 3 and all(o.pk is not None for o in objs)
    assert all(o._state.adding is False and o._state.db == "vinyl_default" for o in objs)
    # The instances are usable at once: save() updates their rows.
    objs[0].name = "changed"
    await objs[0].save()
    assert (await Gadget.vinyl.get(code="a")).name == "changed"


async def test_bulk_create_accepts_instances_of_the_django_model():
    objs = await Gadget.vinyl.bulk_create([Gadget(code="plain", name="p")])
    assert objs[0].pk is not None
    assert (await Gadget.vinyl.get(pk=objs[0].pk)).code == "plain"


async def test_bulk_create_of_nothing_sends_no_sql():
    with captured_sql() as statements:
        assert await Gadget.vinyl.bulk_create([]) == []
    assert statements == []


async def test_bulk_create_batch_size_splits_statements():
    with captured_sql() as statements:
        objs = await Gadget.vinyl.bulk_create(gadgets(*"abcde"), batch_size=2)
    inserts = [sql for sql, _ in statements if sql.startswith("INSERT")]
    assert len(inserts) == 3
    assert all(o.pk is not None for o in objs)
    assert await Gadget.vinyl.count() == 5


async def test_bulk_create_with_invalid_batch_size_raises_value_error():
    with pytest.raises(ValueError):
        await Gadget.vinyl.bulk_create(gadgets("a"), batch_size=0)


async def test_bulk_create_is_all_or_nothing_across_batches():
    await Gadget.vinyl.create(code="taken")
    with pytest.raises(IntegrityError):
        await Gadget.vinyl.bulk_create(gadgets("a", "b", "c", "taken", "e"), batch_size=2)
    assert await Gadget.vinyl.values_list("code", flat=True) == ["taken"]


async def test_bulk_create_ignore_conflicts_skips_duplicates():
    await Gadget.vinyl.create(code="b", name="original")
    await Gadget.vinyl.bulk_create(gadgets("a", "b", "c"), ignore_conflicts=True)
    rows = await Gadget.vinyl.values_list("code", "name")
    assert rows == [("a", "A"), ("b", "original"), ("c", "C")]


async def test_bulk_create_update_conflicts_updates_the_given_fields(backend):
    await Gadget.vinyl.create(code="b", name="original", count=7)
    objs = gadgets("a", "b", count=1)
    options = {"update_fields": ["name"]}
    if connections["vinyl_default"].features.supports_update_conflicts_with_target:
        options["unique_fields"] = ["code"]
    await Gadget.vinyl.bulk_create(objs, update_conflicts=True, **options)
    rows = await Gadget.vinyl.values_list("code", "name", "count")
    # Only update_fields change on conflict: count keeps its value.
    assert rows == [("a", "A", 1), ("b", "B", 7)]
    if backend == "postgresql":
        # PostgreSQL returns the primary keys of inserted and updated rows.
        assert [o.pk for o in objs] == [o.pk for o in await Gadget.vinyl.order_by("code")]


async def test_bulk_create_unique_fields_where_unsupported_raises(backend):
    if connections["vinyl_default"].features.supports_update_conflicts_with_target:
        with pytest.raises(ValueError):  # unique_fields are required there
            await Gadget.vinyl.bulk_create(gadgets("a"), update_conflicts=True, update_fields=["name"])
    else:
        with pytest.raises(NotSupportedError):
            await Gadget.vinyl.bulk_create(
                gadgets("a"), update_conflicts=True, update_fields=["name"], unique_fields=["code"]
            )


async def test_bulk_create_ten_thousand_wide_rows():
    rows = [Wide.vinyl.model(c00=i, c12=datetime.date(2024, 1, 1 + i % 28)) for i in range(10_000)]
    with captured_sql() as statements:
        created = await Wide.vinyl.bulk_create(rows)
    assert within_parameter_limit(statements)
    assert len({o.pk for o in created}) == 10_000 and None not in {o.pk for o in created}
    assert await Wide.vinyl.count() == 10_000
    sample = await Wide.vinyl.get(c00=9_999)
    assert sample.pk == created[-1].pk
    assert (sample.c10, sample.c11, sample.c13, sample.c14) == (decimal.Decimal("10.00"), True, 13.5, "fourteen")


async def test_bulk_create_ten_thousand_rows_one_placeholder_per_value():
    # An expression among the values makes Django bind every value as its
    # own parameter (no UNNEST on PostgreSQL): 150,000 parameters in all,
    # which must be split under the driver's limit of 32,767 per statement.
    rows = [Wide.vinyl.model(c00=i, c14=Value("expr")) for i in range(10_000)]
    with captured_sql() as statements:
        created = await Wide.vinyl.bulk_create(rows)
    assert within_parameter_limit(statements)
    assert len({o.pk for o in created}) == 10_000
    assert await Wide.vinyl.filter(c14="expr").count() == 10_000


# bulk_update -----------------------------------------------------------------


async def test_bulk_update_writes_fields_and_returns_rows_matched():
    objs = await Gadget.vinyl.bulk_create(gadgets("a", "b", "c"))
    for i, obj in enumerate(objs):
        obj.name = f"n{i}"
        obj.count = i * 10
    assert await Gadget.vinyl.bulk_update(objs, ["name", "count"]) == 3
    assert await Gadget.vinyl.values_list("name", "count") == [("n0", 0), ("n1", 10), ("n2", 20)]


async def test_bulk_update_accepts_expressions():
    objs = await Gadget.vinyl.bulk_create(gadgets("a", "b", count=5))
    objs[0].count = F("count") + 1
    objs[1].count = 0
    await Gadget.vinyl.bulk_update(objs, ["count"])
    assert await Gadget.vinyl.values_list("count", flat=True) == [6, 0]


async def test_bulk_update_batch_size_splits_statements():
    objs = await Gadget.vinyl.bulk_create(gadgets(*"abcde"))
    for obj in objs:
        obj.count = 3
    with captured_sql() as statements:
        assert await Gadget.vinyl.bulk_update(objs, ["count"], batch_size=2) == 5
    assert len([s for s, _ in statements if s.startswith("UPDATE")]) == 3
    assert set(await Gadget.vinyl.values_list("count", flat=True)) == {3}


async def test_bulk_update_is_all_or_nothing_across_batches():
    objs = await Gadget.vinyl.bulk_create(gadgets("a", "b", "c", "d"))
    for obj in objs:
        obj.name = "changed"
    objs[3].code = "c"  # the second batch collides with the unique code "c"
    objs[2].code = "c"
    with pytest.raises(IntegrityError):
        await Gadget.vinyl.bulk_update(objs, ["name", "code"], batch_size=2)
    assert await Gadget.vinyl.values_list("code", "name") == [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]


async def test_bulk_update_many_rows_stays_under_the_parameter_limit():
    objs = await Wide.vinyl.bulk_create([Wide.vinyl.model(c00=i) for i in range(6_000)])
    for obj in objs:
        obj.c01, obj.c02, obj.c06 = obj.c00, -obj.c00, f"v{obj.c00}"
    with captured_sql() as statements:
        assert await Wide.vinyl.bulk_update(objs, ["c01", "c02", "c06"]) == 6_000
    assert within_parameter_limit(statements)
    assert await Wide.vinyl.filter(c01=F("c00"), c02=-F("c00")).count() == 6_000
    assert (await Wide.vinyl.get(c00=4321)).c06 == "v4321"


async def test_bulk_update_validates_like_django():
    obj = await Gadget.vinyl.create(code="a")
    with pytest.raises(ValueError):
        await Gadget.vinyl.bulk_update([obj], [])
    with pytest.raises(ValueError):
        await Gadget.vinyl.bulk_update([obj], ["id"])
    with pytest.raises(ValueError):
        await Gadget.vinyl.bulk_update([Gadget.vinyl.model(code="x")], ["name"])
    assert await Gadget.vinyl.bulk_update([], ["name"]) == 0
