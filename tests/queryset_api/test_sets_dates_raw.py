"""Set operations, dates()/datetimes(), distinct, raw SQL and vinyl.execute/fetch."""

from __future__ import annotations

import datetime
import pytest
from django.db import DatabaseError, IntegrityError, NotSupportedError, connections
from django.db.models import Count, F

import vinyl
from vinyl.exceptions import DeferredFieldError
from tests.qsapp.models import Event, Gadget
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.usefixtures("vinyl_db")

UTC = datetime.timezone.utc


async def authors(*names: str) -> list[Author]:
    return [await Author.vinyl.create(name=n, age=10 * i) for i, n in enumerate(names, 1)]


def table(model) -> str:
    return connections["vinyl_default"].ops.quote_name(model._meta.db_table)


# union / intersection / difference -------------------------------------------


async def test_union_of_instances_with_order_and_slice():
    await authors("Ann", "Bob", "Cy", "Dee")
    # Components without ordering: SQLite refuses ORDER BY inside them.
    young = Author.vinyl.filter(age__lte=10).order_by()
    old = Author.vinyl.filter(age__gte=40).order_by()
    assert [a.name for a in await young.union(old).order_by("-name")] == ["Dee", "Ann"]
    assert [a.name for a in await young.union(old, Author.vinyl.filter(name="Bob").order_by()).order_by("name")[:2]] == ["Ann", "Bob"]
    assert await young.union(old).count() == 2
    assert type((await young.union(old))[0]) is Author.vinyl.model


async def test_union_all_keeps_duplicates_and_distinct_union_drops_them():
    await authors("Ann", "Bob")
    ann = Author.vinyl.filter(name="Ann").order_by().values_list("name", flat=True)
    # order_by() on the union: Django 6.1 refuses to order it by the
    # Meta.ordering column "id", which the union does not select.
    assert await ann.union(ann, all=True).order_by() == ["Ann", "Ann"]
    assert await ann.union(ann).order_by() == ["Ann"]


async def test_intersection_and_difference():
    await authors("Ann", "Bob", "Cy")
    first_two = Author.vinyl.filter(age__lte=20).order_by()
    last_two = Author.vinyl.filter(age__gte=20).order_by()
    assert [a.name for a in await first_two.intersection(last_two)] == ["Bob"]
    assert [a.name for a in await first_two.difference(last_two)] == ["Ann"]
    names = first_two.values_list("name", flat=True)
    assert await names.difference(last_two.values_list("name", flat=True)).order_by("name") == ["Ann"]


async def test_union_of_values_from_two_models():
    ann, = await authors("Ann")
    await Book.vinyl.create(title="Zed", author=ann)
    names = Author.vinyl.order_by().values_list("name")
    titles = Book.vinyl.order_by().values_list("title")
    assert await names.union(titles).order_by("name") == [("Ann",), ("Zed",)]


async def test_filtering_a_union_raises_not_supported():
    qs = Author.vinyl.all().union(Author.vinyl.all())
    with pytest.raises(NotSupportedError):
        await qs.filter(name="x")


# dates / datetimes / distinct ------------------------------------------------


async def test_dates_by_kind_and_order():
    ann, = await authors("Ann")
    for day in (datetime.date(2023, 12, 31), datetime.date(2024, 1, 15), datetime.date(2024, 1, 20), None):
        await Book.vinyl.create(title=str(day), author=ann, published=day)
    assert await Book.vinyl.dates("published", "year") == [datetime.date(2023, 1, 1), datetime.date(2024, 1, 1)]
    assert await Book.vinyl.dates("published", "month", order="DESC") == [datetime.date(2024, 1, 1), datetime.date(2023, 12, 1)]
    assert await Book.vinyl.dates("published", "week") == [datetime.date(2023, 12, 25), datetime.date(2024, 1, 15)]
    assert await Book.vinyl.dates("published", "day") == [datetime.date(2023, 12, 31), datetime.date(2024, 1, 15), datetime.date(2024, 1, 20)]
    with pytest.raises(ValueError):
        Book.vinyl.dates("published", "hour")


