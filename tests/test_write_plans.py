"""Writes through compiled plans: update() and create() straight on the driver.

Each test runs a shape more than once, so the second run goes through the
plan, and checks the rows the database holds afterwards.
"""

from __future__ import annotations

import asyncio

import pytest
from django.db import IntegrityError
from django.db.models import F

import vinyl
from tests.testapp.models import Author, Book
from tests.txhelpers import committed_names
from vinyl.translate.plan_cache import plan_cache_for
from vinyl.translate.plans import Unplanned

pytestmark = pytest.mark.usefixtures("vinyl_db")


def write_plans(kind: str) -> int:
    plans = plan_cache_for("vinyl_default")
    return sum(1 for key, plan in plans.items() if key[1] == kind and not isinstance(plan, Unplanned))


async def make(*names: str) -> list:
    return [await Author.vinyl.create(name=n, age=i, email=f"{n}@x") for i, n in enumerate(names)]


async def ages() -> dict[str, int]:
    return dict(await Author.vinyl.order_by("name").values_list("name", "age"))


async def test_update_of_one_shape_updates_each_calls_rows():
    await make("Ann", "Bob", "Cy")
    for name, age in [("Ann", 10), ("Bob", 20), ("Cy", 30), ("Ann", 40)]:
        assert await Author.vinyl.filter(name=name).update(age=age) == 1
    assert await ages() == {"Ann": 40, "Bob": 20, "Cy": 30}
    assert await Author.vinyl.filter(name="nobody").update(age=1) == 0
    assert write_plans("update") == 1


async def test_update_counts_matched_rows_even_when_unchanged():
    await make("Ann", "Bob")
    for _ in range(2):
        assert await Author.vinyl.filter(age__gte=0).update(age=5) == 2


async def test_update_with_expressions_and_different_shapes():
    await make("Ann", "Bob")
    for _ in range(3):
        await Author.vinyl.filter(name="Ann").update(age=F("age") + 1)
    await Author.vinyl.filter(name="Bob").update(age=F("age") * 10)
    await Author.vinyl.filter(name="Bob").update(age=F("age") * 10)
    assert await ages() == {"Ann": 3, "Bob": 100}
    await Author.vinyl.filter(name="Ann").update(email=None)
    await Author.vinyl.filter(name="Bob").update(email=None)
    assert await Author.vinyl.filter(email__isnull=True).count() == 2


async def test_planned_update_rolls_back_with_its_block():
    await make("Ann", "Bob")
    await Author.vinyl.filter(name="Bob").update(age=7)  # the plan exists now
    with pytest.raises(RuntimeError):
        async with vinyl.atomic():
            await Author.vinyl.filter(name="Ann").update(age=99)
            assert (await Author.vinyl.get(name="Ann")).age == 99
            raise RuntimeError("boom")
    assert await ages() == {"Ann": 0, "Bob": 7}


async def test_planned_update_that_fails_is_an_integrity_error_and_dooms_its_block():
    await make("Ann", "Bob")
    await Author.vinyl.filter(name="Cy").update(email="c@x")  # the plan exists now
    with pytest.raises(IntegrityError):
        await Author.vinyl.filter(name="Ann").update(email="Bob@x")
    async with vinyl.atomic():
        await Author.vinyl.filter(name="Bob").update(email="b@x")
        with pytest.raises(IntegrityError):
            await Author.vinyl.filter(name="Ann").update(email="b@x")
    # The error inside the block rolled the whole block back, as in Django.
    assert await Author.vinyl.order_by("name").values_list("email", flat=True) == ["Ann@x", "Bob@x"]
    # A nested block keeps the error to itself.
    async with vinyl.atomic():
        await Author.vinyl.filter(name="Bob").update(email="b@x")
        with pytest.raises(IntegrityError):
            async with vinyl.atomic():
                await Author.vinyl.filter(name="Ann").update(email="b@x")
    assert await Author.vinyl.order_by("name").values_list("email", flat=True) == ["Ann@x", "b@x"]
    assert await committed_names() == ["Ann", "Bob"]


async def test_create_of_one_model_shares_one_insert_and_returns_saved_instances():
    authors = [await Author.vinyl.create(name=n, age=i) for i, n in enumerate(["Ann", "Bob", "Cy"])]
    assert write_plans("insert") == 1
    assert len({a.pk for a in authors}) == 3 and all(a.pk is not None for a in authors)
    assert all(not a._state.adding and a._state.db == "vinyl_default" for a in authors)
    assert await ages() == {"Ann": 0, "Bob": 1, "Cy": 2}
    # Defaults apply; the instance is the one a later get() returns.
    dan = await Author.vinyl.create(name="Dan")
    assert dan.age == 0 and dan.email is None
    assert (await Author.vinyl.get(pk=dan.pk)).name == "Dan"


