"""Compiled plans are reused by shape, never by value."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import logging
from typing import Any, Iterator

import pytest
from django.db import connections
from django.test import override_settings

import vinyl
from tests.testapp.models import Author, Book
from vinyl.translate.plan_cache import PLANS_MAX, plan_cache_for
from vinyl.translate.plans import Unplanned

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


async def test_every_page_of_a_query_shares_one_plan(backend):
    authors = [await Author.vinyl.create(name=f"a{n:02}", age=n) for n in range(30)]
    names = [a.name for a in authors]
    cache = plan_cache_for("vinyl_default")
    before = len(cache.plans())
    for offset in range(3, 30, 3):
        page = Author.vinyl.order_by("name")[offset : offset + 4]
        assert [a.name for a in await page] == names[offset : offset + 4]
    assert len(cache.plans()) == before + 1
    # Without an offset, and without a limit: shapes of their own. A limit is
    # a literal in the SQL (one plan per limit, see shapes.literal_limit).
    for size in (1, 5, 7, 5):
        assert await Author.vinyl.order_by("name").values_list("name", flat=True)[:size] == names[:size]
    for offset in (1, 28, 29, 30, 31):
        assert await Author.vinyl.order_by("name").values_list("name", flat=True)[offset:] == names[offset:]
    assert len(cache.plans()) == before + 5
    # Slices of slices, empty and negative slices answer as Django does.
    assert [a.name for a in await Author.vinyl.order_by("name")[5:20][2:4]] == names[7:9]
    assert [a.name for a in await Author.vinyl.order_by("name")[6:20][2:4]] == names[8:10]
    assert await Author.vinyl.order_by("name")[3:3] == []
    assert await Author.vinyl.order_by("name")[4:2] == []
    with pytest.raises(ValueError):
        Author.vinyl.order_by("name")[-1:]
    # count() and get() of pages.
    assert await Author.vinyl.order_by("name")[25:40].count() == 5
    assert await Author.vinyl.order_by("name")[5:10].count() == 5
    assert (await Author.vinyl.order_by("name")[10:11].get()).name == names[10]
    assert (await Author.vinyl.order_by("name")[12:13].get()).name == names[12]
    async for author in Author.vinyl.order_by("name")[2:4]:
        assert author.name in names[2:4]


async def test_plan_cache_info_counts_hits_misses_and_reasons(backend):
    await make("Ann", "Bob")
    start = vinyl.plan_cache_info()
    for name in ("Ann", "Bob", "Cy"):
        await Author.vinyl.filter(name=name)
    info = vinyl.plan_cache_info()
    assert info.hits - start.hits == 2
    assert info.misses - start.misses == 1
    assert info.plans >= 1 and info.size >= info.plans
    # contains wraps its value in %...%: no plan, for a reason said once.
    for needle in ("n", "o", "x"):
        await Author.vinyl.filter(name__contains=needle)
    reasons = vinyl.plan_cache_info().unplanned
    assert reasons.get("Django transforms a value (escapes, wraps or parses it)", 0) - start.unplanned.get(
        "Django transforms a value (escapes, wraps or parses it)", 0
    ) == 1


async def test_reasons_are_logged_once_at_debug_on_vinyl_plans(backend, caplog):
    await make("Ann")
    with caplog.at_level(logging.DEBUG, logger="vinyl.plans"):
        for needle in ("n", "o", "x"):
            await Author.vinyl.filter(name__icontains=needle).count()
            await Author.vinyl.filter(name__endswith=needle)
    said = [r.getMessage() for r in caplog.records if r.name == "vinyl.plans"]
    assert len(said) == 2, said
    assert all("Django transforms a value" in message for message in said)


async def test_none_and_duplicates_never_keep_a_shape_off_plans(backend):
    ann, bob, cy = await make("Ann", "Bob", "Cy")
    cache = plan_cache_for("vinyl_default")
    assert await Author.vinyl.filter(pk__in=[ann.pk, None, ann.pk]).count() == 1
    assert await Author.vinyl.filter(email=None).count() == 0
    before = len(cache.plans())
    # Repeats share the shape of the list without them. Whether a list holds
    # None is shape (Django 6 compiles exclude() of such a list differently):
    # planned too, then reused.
    assert await Author.vinyl.filter(pk__in=[bob.pk, cy.pk, bob.pk, None]).count() == 2  # new: 2 values and None
    assert await Author.vinyl.filter(pk__in=[cy.pk, None, ann.pk]).count() == 2
    assert await Author.vinyl.filter(pk__in=[ann.pk, cy.pk, ann.pk]).count() == 2  # new: 2 values
    assert await Author.vinyl.filter(pk__in=[ann.pk, cy.pk]).count() == 2
    assert await Author.vinyl.filter(pk__in=[None, ann.pk]).count() == 1  # the first list's shape
    assert len(cache.plans()) == before + 2
    assert not any(type(entry) is Unplanned and entry.permanent for entry in cache.values())


@contextlib.contextmanager
def _cache_of_three() -> Iterator[Any]:
    """vinyl_default's plan cache, emptied and holding three shapes at most."""
    cache = plan_cache_for("vinyl_default")
    cache.clear()
    cache.maxsize = 3
    try:
        yield cache
    finally:
        cache.maxsize = PLANS_MAX