async def test_datetimes_are_aware_and_follow_tzinfo():
    for at in (datetime.datetime(2024, 3, 1, 23, 30, tzinfo=UTC), datetime.datetime(2024, 3, 2, 0, 30, tzinfo=UTC)):
        await Event.vinyl.create(name="e", at=at)
    assert await Event.vinyl.datetimes("at", "day") == [
        datetime.datetime(2024, 3, 1, tzinfo=UTC),
        datetime.datetime(2024, 3, 2, tzinfo=UTC),
    ]
    assert await Event.vinyl.datetimes("at", "hour", order="DESC") == [
        datetime.datetime(2024, 3, 2, 0, tzinfo=UTC),
        datetime.datetime(2024, 3, 1, 23, tzinfo=UTC),
    ]
    tokyo = datetime.timezone(datetime.timedelta(hours=9))  # both on 2024-03-02
    if not connections["vinyl_default"].features.has_zoneinfo_database:
        # A MySQL server without time zone tables: Django's own error.
        with pytest.raises(ValueError, match="time zone definitions"):
            await Event.vinyl.datetimes("at", "day", tzinfo=tokyo)
        return
    in_tokyo = await Event.vinyl.datetimes("at", "day", tzinfo=tokyo)
    assert in_tokyo == [datetime.datetime(2024, 3, 2, tzinfo=tokyo)]


async def test_distinct():
    ann, bob = await authors("Ann", "Bob")
    for title in ("x", "x", "y"):
        await Book.vinyl.create(title=title, author=ann)
    assert await Book.vinyl.values_list("title", flat=True).distinct().order_by("title") == ["x", "y"]
    assert await Author.vinyl.filter(book__title__in=["x", "y"]).distinct().count() == 1
    assert await Author.vinyl.filter(book__title__in=["x", "y"]).count() == 3


async def test_distinct_on_fields(backend):
    ann, bob = await authors("Ann", "Bob")
    for title, author, pages in (("a", ann, 5), ("b", ann, 9), ("c", bob, 7)):
        await Book.vinyl.create(title=title, author=author, pages=pages)
    qs = Book.vinyl.order_by("author_id", "-pages").distinct("author_id")
    if backend == "postgresql":
        assert [b.title for b in await qs] == ["b", "c"]
    else:
        with pytest.raises(NotSupportedError):
            await qs


# raw -------------------------------------------------------------------------


async def test_raw_returns_instances_with_converted_values():
    ann, bob = await authors("Ann", "Bob")
    found = await Author.vinyl.raw(f"SELECT * FROM {table(Author)} WHERE age > %s ORDER BY id", [15])
    assert [(type(a), a.pk, a.name, a.age) for a in found] == [(Author.vinyl.model, bob.pk, "Bob", 20)]
    await Event.vinyl.create(name="e", at=datetime.datetime(2024, 1, 1, 12, tzinfo=UTC))
    [event] = await Event.vinyl.raw(f"SELECT * FROM {table(Event)}")
    assert event.at == datetime.datetime(2024, 1, 1, 12, tzinfo=UTC)


async def test_raw_async_for_and_annotations_and_translations():
    await authors("Ann", "Bob")
    names = [a.name async for a in Author.vinyl.raw(f"SELECT * FROM {table(Author)} ORDER BY name")]
    assert names == ["Ann", "Bob"]
    extra = await Author.vinyl.raw(f"SELECT id, name AS label, age * 2 AS doubled FROM {table(Author)} ORDER BY id", translations={"label": "name"})
    assert [(a.name, a.doubled) for a in extra] == [("Ann", 20), ("Bob", 40)]


async def test_raw_leaves_unselected_fields_deferred():
    ann, = await authors("Ann")
    with_sql_counter = connections["vinyl_default"]
    [partial] = await Author.vinyl.raw(f"SELECT id, name FROM {table(Author)}")
    assert partial.name == "Ann"
    with pytest.raises(DeferredFieldError, match="refresh_from_db"):
        partial.age
    await partial.refresh_from_db(fields=["age"])
    assert partial.age == 10
    assert with_sql_counter is connections["vinyl_default"]