async def test_create_with_foreign_keys_decimals_and_dates():
    import datetime
    import decimal

    ann = await Author.vinyl.create(name="Ann")
    for n in range(3):
        book = await Book.vinyl.create(
            title=f"b{n}", author=ann, pages=n, price=decimal.Decimal("1.25"), published=datetime.date(2024, 1, n + 1)
        )
        assert book.author_id == ann.pk
    rows = await Book.vinyl.order_by("title").values_list("title", "author_id", "price", "published")
    assert rows == [
        (f"b{n}", ann.pk, decimal.Decimal("1.25"), datetime.date(2024, 1, n + 1)) for n in range(3)
    ]
    with pytest.raises(ValueError, match="unsaved related object"):
        await Book.vinyl.create(title="x", author=Author(name="unsaved"))


async def test_planned_create_of_values_whose_parameters_change_kind():
    # One INSERT plan; on PostgreSQL its placeholders are typed by value
    # (int4, int8, numeric, float8, timestamp or timestamptz) and the
    # converted SQL is kept per kind: each row must read back as written.
    import datetime

    from tests.testapp.models import AllTypes

    aware = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)
    values = [
        (1, 1.5, aware),
        (2**31, 2.5, aware),
        (-(2**31) - 1, -0.0, aware),
        (2**40, 0.0, aware),
        (7, -0.0, aware),
        (None, None, None),
        (2**62, 3.0, aware),
        (8, 4.0, aware),
    ]
    created = [await AllTypes.vinyl.create(big=big, floating=f, moment=m) for big, f, m in values]
    assert write_plans("insert") == 1
    rows = await AllTypes.vinyl.order_by("pk").values_list("pk", "big", "floating", "moment")
    assert [(pk, big, f, m) for pk, big, f, m in rows] == [
        (obj.pk, big, f, m) for obj, (big, f, m) in zip(created, values)
    ]


async def test_planned_create_of_values_its_fields_convert():
    # The plan reads plain values as they are (str for a CharField, int or
    # None for an IntegerField); any other value goes through the field's
    # own preparation, as in Django.
    class Name(str):
        pass

    first = await Author.vinyl.create(name="Ann", age=1, email=None)
    converted = await Author.vinyl.create(name=5, age="7", email=Name("c@x"))
    plain = await Author.vinyl.create(name="Dan", age=3, email="d@x")
    assert write_plans("insert") == 1
    assert (converted.name, converted.age) == (5, "7")  # the instance keeps them, as Django's
    rows = await Author.vinyl.order_by("pk").values_list("pk", "name", "age", "email")
    assert rows == [(first.pk, "Ann", 1, None), (converted.pk, "5", 7, "c@x"), (plain.pk, "Dan", 3, "d@x")]


async def test_create_with_a_given_primary_key_and_a_default_primary_key():
    from tests.testapp.models import UUIDKeyed

    first = await Author.vinyl.create(name="Ann")
    given = await Author.vinyl.create(id=first.pk + 100, name="Bob")
    again = await Author.vinyl.create(id=first.pk + 101, name="Cy")
    assert (given.pk, again.pk) == (first.pk + 100, first.pk + 101)
    keyed = [await UUIDKeyed.vinyl.create(label=str(n)) for n in range(2)]
    assert keyed[0].pk != keyed[1].pk
    assert sorted(await UUIDKeyed.vinyl.values_list("pk", flat=True)) == sorted(k.pk for k in keyed)


async def test_planned_create_errors_and_rollbacks():
    await make("Ann", "Bob")
    with pytest.raises(IntegrityError):
        await Author.vinyl.create(name="Ann2", email="Ann@x")
    with pytest.raises(RuntimeError):
        async with vinyl.atomic():
            await Author.vinyl.create(name="Cy")
            raise RuntimeError("boom")
    async with vinyl.atomic():
        await Author.vinyl.create(name="Dan")
        with pytest.raises(IntegrityError):
            async with vinyl.atomic():
                await Author.vinyl.create(name="Eve", email="Bob@x")
    assert await committed_names() == ["Ann", "Bob", "Dan"]
    with pytest.raises(TypeError):
        await Author.vinyl.create(name="x", nonsense=1)


async def test_create_reads_the_new_key_where_the_backend_gives_it(backend):
    """RETURNING on PostgreSQL and SQLite; on MySQL/MariaDB the insert id of
    the OK packet, which needs no result set. Concurrent creates inside one
    block (one shared connection) each get their own key."""
    from tests.queryset_api._sql import captured_sql

    await make("warm1", "warm2")
    with captured_sql() as statements:
        ann = await Author.vinyl.create(name="Ann")
    (sql, _), = statements
    assert sql.startswith("INSERT") and ("RETURNING" in sql) == (backend != "mysql")
    assert (await Author.vinyl.get(pk=ann.pk)).name == "Ann"
    async with vinyl.atomic():
        made = await asyncio.gather(*(Author.vinyl.create(name=f"t{i}") for i in range(10)))
    names = dict(await Author.vinyl.filter(name__startswith="t").values_list("pk", "name"))
    assert names == {a.pk: a.name for a in made}
