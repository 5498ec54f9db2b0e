"""Compiled plans are reused by shape, never by value."""

from __future__ import annotations

import datetime
import decimal

import pytest
from django.db import connections

import vinyl
from tests.testapp.models import Author, Book
from vinyl.translate.plan_cache import plan_cache_for

pytestmark = pytest.mark.usefixtures("vinyl_db")


def plan_count() -> int:
    return len(plan_cache_for("vinyl_default").plans())


async def make(*names: str) -> list:
    return [await Author.vinyl.create(name=n, age=i, email=f"{n}@x") for i, n in enumerate(names)]


async def test_same_shape_with_other_values_returns_its_own_rows():
    ann, bob, cy = await make("Ann", "Bob", "Cy")
    before = plan_count()
    for author in (ann, bob, cy, ann):
        assert (await Author.vinyl.get(pk=author.pk)).name == author.name
        assert [a.name for a in await Author.vinyl.filter(name=author.name)] == [author.name]
        assert await Author.vinyl.filter(age__gte=author.age).count() == 3 - author.age
        assert await Author.vinyl.filter(name=author.name).exists() is True
    assert plan_count() == before + 4


async def test_different_shapes_never_share_a_plan():
    ann, bob, _ = await make("Ann", "Bob", "Cy")
    assert [a.name for a in await Author.vinyl.filter(age=1)] == ["Bob"]
    assert [a.name for a in await Author.vinyl.exclude(age=1)] == ["Ann", "Cy"]
    assert [a.name for a in await Author.vinyl.filter(age__gt=1)] == ["Cy"]
    assert [a.name for a in await Author.vinyl.filter(age__lt=1)] == ["Ann"]
    assert [a.name for a in await Author.vinyl.filter(age=1).order_by("-name")] == ["Bob"]
    assert [a.name for a in await Author.vinyl.order_by("-name")[:2]] == ["Cy", "Bob"]
    assert [a.name for a in await Author.vinyl.order_by("-name")[1:3]] == ["Bob", "Ann"]
    assert await Author.vinyl.filter(age=1).values_list("name", flat=True) == ["Bob"]
    assert await Author.vinyl.filter(age=1).values("name") == [{"name": "Bob"}]
    assert await Author.vinyl.filter(age=1).values_list("name", "age") == [("Bob", 1)]
    assert await Author.vinyl.filter(pk__in=[ann.pk, bob.pk]).count() == 2
    assert await Author.vinyl.filter(pk__in=[ann.pk]).count() == 1


async def test_transformed_values_are_bound_correctly():
    await make("Ann", "Bob")
    # contains wraps the value in %...%: never reused with the raw value.
    for needle, expected in (("nn", ["Ann"]), ("o", ["Bob"]), ("%", [])):
        assert [a.name for a in await Author.vinyl.filter(name__contains=needle)] == expected
    # Equal slot values: the mapping is ambiguous, so nothing wrong is cached.
    await Author.vinyl.filter(name="Ann").update(email="Ann")
    assert [a.name for a in await Author.vinyl.filter(name="Ann", email="Ann")] == ["Ann"]
    assert [a.name for a in await Author.vinyl.filter(name="Ann", email="Bob")] == []
    assert [a.name for a in await Author.vinyl.filter(name="Bob", email="Bob@x")] == ["Bob"]


async def test_get_through_a_plan_raises_does_not_exist_and_multiple():
    await make("Ann", "Bob")
    await Author.vinyl.get(name="Ann")
    with pytest.raises(Author.DoesNotExist):
        await Author.vinyl.get(name="nobody")
    await Author.vinyl.filter(name="Bob").update(age=0)
    with pytest.raises(Author.MultipleObjectsReturned):
        await Author.vinyl.get(age=0)
    with pytest.raises(Author.DoesNotExist):
        await Author.vinyl.get(age=99)


async def test_select_related_rows_through_a_plan():
    ann, bob = await make("Ann", "Bob")
    await Book.vinyl.create(title="a", author=ann, price=decimal.Decimal("1.50"), published=datetime.date(2024, 1, 2))
    await Book.vinyl.create(title="b", author=bob, price=decimal.Decimal("2.25"))
    for title, name in (("a", "Ann"), ("b", "Bob"), ("a", "Ann")):
        book = (await Book.vinyl.select_related("author").filter(title=title))[0]
        assert book["author"].name == name
        assert isinstance(book.price, decimal.Decimal)
    assert (await Book.vinyl.get(title="a")).published == datetime.date(2024, 1, 2)


async def test_int4_and_int8_values_get_their_own_plans(backend):
    ann, _ = await make("Ann", "Bob")
    assert await Author.vinyl.filter(age__lt=2**40).count() == 2
    assert await Author.vinyl.filter(age__lt=1).count() == 1
    assert await Author.vinyl.filter(age__lt=-(2**40)).count() == 0


async def test_plans_work_inside_atomic_and_see_its_writes():
    async with vinyl.atomic():
        ann = await Author.vinyl.create(name="Ann")
        assert (await Author.vinyl.get(pk=ann.pk)).name == "Ann"
        assert (await Author.vinyl.get(pk=ann.pk)).name == "Ann"
        assert await Author.vinyl.filter(name="Ann").count() == 1


async def test_dispose_and_new_settings_never_serve_stale_sql(backend):
    await make("Ann")
    assert await Author.vinyl.filter(name="Ann").count() == 1
    assert plan_count() > 0
    await vinyl.dispose()
    assert plan_count() == 0
    settings = connections.settings["vinyl_default"]
    other = "vinyl_mysql" if backend == "postgresql" else "vinyl_postgresql"
    # Same alias, other database: plans compiled for the first never reach it.
    connections.settings["vinyl_default"] = dict(connections.settings[other])
    try:
        del connections["vinyl_default"]
    except AttributeError:
        pass
    try:
        assert await Author.vinyl.filter(name="Ann").count() == 0
        assert await Author.vinyl.filter(name="Ann").count() == 0
    finally:
        await vinyl.dispose()
        connections.settings["vinyl_default"] = settings
        try:
            del connections["vinyl_default"]
        except AttributeError:
            pass