async def test_raw_with_named_params_and_percent_literals():
    await authors("Ann", "Bob")
    found = await Author.vinyl.raw(
        f"SELECT * FROM {table(Author)} WHERE name LIKE '%%n%%' AND age >= %(age)s", {"age": 0}
    )
    assert [a.name for a in found] == ["Ann"]


async def test_raw_prefetch_related_and_using():
    ann, = await authors("Ann")
    await Book.vinyl.create(title="t", author=ann)
    [loaded] = await Book.vinyl.raw(f"SELECT * FROM {table(Book)}").prefetch_related("author")
    assert loaded["author"].name == "Ann"
    assert len(await Author.vinyl.raw(f"SELECT * FROM {table(Author)}").using("vinyl_default")) == 1


async def test_raw_cannot_be_used_synchronously():
    with pytest.raises(TypeError, match="await"):
        list(Author.vinyl.raw("SELECT 1"))


# vinyl.execute / vinyl.fetch -------------------------------------------------


async def test_execute_returns_the_row_count_and_fetch_returns_tuples():
    await authors("Ann", "Bob", "Cy")
    n = await vinyl.execute(f"UPDATE {table(Author)} SET age = age + %s WHERE age >= %s", [1, 20])
    assert n == 2
    rows = await vinyl.fetch(f"SELECT name, age FROM {table(Author)} WHERE age > %s ORDER BY name", [0])
    assert rows == [("Ann", 10), ("Bob", 21), ("Cy", 31)]
    assert all(type(row) is tuple for row in rows)
    assert await vinyl.fetch("SELECT 1 + 1") == [(2,)]
    assert await vinyl.fetch(f"SELECT name FROM {table(Author)} WHERE name LIKE %s", ["%y"]) == [("Cy",)]


async def test_execute_counts_rows_matched_even_when_unchanged():
    await authors("Ann")
    assert await vinyl.execute(f"UPDATE {table(Author)} SET name = %s", ["Ann"]) == 1


async def test_execute_and_fetch_join_an_atomic_block():
    with pytest.raises(RuntimeError):
        async with vinyl.atomic():
            await vinyl.execute(f"INSERT INTO {table(Gadget)} (code, name, count, created_by) VALUES (%s, %s, %s, %s)", ["g", "n", 1, ""])
            assert await vinyl.fetch(f"SELECT code FROM {table(Gadget)}") == [("g",)]
            assert await Gadget.vinyl.count() == 1
            raise RuntimeError("roll back")
    assert await vinyl.fetch(f"SELECT code FROM {table(Gadget)}") == []


async def test_execute_raises_django_errors():
    await Gadget.vinyl.create(code="g")
    with pytest.raises(IntegrityError):
        await vinyl.execute(f"INSERT INTO {table(Gadget)} (code, name, count, created_by) VALUES (%s, '', 0, '')", ["g"])
    # ProgrammingError on PostgreSQL, OperationalError on MySQL: as in Django.
    with pytest.raises(DatabaseError):
        await vinyl.fetch("SELECT no_such_column FROM " + table(Gadget))


async def test_execute_and_fetch_take_the_alias():
    await authors("Ann")
    assert await vinyl.fetch(f"SELECT count(*) FROM {table(Author)}", using="vinyl_default") == [(1,)]


async def test_querysets_combine_with_and_or_xor():
    await authors("Ann", "Bob", "Cy")
    young = Author.vinyl.filter(age__lte=20)
    named_b_or_c = Author.vinyl.filter(name__in=["Bob", "Cy"])
    assert [a.name for a in await (young & named_b_or_c)] == ["Bob"]
    assert [a.name for a in await (young | named_b_or_c)] == ["Ann", "Bob", "Cy"]
    assert [a.name for a in await (young ^ named_b_or_c)] == ["Ann", "Cy"]


async def test_extra_and_queryset_raw():
    await authors("Ann", "Bob")
    rows = await Author.vinyl.extra(select={"double": "age * %s"}, select_params=[2], where=["age > %s"], params=[10])
    assert [(a.name, a.double) for a in rows] == [("Bob", 40)]
    [bob] = await Author.vinyl.filter(name="x").raw(f"SELECT * FROM {table(Author)} WHERE name = %s", ["Bob"])
    assert bob.name == "Bob"