async def test_a_full_cache_evicts_its_least_recently_used_shapes(backend):
    await make("Ann", "Bob")
    with _cache_of_three() as cache:
        await Author.vinyl.filter(name="Ann")  # shape 1
        await Author.vinyl.filter(age=1)  # shape 2
        await Author.vinyl.filter(email="x")  # shape 3
        await Author.vinyl.filter(name="Bob")  # shape 1 again: most recent
        await Author.vinyl.filter(age__gt=1)  # shape 4: evicts shape 2 only
        kept = {key[2][0][1][0][0] for key in cache}
        assert kept == {"name", "email", "age__gt"}
        assert len(cache) == 3


async def test_a_plan_found_twice_in_a_row_keeps_the_order_of_use(backend):
    # The second of two lookups in a row skips moving its key last (it is
    # there already); one after another shape's must move it.
    await make("Ann", "Bob")
    with _cache_of_three() as cache:
        await Author.vinyl.filter(name="Ann")  # shape 1
        await Author.vinyl.filter(age=1)  # shape 2
        await Author.vinyl.filter(name="Bob")  # shape 1: most recent
        await Author.vinyl.filter(age=2)  # shape 2: most recent
        await Author.vinyl.filter(name="Ann")  # shape 1: most recent again
        await Author.vinyl.filter(name="Bob")  # shape 1, twice in a row
        await Author.vinyl.filter(email="x")  # shape 3
        await Author.vinyl.filter(age__gt=1)  # shape 4: evicts shape 2 only
        kept = {key[2][0][1][0][0] for key in cache}
        assert kept == {"name", "email", "age__gt"}
        hits = cache.hits
        await Author.vinyl.filter(email="y")
        await Author.vinyl.filter(email="z")
        assert cache.hits == hits + 2


async def test_two_plans_found_in_turn_keep_the_order_of_use(backend):
    # Two shapes used in turn (a get and an update in a transaction) find
    # their plans without moving their keys; the order of use still decides
    # which shape goes when the cache is full.
    await make("Ann", "Bob")
    with _cache_of_three() as cache:
        await Author.vinyl.filter(name="Ann")  # shape 1
        await Author.vinyl.filter(age=1)  # shape 2
        await Author.vinyl.filter(name="Bob")  # shape 1
        await Author.vinyl.filter(age=2)  # shape 2
        await Author.vinyl.filter(name="Cy")  # shape 1: most recent, shape 2 before it
        await Author.vinyl.filter(email="x")  # shape 3
        await Author.vinyl.filter(age__gt=1)  # shape 4: evicts shape 2 only
        assert {key[2][0][1][0][0] for key in cache} == {"name", "email", "age__gt"}
        await Author.vinyl.filter(email="y")  # shape 3
        await Author.vinyl.filter(name="Ann")  # shape 1
        await Author.vinyl.filter(email="z")  # shape 3: most recent, shape 1 before it
        await Author.vinyl.filter(name="Bob")  # shape 1: most recent, shape 3 before it
        await Author.vinyl.filter(age=3)  # shape 2 again: evicts shape 4 only
        assert {key[2][0][1][0][0] for key in cache} == {"name", "email", "age"}
        await Author.vinyl.filter(age__lt=9)  # shape 5: evicts shape 3 only
        assert {key[2][0][1][0][0] for key in cache} == {"name", "age", "age__lt"}


async def test_new_time_zone_settings_empty_the_plan_caches(backend):
    await make("Ann")
    await Author.vinyl.filter(name="Ann")
    cache = plan_cache_for("vinyl_default")
    assert len(cache.plans()) >= 1
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        assert len(cache.plans()) == 0
        assert [a.name for a in await Author.vinyl.filter(name="Ann")] == ["Ann"]
    assert len(cache.plans()) == 0


async def test_count_of_every_page_shares_one_plan(backend):
    for n in range(12):
        await Author.vinyl.create(name=f"a{n:02}", age=n)
    cache = plan_cache_for("vinyl_default")
    before = len(cache.plans())
    for offset in range(1, 14):
        assert await Author.vinyl.order_by("name")[offset : offset + 4].count() == max(0, min(4, 12 - offset))
    assert len(cache.plans()) == before + 1


async def test_datetime_and_date_values_share_one_plan_per_shape(backend):
    # MySQL and SQLite send them as text (Django's adapt_datetimefield_value /
    # adapt_datefield_value): the plan adapts each new value as Django would.
    from tests.testapp.models import AllTypes

    utc = datetime.timezone.utc
    kathmandu = datetime.timezone(datetime.timedelta(hours=5, minutes=45))
    moments = [
        datetime.datetime(2024, 1, 15, 10, 0, 0, 123456, tzinfo=utc),
        datetime.datetime(2024, 7, 15, 10, 0, 0, 654321, tzinfo=utc),
        datetime.datetime(2024, 7, 15, 23, 30, tzinfo=utc),
    ]
    for moment in moments:
        await AllTypes.vinyl.create(moment=moment, day=moment.date())
    before = plan_count()
    asked = [
        moments[0],
        moments[1],
        moments[1] + datetime.timedelta(microseconds=1),
        moments[2].astimezone(kathmandu),  # another offset: the same instant
        datetime.datetime(2030, 1, 1, tzinfo=utc),
    ]
    for since in asked:
        found = await AllTypes.vinyl.filter(moment__gte=since).order_by("moment").values_list("moment", flat=True)
        assert found == [m for m in moments if m >= since]
        assert [o.moment for o in await AllTypes.vinyl.filter(moment=since)] == [m for m in moments if m == since]
    for day in (moments[0].date(), moments[1].date(), datetime.date(2024, 7, 16)):
        assert await AllTypes.vinyl.filter(day=day).count() == sum(m.date() == day for m in moments)
    assert plan_count() == before + 3


async def test_long_in_lists_of_one_kind_share_a_plan_per_length(backend):
    authors = await make(*(f"A{i}" for i in range(40)))
    pks = [a.pk for a in authors]
    cache = plan_cache_for("vinyl_default")
    assert await Author.vinyl.filter(pk__in=pks[:20]).count() == 20
    before = len(cache.plans())
    # The same count of keys of one kind: the same plan, each list's own rows.
    assert [a.name for a in await Author.vinyl.filter(pk__in=pks[20:]).order_by("pk")] == [f"A{i}" for i in range(20, 40)]
    assert await Author.vinyl.filter(pk__in=pks[10:30]).count() == 20
    assert await Author.vinyl.filter(pk__in=[*pks[:19], pks[0], None, pks[39]]).count() == 20
    # (New: the ordered read, and the list holding None, which is shape.)
    assert len(cache.plans()) == before + 2
    # Another count of keys: a plan of its own, its own rows.
    assert await Author.vinyl.filter(pk__in=pks[:21]).count() == 21
    assert await Author.vinyl.filter(pk__in=pks[:39]).count() == 39
